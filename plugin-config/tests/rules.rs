//! One test per validation rule: each names the field and the rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hrl_plugin_config::{Header, Key, PluginConfig, RateLimit};

fn base() -> PluginConfig {
    PluginConfig {
        policy: "default/httpbin".into(),
        response_headers: vec![Header::new("x-a", "1")],
        remove_response_headers: vec!["server".into()],
        rate_limit: Some(RateLimit::new(2, 2)),
        matches: None,
    }
}

fn limit(config: &mut PluginConfig) -> &mut RateLimit {
    config.rate_limit.as_mut().expect("base has a rate limit")
}

#[track_caller]
fn rejects(config: PluginConfig, field: &str, rule_contains: &str) {
    let err = config.validate().expect_err("config should be invalid");
    assert_eq!(err.field, field, "{err}");
    assert!(
        err.rule.contains(rule_contains),
        "rule {:?} lacks {rule_contains:?}",
        err.rule
    );
    assert_eq!(err.to_string(), format!("{}: {}", err.field, err.rule));
}

fn with_header(name: &str, value: &str) -> PluginConfig {
    let mut c = base();
    c.response_headers.push(Header::new(name, value));
    c
}

#[test]
fn the_base_config_is_valid() {
    base().validate().unwrap();
}

#[test]
fn policy_must_be_namespace_slash_name() {
    for bad in [
        "",
        "httpbin",
        "/httpbin",
        "default/",
        "Default/httpbin",
        "a/b/c",
        "a b/c",
    ] {
        let mut c = base();
        c.policy = bad.into();
        rejects(c, "policy", "namespace/name");
    }
}

#[test]
fn policy_longer_than_a_namespace_and_name_is_rejected() {
    let mut c = base();
    c.policy = format!("{}/{}", "a".repeat(63), "b".repeat(254));
    rejects(c, "policy", "namespace/name");
}

#[test]
fn uppercase_header_name_is_rejected() {
    rejects(
        with_header("X-Custom", "v"),
        "responseHeaders[1].name",
        "lowercase RFC 9110 token",
    );
}

#[test]
fn header_name_with_a_space_or_separator_is_rejected() {
    for bad in ["x custom", "x:custom", "x(y)", "x/y", "é"] {
        rejects(
            with_header(bad, "v"),
            "responseHeaders[1].name",
            "RFC 9110 token",
        );
    }
}

#[test]
fn empty_header_name_is_rejected() {
    rejects(
        with_header("", "v"),
        "responseHeaders[1].name",
        "must not be empty",
    );
}

#[test]
fn pseudo_header_name_is_rejected() {
    rejects(
        with_header(":status", "200"),
        "responseHeaders[1].name",
        "pseudo-header",
    );
}

#[test]
fn framing_and_hop_by_hop_headers_are_rejected() {
    for bad in [
        "content-length",
        "transfer-encoding",
        "connection",
        "host",
        "upgrade",
        "te",
    ] {
        rejects(
            with_header(bad, "1"),
            "responseHeaders[1].name",
            "framing or hop-by-hop",
        );
    }
}

#[test]
fn headers_the_filter_writes_itself_are_rejected() {
    for bad in [
        "retry-after",
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-remaining",
    ] {
        rejects(
            with_header(bad, "1"),
            "responseHeaders[1].name",
            "the filter sets itself",
        );
    }
}

#[test]
fn values_with_cr_lf_nul_or_control_characters_are_rejected() {
    for bad in ["a\rb", "a\nb", "a\0b", "a\x1bb", "a\x7fb"] {
        rejects(
            with_header("x-b", bad),
            "responseHeaders[1].value",
            "control characters",
        );
    }
}

#[test]
fn values_may_hold_tabs_and_non_ascii_text() {
    with_header("x-b", "a\tb").validate().unwrap();
    with_header("x-b", "grüße").validate().unwrap();
}

#[test]
fn value_over_4096_bytes_is_rejected_and_4096_is_accepted() {
    with_header("x-b", &"v".repeat(4096)).validate().unwrap();
    rejects(
        with_header("x-b", &"v".repeat(4097)),
        "responseHeaders[1].value",
        "4096 bytes",
    );
}

#[test]
fn duplicate_header_names_are_rejected() {
    rejects(
        with_header("x-a", "2"),
        "responseHeaders[1].name",
        "duplicate",
    );
}

#[test]
fn more_than_64_headers_are_rejected_and_64_are_accepted() {
    let mut c = base();
    c.response_headers = (0..64)
        .map(|i| Header::new(format!("x-{i}"), "v"))
        .collect();
    c.validate().unwrap();
    c.response_headers.push(Header::new("x-64", "v"));
    rejects(c, "responseHeaders", "at most 64");
}

#[test]
fn removed_header_names_follow_the_name_rules() {
    let mut c = base();
    c.remove_response_headers.push("Server".into());
    rejects(c, "removeResponseHeaders[1]", "lowercase");
    let mut c = base();
    c.remove_response_headers.push("content-length".into());
    rejects(c, "removeResponseHeaders[1]", "hop-by-hop");
}

#[test]
fn duplicate_removed_header_names_are_rejected() {
    let mut c = base();
    c.remove_response_headers.push("server".into());
    rejects(c, "removeResponseHeaders[1]", "duplicate");
}

#[test]
fn more_than_64_removed_headers_are_rejected() {
    let mut c = base();
    c.remove_response_headers = (0..65).map(|i| format!("x-{i}")).collect();
    rejects(c, "removeResponseHeaders", "at most 64");
}

#[test]
fn a_header_both_set_and_removed_is_rejected() {
    let mut c = base();
    c.remove_response_headers.push("x-a".into());
    rejects(c, "removeResponseHeaders[1]", "either set or removed");
}

#[test]
fn zero_tokens_per_second_is_rejected() {
    let mut c = base();
    limit(&mut c).tokens = 0;
    rejects(c, "rateLimit.tokensPerSecond", "at least 1");
}

#[test]
fn tokens_per_second_above_the_maximum_is_rejected() {
    let mut c = base();
    limit(&mut c).tokens = 1_000_001;
    rejects(c, "rateLimit.tokensPerSecond", "at most 1000000");
}

#[test]
fn zero_burst_is_rejected() {
    let mut c = base();
    limit(&mut c).burst = 0;
    rejects(c, "rateLimit.burst", "at least 1");
}

#[test]
fn burst_above_the_maximum_is_rejected() {
    let mut c = base();
    limit(&mut c).burst = 10_000_001;
    rejects(c, "rateLimit.burst", "at most 10000000");
}

#[test]
fn zero_max_keys_is_rejected() {
    let mut c = base();
    limit(&mut c).max_keys = 0;
    rejects(c, "rateLimit.maxKeys", "at least 1");
}

#[test]
fn max_keys_above_the_maximum_is_rejected() {
    let mut c = base();
    limit(&mut c).max_keys = 1_000_001;
    rejects(c, "rateLimit.maxKeys", "at most 1000000");
}

#[test]
fn status_code_outside_400_to_599_is_rejected() {
    for bad in [0, 200, 399, 600, 999] {
        let mut c = base();
        limit(&mut c).status_code = bad;
        rejects(c, "rateLimit.statusCode", "between 400 and 599");
    }
    for good in [400, 429, 503, 599] {
        let mut c = base();
        limit(&mut c).status_code = good;
        c.validate().unwrap();
    }
}

#[test]
fn body_over_16_kib_is_rejected() {
    let mut c = base();
    limit(&mut c).body = "b".repeat(16 * 1024 + 1);
    rejects(c, "rateLimit.body", "16384 bytes");
}

#[test]
fn key_header_must_be_a_valid_name() {
    let mut c = base();
    limit(&mut c).key = Key::Header("X-Api-Key".into());
    rejects(c, "rateLimit.key.header", "lowercase");
    let mut c = base();
    limit(&mut c).key = Key::Header(":authority".into());
    rejects(c, "rateLimit.key.header", "pseudo-header");
}

#[test]
fn limited_response_headers_follow_the_header_rules() {
    let mut c = base();
    limit(&mut c).headers = vec![Header::new("x-ok", "1"), Header::new("x-ok", "2")];
    rejects(c, "rateLimit.headers[1].name", "duplicate");
    let mut c = base();
    limit(&mut c).headers = vec![Header::new("x-ok", "a\nb")];
    rejects(c, "rateLimit.headers[0].value", "control characters");
    let mut c = base();
    limit(&mut c).headers = vec![Header::new("retry-after", "5")];
    rejects(c, "rateLimit.headers[0].name", "the filter sets itself");
}

#[test]
fn headers_only_config_without_rate_limit_is_valid() {
    let mut c = base();
    c.rate_limit = None;
    c.validate().unwrap();
}
