//! ABI tests of the real module: a limited gRPC request is answered as gRPC
//! `RESOURCE_EXHAUSTED`, with the rate-limit headers, not as HTTP 429 (which Envoy would turn
//! into `UNAVAILABLE`, retried on another host).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use common::{filter_host, seed_config};
use hrl_playground::{Request, Response};

fn grpc_request(content_type: &str) -> Request {
    Request::new("POST", "/grpc.health.v1.Health/Check")
        .with_header("content-type", content_type)
        .with_header("te", "trailers")
}

#[test]
fn a_limited_grpc_request_gets_resource_exhausted_with_the_rate_limit_headers() {
    let mut host = filter_host(&[seed_config()], 1);
    let worker = host.worker(0);
    let upstream = |_: &Request| {
        Response::new(200)
            .with_header("content-type", "application/grpc")
            .with_header("who-am-i", "upstream")
    };
    let allowed: Vec<Response> = (0..2)
        .map(|_| {
            worker
                .http_stream_with(grpc_request("application/grpc"), upstream)
                .unwrap()
        })
        .collect();
    for response in &allowed {
        assert_eq!(
            (response.status, response.local),
            (200, false),
            "{response:?}"
        );
        assert_eq!(response.header("grpc-status"), None, "the upstream's call");
        assert_eq!(response.header_all("who-am-i"), vec!["wasm-extension"]);
    }
    assert_eq!(
        allowed[1].header_all("ratelimit"),
        vec![r#""httpbin";r=0;t=1"#]
    );

    let limited = worker
        .http_stream_with(grpc_request("application/grpc+proto"), upstream)
        .unwrap();
    assert!(limited.local, "{limited:?}");
    assert_eq!(limited.status, 200, "gRPC errors travel in an HTTP 200");
    assert_eq!(
        limited.header_all("grpc-status"),
        vec!["8"],
        "RESOURCE_EXHAUSTED"
    );
    assert_eq!(
        limited.header_all("grpc-message"),
        vec!["rate limited, wait and retry."]
    );
    assert_eq!(limited.header_all("content-type"), vec!["application/grpc"]);
    assert!(limited.body.is_empty(), "trailers-only: {limited:?}");
    assert_eq!(
        limited.header_all("ratelimit"),
        vec![r#""httpbin";r=0;t=1"#]
    );
    assert_eq!(
        limited.header_all("ratelimit-policy"),
        vec![r#""httpbin";q=2;w=1"#]
    );
    assert_eq!(limited.header_all("retry-after"), vec!["1"]);
    assert_eq!(limited.header_all("powered-by"), vec!["hrl-filter"]);
    assert_eq!(limited.header_all("who-am-i"), vec!["wasm-extension"]);
    assert_eq!(common::counter(&mut host, "default/httpbin", "limited"), 1);
}

#[test]
fn requests_envoy_does_not_treat_as_grpc_still_get_the_configured_http_status() {
    for content_type in ["application/grpc-web", "application/json"] {
        let mut host = filter_host(&[seed_config()], 1);
        let responses: Vec<Response> = (0..3)
            .map(|_| host.http_stream(grpc_request(content_type)).unwrap())
            .collect();
        let limited = &responses[2];
        assert_eq!(
            (limited.status, limited.local),
            (429, true),
            "{content_type}"
        );
        assert_eq!(limited.header("grpc-status"), None, "{content_type}");
        assert_eq!(limited.body_text(), "rate limited, wait and retry.\n");
    }
}
