//! Wall time of one full HTTP stream through the host (create, request headers, response
//! headers, log, done, delete) per case. `cargo bench -p hrl-playground --bench stream`.
//! Streams run with `http_stream_view`: the host allocates nothing per stream and the response
//! is read where the host holds it, so the time is the host's callbacks and host calls plus
//! the module's own work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

mod cases;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hrl_playground::Response;

fn streams(c: &mut Criterion) {
    let requests = cases::requests();
    let mut group = c.benchmark_group("stream");
    for case in cases::cases() {
        let mut host = cases::host(&case, false);
        let clock = host.clock().clone();
        let worker = host.worker(0);
        let upstream = Response::new(200);
        let mut next = 0usize;
        group.bench_function(case.name, |b| {
            b.iter(|| {
                if !case.frozen {
                    clock.advance(Duration::from_secs(1));
                }
                next = (next + 1) % requests.len();
                let read = worker.http_stream_view(&requests[next], &upstream, cases::read);
                black_box(read.unwrap())
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = streams
}
criterion_main!(benches);
