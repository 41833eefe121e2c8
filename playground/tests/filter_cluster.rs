//! ABI tests of the real module with `rateLimit.service` (scope Cluster) when the rate limit
//! service cannot answer: a cluster the proxy does not know, a port nobody listens on. What
//! the request gets then is the policy's `failureMode`, counted in `rls_errors`. (The answers
//! of a real engine are tested in `filter_cluster_engine.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::net::TcpListener;

use common::{counter, filter, limit_config};
use hrl_playground::{Clock, Host, Request};
use hrl_plugin_config::{FailureMode, PluginConfig, RateLimit, RateLimitService};

const POLICY: &str = "default/api";
const CLUSTER: &str = "outbound|8081||rls.hrl-system.svc.cluster.local";
const AUTHORITY: &str = "rls.hrl-system.svc.cluster.local";

fn cluster_policy(mode: FailureMode) -> PluginConfig {
    let service = RateLimitService {
        failure_mode: mode,
        ..RateLimitService::new(CLUSTER, AUTHORITY, "hrl")
    };
    limit_config(
        POLICY,
        RateLimit {
            service: Some(service),
            ..RateLimit::per_period(5, 60, 5)
        },
    )
}

/// A loopback address nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

/// One worker with the policy; `cluster` maps `CLUSTER` to an address when given.
fn host(config: &PluginConfig, cluster: Option<&str>) -> Host {
    let mut builder = Host::builder(filter())
        .clock(Clock::system())
        .plugin(common::plugin(config));
    if let Some(address) = cluster {
        builder = builder.grpc_cluster(CLUSTER, address);
    }
    builder.build().unwrap()
}

#[test]
fn with_failure_mode_allow_an_unreachable_service_lets_requests_through_without_rate_limit_headers()
{
    let closed = closed_port();
    for cluster in [None, Some(closed.as_str())] {
        let mut host = host(&cluster_policy(FailureMode::Allow), cluster);
        for _ in 0..7 {
            let response = host.http_stream(Request::get("/")).unwrap();
            assert_eq!(response.status, 200, "{cluster:?}");
            assert_eq!(response.header("ratelimit"), None, "nothing is known");
            assert_eq!(response.header("ratelimit-policy"), None);
        }
        assert_eq!(counter(&mut host, POLICY, "rls_errors"), 7, "{cluster:?}");
        assert_eq!(counter(&mut host, POLICY, "allowed"), 7);
        assert_eq!(counter(&mut host, POLICY, "rls_timeouts"), 0);
    }
}

#[test]
fn with_failure_mode_deny_an_unreachable_service_answers_as_limited() {
    let closed = closed_port();
    for cluster in [None, Some(closed.as_str())] {
        let mut host = host(&cluster_policy(FailureMode::Deny), cluster);
        let response = host.http_stream(Request::get("/")).unwrap();
        assert_eq!(response.status, 429, "{cluster:?}");
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(
            response.header("ratelimit-policy"),
            Some(r#""api";q=5;w=60"#)
        );
        assert_eq!(response.header("ratelimit"), Some(r#""api";r=0;t=1"#));
        assert_eq!(counter(&mut host, POLICY, "rls_errors"), 1);
        assert_eq!(counter(&mut host, POLICY, "limited"), 1);
    }
}

#[test]
fn a_dry_run_never_denies_even_when_the_service_fails_closed() {
    let mut config = cluster_policy(FailureMode::Deny);
    if let Some(limit) = config.rate_limit.as_mut() {
        limit.enforce = false;
    }
    let mut host = host(&config, None);
    assert_eq!(host.http_stream(Request::get("/")).unwrap().status, 200);
    assert_eq!(counter(&mut host, POLICY, "dry_run_limited"), 1);
}
