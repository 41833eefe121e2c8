//! ABI tests of the real module: per-key buckets and the maxKeys bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{counter, filter_host, limit_config};
use hrl_playground::{Host, Request};
use hrl_plugin_config::{Key, RateLimit};

fn keyed(policy: &str, key: Key, max_keys: u32) -> Host {
    let mut rate_limit = RateLimit::new(1, 2);
    rate_limit.key = key;
    rate_limit.max_keys = max_keys;
    filter_host(&[limit_config(policy, rate_limit)], 2)
}

fn status(host: &mut Host, request: Request) -> u16 {
    host.http_stream(request).unwrap().status
}

#[test]
fn each_header_value_gets_its_own_bucket_and_requests_without_it_share_one() {
    let mut host = keyed("default/keys", Key::Header("x-api-key".into()), 100);
    let with = |key: &str| Request::get("/").with_header("X-Api-Key", key);
    let a: Vec<u16> = (0..3).map(|_| status(&mut host, with("alice"))).collect();
    let b: Vec<u16> = (0..3).map(|_| status(&mut host, with("bob"))).collect();
    let none: Vec<u16> = (0..3)
        .map(|_| status(&mut host, Request::get("/")))
        .collect();
    assert_eq!(a, [200, 200, 429]);
    assert_eq!(b, [200, 200, 429]);
    assert_eq!(
        none,
        [200, 200, 429],
        "keyless requests share the 'missing' bucket"
    );
    let keys = host.shared().shared_data_keys();
    assert!(
        keys.iter().all(|k| k.starts_with("hrl/v1/default/keys/")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"hrl/v1/default/keys/m".to_string()),
        "{keys:?}"
    );
}

#[test]
fn client_addresses_are_keyed_by_ip_without_the_port() {
    let mut host = keyed("default/clients", Key::ClientAddress, 100);
    let from = |address: &str| Request::get("/").from_address(address);
    assert_eq!(status(&mut host, from("10.0.0.1:5000")), 200);
    assert_eq!(status(&mut host, from("10.0.0.1:5001")), 200);
    assert_eq!(
        status(&mut host, from("10.0.0.1:5002")),
        429,
        "same IP, other port"
    );
    assert_eq!(status(&mut host, from("10.0.0.2:5000")), 200);
    assert_eq!(status(&mut host, from("[::1]:80")), 200);
    assert_eq!(status(&mut host, from("[::1]:81")), 200);
    assert_eq!(status(&mut host, from("[::1]:82")), 429);
    host.clock().advance(Duration::from_secs(1));
    assert_eq!(
        status(&mut host, from("10.0.0.1:6000")),
        200,
        "refilled one token"
    );
}

#[test]
fn a_hundred_thousand_distinct_keys_keep_shared_data_within_max_keys() {
    let max_keys = 100u32;
    let policy = "default/many";
    let mut host = keyed(policy, Key::Header("x-api-key".into()), max_keys);
    let mut admitted = 0u64;
    for i in 0..100_000u32 {
        if i % 1000 == 999 {
            // Let some buckets fill up again, so idle slots get taken over.
            host.clock().advance(Duration::from_millis(700));
        }
        let request = Request::get("/").with_header("x-api-key", &format!("key-{i}"));
        admitted += u64::from(status(&mut host, request) == 200);
    }
    let entries = host.shared_data_len();
    assert!(
        entries <= max_keys as usize + 3,
        "{entries} shared-data entries for maxKeys {max_keys}"
    );
    assert!(
        counter(&mut host, policy, "overflow") > 0,
        "beyond maxKeys keys share the overflow bucket"
    );
    assert_eq!(counter(&mut host, policy, "allowed"), admitted);
    assert_eq!(counter(&mut host, policy, "requests"), 100_000);
}
