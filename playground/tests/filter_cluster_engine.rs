//! ABI tests of the real module with `scope: Cluster` against a real engine: two playground
//! hosts (two pods, each with its worker VMs) ask one rate limit service — Kuadrant's Limitador
//! behind the RLS v3 API (`hrl-rls`), counting in a real `redis-server` started on loopback for
//! the test. Without `redis-server` these tests fail; they never pass as skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{counter, filter, limit_config};
use hrl_playground::{Clock, Host, Request};
use hrl_plugin_config::{FailureMode, Key, PluginConfig, RateLimit, RateLimitService};
use hrl_rls::testing::RlsWithRedis;

const POLICY: &str = "default/api";
const CLUSTER: &str = "outbound|8081||hrl-rls.hrl-system.svc.cluster.local";
const AUTHORITY: &str = "hrl-rls.hrl-system.svc.cluster.local";
const DOMAIN: &str = "hrl";

/// 5 per hour (a window no test run crosses) counted by the service, keyed on `key`.
fn five_per_hour(key: Key, mode: FailureMode, timeout_ms: u32) -> PluginConfig {
    let service = RateLimitService {
        failure_mode: mode,
        timeout_ms,
        ..RateLimitService::new(CLUSTER, AUTHORITY, DOMAIN)
    };
    limit_config(
        POLICY,
        RateLimit {
            key,
            service: Some(service),
            ..RateLimit::per_period(5, 3_600, 5)
        },
    )
}

/// One pod: two worker VMs with the policy, the service's cluster at `engine`.
fn pod(config: &PluginConfig, engine: &RlsWithRedis) -> Host {
    Host::builder(filter())
        .workers(2)
        .clock(Clock::system())
        .grpc_cluster(CLUSTER, &engine.rls.addr().to_string())
        .plugin(common::plugin(config))
        .build()
        .unwrap()
}

fn engine() -> RlsWithRedis {
    RlsWithRedis::start(&[DOMAIN]).unwrap_or_else(|e| panic!("start redis-server + hrl-rls: {e}"))
}

#[test]
fn two_pods_together_admit_exactly_the_limit_then_answer_429_until_the_window_resets() {
    let engine = engine();
    let config = five_per_hour(Key::None, FailureMode::Allow, 1_000);
    let mut pods = [pod(&config, &engine), pod(&config, &engine)];
    let mut statuses = Vec::new();
    for i in 0..12usize {
        let response = pods[i % 2]
            .worker(i / 2)
            .http_stream(Request::get("/"))
            .unwrap();
        if response.status == 200 {
            let left = 4 - statuses.len();
            assert_eq!(
                response.header("ratelimit"),
                Some(format!(r#""api";r={left};t={}"#, reset_of(&response)).as_str()),
                "request {i}"
            );
            assert_eq!(
                response.header("ratelimit-policy"),
                Some(r#""api";q=5;w=3600"#)
            );
        } else {
            assert_eq!(response.status, 429, "request {i}");
            let retry: u64 = response.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=3_600).contains(&retry), "retry-after {retry}");
        }
        statuses.push(response.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(&statuses[..5], &[200; 5]);
    let allowed: u64 = pods
        .iter_mut()
        .map(|pod| counter(pod, POLICY, "allowed"))
        .sum();
    let limited: u64 = pods
        .iter_mut()
        .map(|pod| counter(pod, POLICY, "limited"))
        .sum();
    assert_eq!((allowed, limited), (5, 7));
    for pod in &mut pods {
        assert_eq!(counter(pod, POLICY, "rls_errors"), 0);
    }
}

/// The `t` of a response's `ratelimit` header.
fn reset_of(response: &hrl_playground::Response) -> u64 {
    let value = response.header("ratelimit").unwrap();
    value.rsplit("t=").next().unwrap().parse().unwrap()
}

#[test]
fn each_client_address_has_its_own_count_across_pods() {
    let engine = engine();
    let config = five_per_hour(Key::ClientAddress, FailureMode::Allow, 1_000);
    let mut pods = [pod(&config, &engine), pod(&config, &engine)];
    let mut admitted = |address: &str| -> usize {
        (0..8usize)
            .filter(|i| {
                let request = Request::get("/").from_address(address);
                pods[i % 2].http_stream(request).unwrap().status == 200
            })
            .count()
    };
    assert_eq!(admitted("10.0.0.1:5000"), 5);
    assert_eq!(admitted("10.0.0.2:5000"), 5);
    assert_eq!(
        admitted("10.0.0.1:6000"),
        0,
        "same address, other port: same count"
    );
}

#[test]
fn redis_stopped_makes_the_service_fail_and_the_policy_follow_its_failure_mode() {
    let mut engine = engine();
    // Longer than the engine takes to give up on Redis (hrl-rls: 1 s storage timeout), so its
    // error arrives before the filter's deadline: an error, not a timeout.
    let allow = five_per_hour(Key::None, FailureMode::Allow, 5_000);
    let deny = PluginConfig {
        policy: "default/strict".into(),
        ..five_per_hour(Key::None, FailureMode::Deny, 5_000)
    };
    let (mut open, mut closed) = (pod(&allow, &engine), pod(&deny, &engine));
    assert_eq!(open.http_stream(Request::get("/")).unwrap().status, 200);
    engine.redis.stop();
    for _ in 0..3 {
        let response = open.http_stream(Request::get("/")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("ratelimit"), None, "nothing known");
        let denied = closed.http_stream(Request::get("/")).unwrap();
        assert_eq!(denied.status, 429);
        assert_eq!(denied.header("retry-after"), Some("1"));
    }
    assert_eq!(counter(&mut open, POLICY, "rls_errors"), 3);
    assert_eq!(counter(&mut open, POLICY, "rls_timeouts"), 0);
    assert_eq!(counter(&mut open, POLICY, "allowed"), 4);
    assert_eq!(counter(&mut closed, "default/strict", "rls_errors"), 3);
    assert_eq!(counter(&mut closed, "default/strict", "limited"), 3);
}

#[test]
fn the_engine_stopped_is_an_error_like_any_other() {
    let mut engine = engine();
    let config = five_per_hour(Key::None, FailureMode::Allow, 1_000);
    let mut pod = pod(&config, &engine);
    engine.rls.stop();
    assert_eq!(pod.http_stream(Request::get("/")).unwrap().status, 200);
    assert_eq!(counter(&mut pod, POLICY, "rls_errors"), 1);
    assert_eq!(counter(&mut pod, POLICY, "rls_timeouts"), 0);
}

#[test]
fn a_slow_engine_times_out_after_the_policy_timeout() {
    let engine = RlsWithRedis::start_with_delay(&[DOMAIN], Duration::from_millis(400))
        .unwrap_or_else(|e| panic!("start redis-server + hrl-rls: {e}"));
    let config = five_per_hour(Key::None, FailureMode::Deny, 50);
    let mut pod = pod(&config, &engine);
    let started = std::time::Instant::now();
    let response = pod.http_stream(Request::get("/")).unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status, 429, "failureMode Deny");
    assert!(
        waited < Duration::from_millis(400),
        "waited {waited:?}, not the engine"
    );
    assert_eq!(counter(&mut pod, POLICY, "rls_timeouts"), 1);
    assert_eq!(counter(&mut pod, POLICY, "rls_errors"), 0);
}
