//! ABI tests of the real module: buckets refill from the host's monotonic clock, which every
//! worker VM reads alike, so a stepped wall clock neither refills nor starves a bucket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{filter_host, seed_config};
use hrl_playground::{MANUAL_EPOCH_NANOS, Request};

const HOUR_NANOS: u64 = 3_600_000_000_000;

fn statuses(host: &mut hrl_playground::Host, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| host.http_stream(Request::get("/")).unwrap().status)
        .collect()
}

#[test]
fn a_wall_clock_stepped_an_hour_forward_refills_nothing() {
    let mut host = filter_host(&[seed_config()], 2);
    assert_eq!(statuses(&mut host, 3), [200, 200, 429]);
    host.clock().set(MANUAL_EPOCH_NANOS + HOUR_NANOS);
    assert_eq!(
        statuses(&mut host, 1),
        [429],
        "no time passed on the monotonic clock"
    );
    host.clock().advance(Duration::from_millis(500));
    assert_eq!(
        statuses(&mut host, 2),
        [200, 429],
        "half a second: one token at 2/s"
    );
}

#[test]
fn a_wall_clock_stepped_back_does_not_stop_the_refill() {
    let mut host = filter_host(&[seed_config()], 2);
    assert_eq!(statuses(&mut host, 3), [200, 200, 429]);
    host.clock().set(MANUAL_EPOCH_NANOS - HOUR_NANOS);
    host.clock().advance(Duration::from_secs(1));
    assert_eq!(statuses(&mut host, 3), [200, 200, 429]);
}

#[test]
fn bucket_timestamps_in_shared_data_are_the_hosts_monotonic_nanoseconds() {
    // Comparable across worker VMs because they are the host clock's raw reading, not a time
    // relative to something each VM took for itself.
    let mut host = filter_host(&[seed_config()], 3);
    host.clock().advance(Duration::from_millis(1234));
    for worker in 0..3 {
        host.worker(worker).http_stream(Request::get("/")).unwrap();
        let (value, _) = host
            .shared()
            .shared_data("hrl/v1/default/httpbin/b")
            .unwrap();
        let stamp = u64::from_le_bytes(value[9..17].try_into().unwrap());
        assert_eq!(
            stamp,
            host.clock().monotonic_nanos(),
            "written by worker {worker}"
        );
        // A token per request at 2/s: every worker writes.
        host.clock().advance(Duration::from_millis(1007));
    }
}
