//! Wasm fuel (about one unit per wasm instruction) per HTTP stream, per case: deterministic,
//! unlike wall time. `cargo bench -p hrl-playground --bench fuel` prints a table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

mod cases;

use std::time::Duration;

use hrl_playground::Response;

const STREAMS: u64 = 1000;

fn main() {
    let requests = cases::requests();
    println!("{:<28} {:>14} {:>16}", "case", "fuel/request", "minus noop");
    let mut floor = None;
    for case in cases::cases() {
        let mut host = cases::host(&case, true);
        let clock = host.clock().clone();
        let worker = host.worker(0);
        // Warm up: the first streams create buckets and grow the module's heap.
        let upstream = Response::new(200);
        for request in requests.iter().take(10) {
            worker
                .http_stream_view(request, &upstream, cases::read)
                .unwrap();
        }
        let before = worker.fuel_consumed().unwrap();
        for i in 0..STREAMS {
            if !case.frozen {
                clock.advance(Duration::from_secs(1));
            }
            let request = &requests[i as usize % requests.len()];
            worker
                .http_stream_view(request, &upstream, cases::read)
                .unwrap();
        }
        let per_request = (worker.fuel_consumed().unwrap() - before) / STREAMS;
        let floor = *floor.get_or_insert(per_request);
        println!(
            "{:<28} {:>14} {:>16}",
            case.name,
            per_request,
            per_request as i64 - floor as i64
        );
    }
}
