//! ABI tests of the real module: several worker VMs share one bucket through shared data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{counter, filter_host, limit_config};
use hrl_playground::{Request, Response};
use hrl_plugin_config::RateLimit;

const POLICY: &str = "default/shared";

#[test]
fn four_workers_in_one_instant_admit_exactly_the_burst() {
    let mut host = filter_host(&[limit_config(POLICY, RateLimit::new(3, 5))], 4);
    let statuses: Vec<u16> = (0..40)
        .map(|i| {
            host.worker(i)
                .http_stream(Request::get("/"))
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35);
    assert_eq!(
        &statuses[..5],
        &[200; 5],
        "the first five, whichever worker they hit"
    );
    assert_eq!(counter(&mut host, POLICY, "allowed"), 5);
    assert_eq!(counter(&mut host, POLICY, "limited"), 35);
}

#[test]
fn over_a_simulated_minute_four_workers_admit_burst_plus_rate_times_sixty() {
    let (rate, burst) = (3u64, 5u64);
    let mut host = filter_host(&[limit_config(POLICY, RateLimit::new(3, 5))], 4);
    let mut admitted = 0u64;
    let mut request = 0usize;
    // 601 instants, 0.0 s ..= 60.0 s every 100 ms, 2 requests each: 20 req/s against 3 tokens/s.
    for step in 0..=600 {
        if step > 0 {
            host.clock().advance(Duration::from_millis(100));
        }
        for _ in 0..2 {
            let response = host.worker(request).http_stream(Request::get("/")).unwrap();
            request += 1;
            admitted += u64::from(response.status == 200);
        }
    }
    assert_eq!(admitted, burst + rate * 60);
    assert_eq!(counter(&mut host, POLICY, "allowed"), admitted);
    assert_eq!(counter(&mut host, POLICY, "requests"), request as u64);
}

#[test]
fn worker_threads_hammering_a_fresh_bucket_admit_exactly_the_burst_unless_cas_gives_up() {
    let burst = 50;
    let host = filter_host(&[limit_config(POLICY, RateLimit::new(1, burst))], 4);
    let (shared, workers) = host.into_parts();
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            std::thread::spawn(move || {
                let admitted = (0..100)
                    .map(|_| worker.http_stream(Request::get("/")).unwrap().status)
                    .filter(|status| *status == 200)
                    .count() as u64;
                // Hand the VM's counts to the host, as its next tick would.
                worker.tick().unwrap();
                admitted
            })
        })
        .collect();
    let admitted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let metric = |name: &str| {
        shared
            .metric(&format!("hrl.default.shared.{name}"))
            .unwrap_or(0)
    };
    // The filter creates fixed-name buckets in on_configure, so no first write races; an
    // exhausted CAS loop admits and is counted.
    let exhausted = metric("cas_exhausted");
    assert_eq!(
        admitted,
        u64::from(burst) + exhausted,
        "cas_exhausted {exhausted}"
    );
    assert_eq!(metric("allowed"), admitted);
    assert_eq!(metric("requests"), 400);
}

#[test]
fn worker_threads_on_an_existing_bucket_admit_exactly_the_burst_unless_cas_gives_up() {
    let burst = 50;
    let host = filter_host(&[limit_config(POLICY, RateLimit::new(1, burst + 1))], 4);
    let (shared, mut workers) = host.into_parts();
    // Create the bucket first (one token), so no thread races on an absent key.
    let first = workers[0].http_stream(Request::get("/")).unwrap();
    assert_eq!(first.status, 200);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            std::thread::spawn(move || {
                let limited_upstream = |_: &Request| Response::new(200);
                let admitted = (0..100)
                    .map(|_| {
                        worker
                            .http_stream_with(Request::get("/"), limited_upstream)
                            .unwrap()
                    })
                    .filter(|response| response.status == 200)
                    .count() as u64;
                worker.tick().unwrap();
                admitted
            })
        })
        .collect();
    let admitted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let exhausted = shared
        .metric("hrl.default.shared.cas_exhausted")
        .unwrap_or(0);
    assert_eq!(
        admitted,
        u64::from(burst) + exhausted,
        "cas_exhausted {exhausted}"
    );
}
