//! `rateLimit.service` (scope Cluster): its rules name their field, the period must be one of
//! RLS's fixed windows, and a configuration with a service is contract 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hrl_plugin_config::{FailureMode, PluginConfig, RateLimit, RateLimitService};

const CLUSTER: &str = "outbound|8081||ratelimit.hrl-system.svc.cluster.local";
const AUTHORITY: &str = "ratelimit.hrl-system.svc.cluster.local";

fn with_service(tokens: u32, period_seconds: u32, service: RateLimitService) -> PluginConfig {
    PluginConfig {
        policy: "default/api".into(),
        response_headers: Vec::new(),
        remove_response_headers: Vec::new(),
        rate_limit: Some(RateLimit {
            service: Some(service),
            ..RateLimit::per_period(tokens, period_seconds, tokens)
        }),
        matches: None,
    }
}

fn service() -> RateLimitService {
    RateLimitService::new(CLUSTER, AUTHORITY, "hrl")
}

#[track_caller]
fn rejects(config: PluginConfig, field: &str, rule_contains: &str) {
    let err = config.validate().expect_err("config should be invalid");
    assert_eq!(err.field, field, "{err}");
    assert!(err.rule.contains(rule_contains), "{err}");
}

#[test]
fn a_service_config_round_trips_with_its_defaults_and_is_contract_two() {
    let config = with_service(100, 60, service());
    config.validate().unwrap();
    assert_eq!(config.version(), 2);
    let json = config.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["rateLimit"]["service"],
        serde_json::json!({"cluster": CLUSTER, "authority": AUTHORITY, "domain": "hrl", "timeoutMs": 100, "failureMode": "allow"})
    );
    assert_eq!(PluginConfig::from_json(json.as_bytes()).unwrap(), config);
    let minimal = r#"{"version":2,"policy":"a/b","rateLimit":{"tokensPerSecond":5,"burst":5,"service":{"cluster":"c","authority":"a","domain":"d","failureMode":"deny"}}}"#;
    let parsed = PluginConfig::from_json(minimal.as_bytes()).unwrap();
    let parsed = parsed.rate_limit.unwrap().service.unwrap();
    assert_eq!(parsed.timeout_ms, 100);
    assert_eq!(parsed.failure_mode, FailureMode::Deny);
}

#[test]
fn the_period_must_be_a_second_a_minute_an_hour_or_a_day() {
    for period in [1, 60, 3_600, 86_400] {
        with_service(5, period, service()).validate().unwrap();
    }
    for period in [2, 30, 120, 7_200, 43_200] {
        rejects(
            with_service(5, period, service()),
            "rateLimit.periodSeconds",
            "must be 1, 60, 3600 or 86400 with a rate limit service",
        );
    }
}

#[test]
fn cluster_authority_and_domain_are_visible_ascii_up_to_512_bytes() {
    for (field, set) in [
        (
            "rateLimit.service.cluster",
            (|s: &mut RateLimitService, v: String| s.cluster = v)
                as fn(&mut RateLimitService, String),
        ),
        ("rateLimit.service.authority", |s, v| s.authority = v),
        ("rateLimit.service.domain", |s, v| s.domain = v),
    ] {
        for bad in [String::new(), "a b".into(), "é".into()] {
            let mut svc = service();
            set(&mut svc, bad);
            rejects(with_service(5, 1, svc), field, "1 to 512 visible ASCII");
        }
    }
}

#[test]
fn the_timeout_is_one_to_ten_thousand_milliseconds() {
    for (timeout_ms, ok) in [(0, false), (1, true), (10_000, true), (10_001, false)] {
        let mut svc = service();
        svc.timeout_ms = timeout_ms;
        let config = with_service(5, 1, svc);
        if ok {
            config.validate().unwrap();
        } else {
            rejects(config, "rateLimit.service.timeoutMs", "between 1 and 10000");
        }
    }
}

#[test]
fn a_service_without_version_two_is_refused() {
    let json = r#"{"policy":"a/b","rateLimit":{"tokensPerSecond":5,"burst":5,"service":{"cluster":"c","authority":"a","domain":"d"}}}"#;
    let err = PluginConfig::from_json(json.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("version: must be 2 or more"),
        "{err}"
    );
}

#[test]
fn cluster_and_authority_together_fit_in_a_one_byte_length() {
    let mut svc = service();
    svc.cluster = "c".repeat(60);
    svc.authority = "a".repeat(60);
    with_service(5, 1, svc.clone()).validate().unwrap();
    svc.authority.push('a');
    rejects(
        with_service(5, 1, svc),
        "rateLimit.service.cluster",
        "at most 120 bytes",
    );
    let mut long_domain = service();
    long_domain.domain = "d".repeat(513);
    rejects(
        with_service(5, 1, long_domain),
        "rateLimit.service.domain",
        "1 to 512",
    );
}
