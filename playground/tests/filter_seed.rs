//! ABI tests of the real module: the seed scenario, header formats, headers-only and bad configs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{filter_host, seed_config};
use hrl_playground::{Error, Host, LogLevel, Plugin, Request, Response, ResponseView};
use hrl_plugin_config::{Header, PluginConfig, RateLimitHeaders};

const SEED_HEADERS: [(&str, &str); 4] = [
    ("who-am-i", "wasm-extension"),
    ("injected-by", "istio-api!"),
    ("hally", "wang"),
    ("wang", "1234567"),
];

fn assert_seed_headers_once(response: &Response) {
    for (name, value) in SEED_HEADERS {
        assert_eq!(
            response.header_all(name),
            vec![value],
            "{name} on {response:?}"
        );
    }
}

/// An upstream that already sends one of the configured headers twice, to prove it ends up
/// exactly once (Envoy's `setCopy` removes every value, then adds one).
fn upstream() -> Response {
    Response::new(200)
        .with_header("who-am-i", "upstream")
        .with_header("content-type", "application/json")
        .with_header("Who-Am-I", "upstream again")
}

/// What a test reads from a [`ResponseView`].
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    local: bool,
    retry_after: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
    names: Vec<Vec<u8>>,
}

fn seen(view: &ResponseView<'_>) -> Seen {
    Seen {
        status: view.status(),
        local: view.local(),
        retry_after: view.header("Retry-After").map(<[u8]>::to_vec),
        content_type: view.header("content-type").map(<[u8]>::to_vec),
        body: view.body().to_vec(),
        names: view.headers().map(|(name, _)| name.to_vec()).collect(),
    }
}

#[test]
fn response_views_read_each_stream_in_place_and_nothing_carries_over_between_streams() {
    let mut host = filter_host(&[seed_config()], 1);
    let (request, upstream) = (Request::get("/headers"), upstream());
    let worker = host.worker(0);
    let views: Vec<Seen> = (0..3)
        .map(|_| worker.http_stream_view(&request, &upstream, seen).unwrap())
        .collect();
    assert_eq!(
        views
            .iter()
            .map(|v| (v.status, v.local))
            .collect::<Vec<_>>(),
        vec![(200, false), (200, false), (429, true)]
    );
    let limited = &views[2];
    assert_eq!(limited.retry_after.as_deref(), Some(&b"1"[..]));
    assert_eq!(limited.content_type.as_deref(), Some(&b"text/plain"[..]));
    assert_eq!(limited.body, b"rate limited, wait and retry.\n");
    assert!(
        views
            .iter()
            .all(|v| !v.names.iter().any(|n| n.starts_with(b":"))),
        "no pseudo headers in a view: {views:?}"
    );

    host.clock().advance(Duration::from_secs(1));
    let worker = host.worker(0);
    let after = worker.http_stream_view(&request, &upstream, seen).unwrap();
    assert_eq!(
        after, views[0],
        "the reply's status, headers and body are gone"
    );
    let owned = worker
        .http_stream_view(&request, &upstream, |view| view.to_response())
        .unwrap();
    assert_eq!((owned.status, owned.local), (200, false));
    assert_seed_headers_once(&owned);
    assert_eq!(owned.header("content-type"), Some("application/json"));
}

#[test]
fn seed_scenario_admits_burst_then_limits_with_retry_after_then_recovers_after_one_second() {
    let mut host = filter_host(&[seed_config()], 1);
    let worker = host.worker(0);
    let first = worker
        .http_stream_with(hrl_playground::Request::get("/headers"), |_| upstream())
        .unwrap();
    let second = worker
        .http_stream_with(hrl_playground::Request::get("/headers"), |_| upstream())
        .unwrap();
    let third = worker
        .http_stream_with(hrl_playground::Request::get("/headers"), |_| upstream())
        .unwrap();

    assert_eq!((first.status, second.status, third.status), (200, 200, 429));
    assert!(!first.local && !second.local && third.local);
    for response in [&first, &second, &third] {
        assert_seed_headers_once(response);
        assert_eq!(
            response.header_all("ratelimit-policy"),
            vec![r#""httpbin";q=2;w=1"#]
        );
    }
    assert_eq!(first.header_all("ratelimit"), vec![r#""httpbin";r=1;t=1"#]);
    assert_eq!(second.header_all("ratelimit"), vec![r#""httpbin";r=0;t=1"#]);
    assert_eq!(third.header_all("ratelimit"), vec![r#""httpbin";r=0;t=1"#]);
    assert_eq!(first.header("retry-after"), None);
    assert_eq!(third.header_all("retry-after"), vec!["1"]);
    assert_eq!(third.header_all("powered-by"), vec!["hrl-filter"]);
    assert_eq!(
        first.header("powered-by"),
        None,
        "limited-reply headers only on the reply"
    );
    assert_eq!(third.body_text(), "rate limited, wait and retry.\n");
    assert_eq!(
        first.header("content-type"),
        Some("application/json"),
        "upstream headers kept"
    );

    host.clock().advance(Duration::from_secs(1));
    let fourth = host
        .worker(0)
        .http_stream(hrl_playground::Request::get("/headers"))
        .unwrap();
    assert_eq!(fourth.status, 200);
    assert_eq!(fourth.header_all("ratelimit"), vec![r#""httpbin";r=1;t=1"#]);
    assert_seed_headers_once(&fourth);

    assert_eq!(common::counter(&mut host, "default/httpbin", "requests"), 4);
    assert_eq!(common::counter(&mut host, "default/httpbin", "allowed"), 3);
    assert_eq!(common::counter(&mut host, "default/httpbin", "limited"), 1);
}

#[test]
fn half_a_second_refills_one_token_at_two_per_second() {
    let mut host = filter_host(&[seed_config()], 1);
    for _ in 0..2 {
        assert_eq!(
            host.http_stream(hrl_playground::Request::get("/"))
                .unwrap()
                .status,
            200
        );
    }
    host.clock().advance(Duration::from_millis(499));
    assert_eq!(
        host.http_stream(hrl_playground::Request::get("/"))
            .unwrap()
            .status,
        429
    );
    host.clock().advance(Duration::from_millis(1));
    assert_eq!(
        host.http_stream(hrl_playground::Request::get("/"))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        host.http_stream(hrl_playground::Request::get("/"))
            .unwrap()
            .status,
        429
    );
}

fn with_headers(format: RateLimitHeaders) -> PluginConfig {
    let mut config = seed_config();
    if let Some(rate_limit) = config.rate_limit.as_mut() {
        rate_limit.rate_limit_headers = format;
    }
    config
}

#[test]
fn draft03_headers_are_plain_integers() {
    let mut host = filter_host(&[with_headers(RateLimitHeaders::Draft03)], 1);
    let responses: Vec<Response> = (0..3)
        .map(|_| host.http_stream(hrl_playground::Request::get("/")).unwrap())
        .collect();
    let remaining: Vec<Vec<&str>> = responses
        .iter()
        .map(|r| r.header_all("x-ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, vec![vec!["1"], vec!["0"], vec!["0"]]);
    // Like Envoy's local rate limit filter: reset is 0 while a token is available.
    let reset: Vec<Vec<&str>> = responses
        .iter()
        .map(|r| r.header_all("x-ratelimit-reset"))
        .collect();
    assert_eq!(reset, vec![vec!["0"], vec!["1"], vec!["1"]]);
    for response in &responses {
        assert_eq!(response.header_all("x-ratelimit-limit"), vec!["2"]);
        assert_eq!(response.header("ratelimit"), None);
    }
    assert_eq!(responses[2].status, 429);
    assert_eq!(responses[2].header_all("retry-after"), vec!["1"]);
}

#[test]
fn no_rate_limit_headers_still_send_retry_after_on_limited_replies() {
    let mut host = filter_host(&[with_headers(RateLimitHeaders::None)], 1);
    let responses: Vec<Response> = (0..3)
        .map(|_| host.http_stream(hrl_playground::Request::get("/")).unwrap())
        .collect();
    for response in &responses {
        assert!(
            response
                .headers
                .iter()
                .all(|(n, _)| !n.contains("ratelimit")),
            "{response:?}"
        );
    }
    assert_eq!(responses[2].status, 429);
    assert_eq!(responses[2].header_all("retry-after"), vec!["1"]);
}

#[test]
fn a_config_without_rate_limit_only_sets_and_removes_headers() {
    let config = PluginConfig {
        policy: "default/headers".into(),
        response_headers: vec![Header::new("x-served-by", "hrl")],
        remove_response_headers: vec!["x-powered-by".into(), "server".into()],
        rate_limit: None,
        matches: None,
    };
    let mut host = filter_host(&[config], 2);
    for i in 0..20 {
        let response = host
            .worker(i)
            .http_stream_with(hrl_playground::Request::get("/"), |_| {
                Response::new(200)
                    .with_header("x-powered-by", "php")
                    .with_header("server", "a")
                    .with_header("server", "b")
                    .with_header("x-served-by", "upstream")
                    .with_header("etag", "\"1\"")
            })
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header_all("x-served-by"), vec!["hrl"]);
        assert_eq!(response.header("x-powered-by"), None);
        assert!(
            response.header_all("server").is_empty(),
            "every value removed"
        );
        assert_eq!(response.header("etag"), Some("\"1\""));
        assert!(
            response
                .headers
                .iter()
                .all(|(n, _)| !n.contains("ratelimit"))
        );
    }
    assert_eq!(
        host.shared_data_len(),
        0,
        "headers-only policies keep no buckets"
    );
}

fn configure(json: &str) -> Error {
    Host::builder(common::filter())
        .log_level(LogLevel::Debug)
        .plugin(Plugin::new("default.bad", json.as_bytes().to_vec()))
        .build()
        .expect_err("the filter refuses this config")
}

#[test]
fn a_bad_config_is_refused_at_configure_time_with_a_log_line_naming_the_field() {
    // Hand-written on purpose: the typed builder cannot express an invalid config.
    let bad = r#"{"policy":"default/bad","rateLimit":{"tokensPerSecond":2,"burst":0}}"#;
    let Error::Configure { plugin, logs, .. } = configure(bad) else {
        panic!("expected Configure")
    };
    assert_eq!(plugin, "default.bad");
    assert!(
        logs.iter()
            .any(|line| line.starts_with("error") && line.contains("rateLimit.burst")),
        "{logs:?}"
    );

    let unknown = r#"{"policy":"default/bad","rateLimits":{}}"#;
    let Error::Configure { logs, .. } = configure(unknown) else {
        panic!("expected Configure")
    };
    assert!(
        logs.iter().any(|line| line.contains("rateLimits")),
        "{logs:?}"
    );

    let Error::Configure { logs, .. } = configure("") else {
        panic!("expected Configure")
    };
    assert!(!logs.is_empty(), "an empty config is refused with a reason");
}
