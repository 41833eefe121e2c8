//! ABI tests of the real module: rates over periods longer than a second (contract 2,
//! `tokens` + `periodSeconds`). The pluginConfig JSON is written out here as the operator will
//! write it: the CRD has no period field yet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{counter, filter};
use hrl_playground::{Host, LogLevel, Plugin, Request};

const POLICY: &str = "default/login";

/// 5 tokens per 60 s, burst 5, with these rate-limit headers, on `workers` worker VMs.
fn five_per_minute(headers: &str, workers: usize) -> Host {
    let json = format!(
        r#"{{"version":2,"policy":"{POLICY}","rateLimit":{{"tokens":5,"periodSeconds":60,"burst":5,"rateLimitHeaders":"{headers}"}}}}"#
    );
    Host::builder(filter())
        .workers(workers)
        .log_level(LogLevel::Debug)
        .plugin(Plugin::new("default.login", json.into_bytes()))
        .build()
        .unwrap()
}

#[test]
fn five_per_minute_admits_exactly_five_then_429_with_retry_after_twelve() {
    let mut host = five_per_minute("ietf", 1);
    for left in (0..5).rev() {
        let response = host.http_stream(Request::get("/")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("ratelimit-policy"),
            Some(r#""login";q=5;w=60"#)
        );
        assert_eq!(
            response.header("ratelimit"),
            Some(format!(r#""login";r={left};t=12"#).as_str())
        );
    }
    let limited = host.http_stream(Request::get("/")).unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("12"));
    assert_eq!(limited.header("ratelimit"), Some(r#""login";r=0;t=12"#));
    // 5.5 s later the next token is 6.5 s away: 7 whole seconds.
    host.clock().advance(Duration::from_millis(5500));
    let later = host.http_stream(Request::get("/")).unwrap();
    assert_eq!(later.status, 429);
    assert_eq!(later.header("retry-after"), Some("7"));
    // At 12 s it is there.
    host.clock().advance(Duration::from_millis(6500));
    assert_eq!(host.http_stream(Request::get("/")).unwrap().status, 200);
}

#[test]
fn draft03_reset_is_the_wait_for_the_next_token_when_empty() {
    let mut host = five_per_minute("draft03", 1);
    for _ in 0..4 {
        let response = host.http_stream(Request::get("/")).unwrap();
        assert_eq!(response.header("x-ratelimit-reset"), Some("0"));
    }
    let last = host.http_stream(Request::get("/")).unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(last.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(last.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(last.header("x-ratelimit-reset"), Some("12"));
    let limited = host.http_stream(Request::get("/")).unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("x-ratelimit-reset"), Some("12"));
    assert_eq!(limited.header("retry-after"), Some("12"));
}

/// Requests every second from 0 s through 3600 s, round robin over the host's workers.
fn an_hour_of_requests_every_second(host: &mut Host) -> u64 {
    let mut admitted = 0;
    for second in 0..=3600usize {
        if second > 0 {
            host.clock().advance(Duration::from_secs(1));
        }
        let response = host.worker(second).http_stream(Request::get("/")).unwrap();
        admitted += u64::from(response.status == 200);
    }
    admitted
}

// 5 per minute for 60 minutes is 300 tokens: the burst plus 300 (issue 9 says "5 + 60 = 65",
// which is one token per minute).
#[test]
fn over_a_simulated_hour_five_per_minute_admits_exactly_the_burst_plus_three_hundred() {
    let mut host = five_per_minute("ietf", 1);
    let admitted = an_hour_of_requests_every_second(&mut host);
    assert_eq!(admitted, 5 + 300);
    assert_eq!(counter(&mut host, POLICY, "allowed"), 305);
    assert_eq!(counter(&mut host, POLICY, "limited"), 3601 - 305);
}

#[test]
fn four_workers_sharing_a_five_per_minute_bucket_admit_exactly_the_burst_plus_three_hundred() {
    let mut host = five_per_minute("ietf", 4);
    let admitted = an_hour_of_requests_every_second(&mut host);
    assert_eq!(admitted, 5 + 300);
    assert_eq!(counter(&mut host, POLICY, "allowed"), 305);
}

#[test]
fn one_per_minute_admits_exactly_the_burst_plus_sixty_in_an_hour() {
    let json = format!(
        r#"{{"version":2,"policy":"{POLICY}","rateLimit":{{"tokens":1,"periodSeconds":60,"burst":5}}}}"#
    );
    let mut host = Host::builder(filter())
        .workers(4)
        .plugin(Plugin::new("default.login", json.into_bytes()))
        .build()
        .unwrap();
    assert_eq!(an_hour_of_requests_every_second(&mut host), 5 + 60);
}
