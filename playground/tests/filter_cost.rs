//! ABI tests of the real module: how many host calls a request costs, and counters that reach
//! the host on a tick instead of with a host call per request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{filter, filter_host, plugin, seed_config};
use hrl_playground::{Host, Request, Response};
use hrl_plugin_config::PluginConfig;

/// A one-worker host of `config` that counts host calls.
fn counting_host(config: &PluginConfig) -> Host {
    Host::builder(filter())
        .plugin(plugin(config))
        .count_host_calls(true)
        .build()
        .unwrap()
}

/// Host calls of one stream after two warm-up streams, a second apart (or at one instant when
/// `frozen`, so the bucket empties).
fn calls_per_stream(config: &PluginConfig, frozen: bool) -> (u64, u16) {
    let mut host = counting_host(config);
    let clock = host.clock().clone();
    let (request, upstream) = (Request::get("/headers"), Response::new(200));
    let worker = host.worker(0);
    for _ in 0..2 {
        worker
            .http_stream_view(&request, &upstream, |_| ())
            .unwrap();
    }
    if !frozen {
        clock.advance(Duration::from_secs(1));
    }
    let before = worker.host_calls().unwrap();
    let status = worker
        .http_stream_view(&request, &upstream, |view| view.status())
        .unwrap();
    (worker.host_calls().unwrap() - before, status)
}

#[test]
fn the_seed_equivalent_policy_makes_nine_host_calls_per_allowed_request() {
    // Request: clock, shared-data get and set. Response: four configured headers replaced,
    // RateLimit-Policy and RateLimit added. No counter call, no header read.
    assert_eq!(calls_per_stream(&seed_config(), false), (9, 200));
}

#[test]
fn a_limited_request_reads_content_type_once_and_sends_its_reply_in_ten_host_calls() {
    // Request: clock, shared-data get (a refused take writes nothing), content-type, the
    // reply. Response (the reply re-entering): four configured headers, powered-by and
    // retry-after replaced; the list members are on the reply already.
    assert_eq!(calls_per_stream(&seed_config(), true), (10, 429));
}

#[test]
fn a_headers_only_policy_makes_one_host_call_per_header() {
    let headers_only = PluginConfig {
        rate_limit: None,
        ..seed_config()
    };
    assert_eq!(calls_per_stream(&headers_only, false), (4, 200));
}

#[test]
fn counts_reach_the_host_on_the_next_tick_not_per_request() {
    let mut host = filter_host(&[seed_config()], 2);
    for worker in 0..2 {
        let period = host.worker(worker).tick_period();
        assert!(
            period.is_some_and(|p| p > Duration::ZERO && p <= Duration::from_secs(1)),
            "worker {worker} ticks every {period:?}"
        );
    }
    for i in 0..3 {
        host.worker(i).http_stream(Request::get("/")).unwrap();
    }
    let requests = |host: &Host| host.metric("hrl.default.httpbin.requests");
    assert_eq!(requests(&host), Some(0), "defined, nothing handed over yet");
    host.worker(0).tick().unwrap();
    assert_eq!(requests(&host), Some(2), "worker 0 served two of the three");
    host.tick().unwrap();
    assert_eq!(requests(&host), Some(3));
    host.tick().unwrap();
    assert_eq!(requests(&host), Some(3), "a count is handed over once");
    assert_eq!(host.metric("hrl.default.httpbin.allowed"), Some(2));
    assert_eq!(host.metric("hrl.default.httpbin.limited"), Some(1));
}
