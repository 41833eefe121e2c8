//! ABI tests of the real module: `match` decides, once per request, whether a policy applies.
//! A request it does not match passes untouched: no token, no header set or removed, only the
//! `skipped` counter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{counter, filter_host, limit_config};
use hrl_playground::{Host, Request, Response};
use hrl_plugin_config::{Header, HeaderMatch, Key, Match, PathMatch, PluginConfig, RateLimit};

const LOGIN: &str = "default/login";

/// POST /login, 5 per minute per client address, with a response header and a removal.
fn login_policy() -> PluginConfig {
    let mut rate_limit = RateLimit::per_period(5, 60, 5);
    rate_limit.key = Key::ClientAddress;
    PluginConfig {
        response_headers: vec![Header::new("x-policy", "login")],
        remove_response_headers: vec!["x-powered-by".into()],
        matches: Some(Match {
            methods: vec!["POST".into()],
            paths: vec![PathMatch::Exact("/login".into())],
            ..Match::default()
        }),
        ..limit_config(LOGIN, rate_limit)
    }
}

/// One token a second, burst 1, applied to requests that `m` matches.
fn one_per_second(policy: &str, m: Match) -> PluginConfig {
    PluginConfig {
        matches: Some(m),
        ..limit_config(policy, RateLimit::new(1, 1))
    }
}

/// The response to `request` when the upstream answers 200 with `x-powered-by`.
fn send(host: &mut Host, request: Request) -> Response {
    let upstream = Response::new(200).with_header("x-powered-by", "php");
    host.worker(0)
        .http_stream_view(&request, &upstream, |view| view.to_response())
        .unwrap()
}

/// The response has none of the policy's effects.
#[track_caller]
fn untouched(response: &Response) {
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-powered-by"), Some("php"), "not removed");
    for name in ["x-policy", "ratelimit", "ratelimit-policy", "retry-after"] {
        assert_eq!(
            response.header(name),
            None,
            "{name} set on a skipped request"
        );
    }
}

fn on_host(request: Request, authority: &str) -> Request {
    let mut request = request;
    for (name, value) in &mut request.headers {
        if name == ":authority" {
            *value = authority.into();
        }
    }
    request
}

#[test]
fn a_login_policy_skips_other_requests_and_limits_post_login_five_per_minute() {
    let mut host = filter_host(&[login_policy()], 1);
    for _ in 0..20 {
        untouched(&send(&mut host, Request::get("/login")));
        untouched(&send(&mut host, Request::new("POST", "/other")));
    }
    for left in (0..5).rev() {
        let response = send(&mut host, Request::new("POST", "/login?next=/home"));
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-policy"), Some("login"));
        assert_eq!(response.header("x-powered-by"), None);
        assert_eq!(
            response.header("ratelimit"),
            Some(format!(r#""login";r={left};t=12"#).as_str())
        );
    }
    let limited = send(&mut host, Request::new("POST", "/login"));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("12"));
    // Other requests from the same client are still not this policy's business.
    untouched(&send(&mut host, Request::get("/login")));
    assert_eq!(counter(&mut host, LOGIN, "skipped"), 41);
    assert_eq!(counter(&mut host, LOGIN, "requests"), 6);
    assert_eq!(counter(&mut host, LOGIN, "allowed"), 5);
    assert_eq!(counter(&mut host, LOGIN, "limited"), 1);
}

#[test]
fn a_path_prefix_matches_whole_path_elements() {
    let api = Match {
        paths: vec![PathMatch::Prefix("/api".into())],
        ..Match::default()
    };
    let mut host = filter_host(&[one_per_second("default/api", api)], 1);
    for path in ["/apix", "/ap", "/", "/v1/api", "/API/x"] {
        untouched(&send(&mut host, Request::get(path)));
    }
    assert_eq!(
        send(&mut host, Request::get("/api/v1/users?x=1")).status,
        200
    );
    assert_eq!(send(&mut host, Request::get("/api")).status, 429);
    assert_eq!(send(&mut host, Request::get("/api/")).status, 429);
    untouched(&send(&mut host, Request::get("/apix")));
    host.clock().advance(Duration::from_secs(1));
    assert_eq!(send(&mut host, Request::get("/api")).status, 200);
}

#[test]
fn a_wildcard_host_matches_names_under_it_without_port_or_case() {
    let hosts = Match {
        hosts: vec!["*.example.com".into()],
        ..Match::default()
    };
    let mut host = filter_host(&[one_per_second("default/hosts", hosts)], 1);
    for authority in [
        "example.com",
        "example.com:80",
        "example.org",
        "xexample.com",
    ] {
        untouched(&send(&mut host, on_host(Request::get("/"), authority)));
    }
    let first = send(
        &mut host,
        on_host(Request::get("/"), "api.example.com:8443"),
    );
    assert_eq!(first.status, 200);
    assert!(first.header("ratelimit").is_some(), "a matched request");
    let second = send(&mut host, on_host(Request::get("/"), "A.B.EXAMPLE.COM"));
    assert_eq!(
        second.status, 429,
        "same bucket, case-insensitive, deeper name"
    );
    assert_eq!(counter(&mut host, "default/hosts", "skipped"), 4);
}

#[test]
fn header_rules_need_presence_or_the_exact_value() {
    let headers = Match {
        headers: vec![
            HeaderMatch {
                name: "x-tenant".into(),
                value: Some("beta".into()),
            },
            HeaderMatch {
                name: "x-debug".into(),
                value: None,
            },
        ],
        ..Match::default()
    };
    let mut host = filter_host(&[one_per_second("default/beta", headers)], 1);
    let req = |tenant: Option<&str>, debug: Option<&str>| {
        let mut request = Request::get("/");
        if let Some(tenant) = tenant {
            request = request.with_header("X-Tenant", tenant);
        }
        if let Some(debug) = debug {
            request = request.with_header("x-debug", debug);
        }
        request
    };
    untouched(&send(&mut host, req(Some("beta"), None)));
    untouched(&send(&mut host, req(None, Some("1"))));
    untouched(&send(&mut host, req(Some("Beta"), Some("1"))));
    untouched(&send(&mut host, req(Some("alpha"), Some(""))));
    assert_eq!(send(&mut host, req(Some("beta"), Some(""))).status, 200);
    assert_eq!(send(&mut host, req(Some("beta"), Some("yes"))).status, 429);
}

/// Over an hour, on four worker VMs: matching requests draw exactly the burst plus the refill
/// from the shared bucket, and the interleaved requests that do not match never touch it.
#[test]
fn four_workers_keep_a_matched_limit_exact_and_never_limit_other_requests() {
    let mut rate_limit = RateLimit::per_period(5, 60, 5);
    rate_limit.key = Key::None;
    let policy = PluginConfig {
        matches: Some(Match {
            methods: vec!["POST".into()],
            paths: vec![PathMatch::Prefix("/login".into())],
            ..Match::default()
        }),
        ..limit_config(LOGIN, rate_limit)
    };
    let mut host = filter_host(&[policy], 4);
    let (mut admitted, mut other_limited) = (0u64, 0u64);
    for second in 0..=3600usize {
        if second > 0 {
            host.clock().advance(Duration::from_secs(1));
        }
        let login = host
            .worker(second)
            .http_stream(Request::new("POST", "/login/password"))
            .unwrap();
        admitted += u64::from(login.status == 200);
        let other = host
            .worker(second + 1)
            .http_stream(Request::new("POST", "/loginx"))
            .unwrap();
        other_limited += u64::from(other.status != 200);
    }
    assert_eq!(admitted, 5 + 300);
    assert_eq!(other_limited, 0);
    assert_eq!(counter(&mut host, LOGIN, "allowed"), 305);
    assert_eq!(counter(&mut host, LOGIN, "skipped"), 3601);
}

/// Several limits on one workload are several policies: a per-second limit on everything and
/// a per-minute limit on logins, each counting only what it matches.
#[test]
fn two_policies_on_one_workload_each_apply_to_their_own_requests() {
    let everything = limit_config("default/all", RateLimit::new(100, 100));
    let mut host = filter_host(&[everything, login_policy()], 1);
    for _ in 0..5 {
        assert_eq!(send(&mut host, Request::new("POST", "/login")).status, 200);
    }
    let limited = send(&mut host, Request::new("POST", "/login"));
    assert_eq!(limited.status, 429);
    let other = send(&mut host, Request::get("/"));
    assert_eq!(other.status, 200);
    assert_eq!(other.header("ratelimit-policy"), Some(r#""all";q=100;w=1"#));
    assert_eq!(counter(&mut host, "default/all", "requests"), 7);
    assert_eq!(counter(&mut host, "default/login", "requests"), 6);
    assert_eq!(counter(&mut host, "default/login", "skipped"), 1);
}

/// A reply sent by a filter earlier in the chain never reached this policy's request callback:
/// a policy with a `match` cannot tell whether it matches and leaves it alone, while a policy
/// without one decorates it as every response.
#[test]
fn a_reply_from_an_earlier_filter_gets_no_headers_from_a_policy_with_a_match() {
    let first = limit_config("default/first", RateLimit::new(1, 1));
    let everything = PluginConfig {
        response_headers: vec![Header::new("x-everything", "1")],
        ..limit_config("default/everything", RateLimit::new(100, 100))
    };
    let matched = PluginConfig {
        response_headers: vec![Header::new("x-matched", "1")],
        matches: Some(Match {
            methods: vec!["GET".into()],
            ..Match::default()
        }),
        ..limit_config("default/matched", RateLimit::new(100, 100))
    };
    let mut host = filter_host(&[first, everything, matched], 1);
    let allowed = send(&mut host, Request::get("/"));
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-everything"), Some("1"));
    assert_eq!(allowed.header("x-matched"), Some("1"));
    let limited = send(&mut host, Request::get("/"));
    assert_eq!(limited.status, 429, "the first policy answers");
    assert_eq!(limited.header("x-everything"), Some("1"));
    assert_eq!(limited.header("x-matched"), None);
    assert_eq!(counter(&mut host, "default/matched", "requests"), 1);
    assert_eq!(counter(&mut host, "default/matched", "skipped"), 0);
}
