//! p50/p99 of one `ShouldRateLimit` round trip on loopback, counting in a fresh
//! `redis-server`: `cargo run --release -p hrl-rls --example latency [-- CALLS]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measurement, not the product

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use hrl_rls::testing::RlsWithRedis;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(5_000, |calls| calls.parse().expect("CALLS: a number"));
    let stack = RlsWithRedis::start(&["hrl"]).unwrap_or_else(|error| panic!("{error}"));
    let mut client = RateLimitServiceClient::connect(format!("http://{}", stack.rls.addr()))
        .await
        .expect("connect");
    let request = |key: usize| RateLimitRequest {
        domain: "hrl".to_owned(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![
                Entry {
                    key: "hrl_policy".to_owned(),
                    value: "default/api".to_owned(),
                },
                Entry {
                    key: "hrl_key".to_owned(),
                    // 64 keys: most calls add to an existing counter, as under traffic.
                    value: format!("{:016x}", key % 64),
                },
            ],
            limit: Some(RateLimitOverride {
                requests_per_unit: 1_000_000,
                unit: Unit::Minute.into(),
            }),
            ..RateLimitDescriptor::default()
        }],
        hits_addend: 0,
    };
    for key in 0..200 {
        client
            .should_rate_limit(request(key))
            .await
            .expect("warm-up");
    }
    let mut took: Vec<Duration> = Vec::with_capacity(calls);
    for key in 0..calls {
        let started = Instant::now();
        client.should_rate_limit(request(key)).await.expect("call");
        took.push(started.elapsed());
    }
    took.sort();
    let at = |quantile: f64| took[((took.len() as f64 * quantile) as usize).min(took.len() - 1)];
    println!(
        "{calls} sequential ShouldRateLimit calls, one client, loopback, Redis: p50 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.99),
        took[took.len() - 1]
    );
}
