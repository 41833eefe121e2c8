//! Wasm fuel (about one unit per wasm instruction) and host calls per HTTP stream, per case:
//! deterministic, unlike wall time. `cargo bench -p hrl-playground --bench fuel` prints a table.
//! A host call is any call from the module into the host (proxy-wasm or WASI import); in a
//! real proxy each one crosses the VM boundary and touches a header map, a lock or a stat.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

mod cases;

use std::time::Duration;

use hrl_playground::{Response, Worker};

const STREAMS: u64 = 1000;

/// Fuel and host calls so far.
fn spent(worker: &Worker) -> (u64, u64) {
    (
        worker.fuel_consumed().unwrap(),
        worker.host_calls().unwrap(),
    )
}

fn main() {
    let requests = cases::requests();
    println!(
        "{:<28} {:>14} {:>12} {:>16} {:>12} {:>12}",
        "case", "fuel/request", "minus noop", "host calls/req", "fuel/tick", "calls/tick"
    );
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
        worker.tick().unwrap();
        let before = spent(worker);
        for i in 0..STREAMS {
            if !case.frozen {
                clock.advance(Duration::from_secs(1));
            }
            let request = &requests[i as usize % requests.len()];
            worker
                .http_stream_view(request, &upstream, cases::read)
                .unwrap();
        }
        let after = spent(worker);
        let fuel = (after.0 - before.0) / STREAMS;
        let calls = (after.1 - before.1) as f64 / STREAMS as f64;
        // One tick after the streams: what a module that flushes per tick (not per request)
        // spends then, once per tick period whatever the request rate.
        worker.tick().unwrap();
        let ticked = spent(worker);
        let floor = *floor.get_or_insert(fuel);
        println!(
            "{:<28} {:>14} {:>12} {:>16.2} {:>12} {:>12}",
            case.name,
            fuel,
            fuel as i64 - floor as i64,
            calls,
            ticked.0 - after.0,
            ticked.1 - after.1,
        );
    }
}
