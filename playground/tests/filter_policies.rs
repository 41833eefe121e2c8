//! ABI tests of the real module: two policies on one proxy, dry run, metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use common::{counter, filter_host, limit_config};
use hrl_playground::{Request, Response};
use hrl_plugin_config::RateLimit;

#[test]
fn two_policies_on_one_proxy_never_share_a_bucket() {
    // Both plugins run in the same VMs with the same (empty) VM id, as two WasmPlugins of one
    // module do in Istio: one shared-data namespace, so only the keys keep them apart.
    let first = limit_config("default/first", RateLimit::new(1, 2));
    let second = limit_config("other/second", RateLimit::new(1, 2));
    let mut host = filter_host(&[first, second], 2);
    let statuses: Vec<u16> = (0..3)
        .map(|_| host.http_stream(Request::get("/")).unwrap().status)
        .collect();
    // Each request takes one token from each policy's bucket: a shared bucket would be empty
    // after the first request.
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(counter(&mut host, "default/first", "allowed"), 2);
    assert_eq!(counter(&mut host, "other/second", "allowed"), 2);
    assert_eq!(counter(&mut host, "default/first", "limited"), 1);
    assert_eq!(
        counter(&mut host, "other/second", "requests"),
        2,
        "a local reply ends the chain"
    );
    let keys = host.shared().shared_data_keys();
    assert_eq!(keys, ["hrl/v1/default/first/b", "hrl/v1/other/second/b"]);
}

#[test]
fn a_policy_limited_by_the_second_plugin_still_gets_the_first_plugins_headers() {
    let mut first = limit_config("default/first", RateLimit::new(1, 5));
    first.response_headers = vec![hrl_plugin_config::Header::new("x-first", "1")];
    let second = limit_config("default/second", RateLimit::new(1, 1));
    let mut host = filter_host(&[first, second], 1);
    assert_eq!(host.http_stream(Request::get("/")).unwrap().status, 200);
    let limited = host.http_stream(Request::get("/")).unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.header_all("x-first"),
        vec!["1"],
        "every plugin encodes the local reply"
    );
}

#[test]
fn two_policies_on_one_workload_each_list_their_item_once_in_the_ietf_headers() {
    let first = limit_config("default/first", RateLimit::new(1, 5));
    let second = limit_config("default/second", RateLimit::new(1, 1));
    let mut host = filter_host(&[first, second], 1);
    let upstream = || {
        Response::new(200)
            .with_header("RateLimit", r#""upstream";r=7;t=3"#)
            .with_header("RateLimit-Policy", r#""upstream";q=10;w=60"#)
    };
    let allowed = host
        .worker(0)
        .http_stream_with(Request::get("/"), |_| upstream())
        .unwrap();
    assert_eq!(allowed.status, 200);
    // The second plugin encodes first, then the first: each adds its own member as a field
    // line of its own (Envoy's `addCopy` keeps them as separate entries); a recipient combines
    // them into one list (RFC 9110 §5.3) in which each policy appears once.
    assert_eq!(
        allowed.header_all("ratelimit"),
        vec![
            r#""upstream";r=7;t=3"#,
            r#""second";r=0;t=1"#,
            r#""first";r=4;t=1"#
        ]
    );
    assert_eq!(
        allowed.header_list("ratelimit").as_deref(),
        Some(r#""upstream";r=7;t=3, "second";r=0;t=1, "first";r=4;t=1"#)
    );
    assert_eq!(
        allowed.header_list("ratelimit-policy").as_deref(),
        Some(r#""upstream";q=10;w=60, "second";q=1;w=1, "first";q=5;w=5"#)
    );

    // The second policy limits (the first took its token before): the reply already has the
    // second's members; every plugin encodes the reply, and each policy still appears once.
    let limited = host.worker(0).http_stream(Request::get("/")).unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.header_all("ratelimit"),
        vec![r#""second";r=0;t=1"#, r#""first";r=3;t=1"#]
    );
    assert_eq!(
        limited.header_all("ratelimit-policy"),
        vec![r#""second";q=1;w=1"#, r#""first";q=5;w=5"#]
    );
}

#[test]
fn a_policy_that_limits_itself_lists_its_member_once_on_its_own_reply() {
    let only = limit_config("default/only", RateLimit::new(1, 1));
    let mut host = filter_host(&[only], 1);
    assert_eq!(host.http_stream(Request::get("/")).unwrap().status, 200);
    let limited = host.http_stream(Request::get("/")).unwrap();
    assert_eq!((limited.status, limited.local), (429, true));
    assert_eq!(limited.header_all("ratelimit"), vec![r#""only";r=0;t=1"#]);
    assert_eq!(
        limited.header_all("ratelimit-policy"),
        vec![r#""only";q=1;w=1"#]
    );
    assert_eq!(limited.header_all("retry-after"), vec!["1"]);
}

#[test]
fn dry_run_admits_everything_and_counts_would_be_limited_requests() {
    let mut rate_limit = RateLimit::new(2, 2);
    rate_limit.enforce = false;
    let policy = "default/dry";
    let mut host = filter_host(&[limit_config(policy, rate_limit)], 2);
    let responses: Vec<_> = (0..5)
        .map(|_| host.http_stream(Request::get("/")).unwrap())
        .collect();
    assert!(
        responses.iter().all(|r| r.status == 200 && !r.local),
        "{responses:?}"
    );
    assert_eq!(
        responses[4].header_all("ratelimit"),
        vec![r#""dry";r=0;t=1"#]
    );
    assert!(responses.iter().all(|r| r.header("retry-after").is_none()));
    assert_eq!(counter(&mut host, policy, "dry_run_limited"), 3);
    assert_eq!(counter(&mut host, policy, "allowed"), 2);
    assert_eq!(counter(&mut host, policy, "limited"), 0);
    assert_eq!(counter(&mut host, policy, "requests"), 5);
}

#[test]
fn the_filter_logs_nothing_per_request_above_debug() {
    let mut host = filter_host(&[common::seed_config()], 1);
    let before = host.logs().len();
    for _ in 0..5 {
        host.http_stream(Request::get("/")).unwrap();
    }
    let noisy: Vec<_> = host.logs()[before..]
        .iter()
        .filter(|l| l.level > hrl_playground::LogLevel::Debug)
        .cloned()
        .collect();
    assert!(noisy.is_empty(), "{noisy:?}");
}
