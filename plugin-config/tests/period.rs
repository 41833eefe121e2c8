//! Rates over any period: the two wire forms, which one is written, the contract version each
//! needs, and the rules, each naming its field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hrl_plugin_config::{
    ConfigError, MAX_PERIOD_SECONDS, MAX_TOKENS, MAX_TOKENS_PER_SECOND, MIN_PERIOD_SECONDS,
    PluginConfig, RateLimit,
};
use serde_json::{Value, json};

fn config(rate_limit: RateLimit) -> PluginConfig {
    PluginConfig {
        policy: "default/login".into(),
        response_headers: Vec::new(),
        remove_response_headers: Vec::new(),
        rate_limit: Some(rate_limit),
        matches: None,
    }
}

fn written(config: &PluginConfig) -> Value {
    serde_json::from_str(&config.to_json().unwrap()).unwrap()
}

fn parse(value: Value) -> Result<PluginConfig, ConfigError> {
    PluginConfig::from_json(value.to_string().as_bytes())
}

#[track_caller]
fn rejects(limit: RateLimit, field: &str, rule_contains: &str) {
    let err = config(limit).validate().expect_err("should be invalid");
    assert_eq!(err.field, field, "{err}");
    assert!(err.rule.contains(rule_contains), "{err}");
}

#[test]
fn the_bounds_are_one_second_to_one_day_and_ten_million_tokens() {
    assert_eq!(MIN_PERIOD_SECONDS, 1);
    assert_eq!(MAX_PERIOD_SECONDS, 86_400);
    assert_eq!(MAX_TOKENS, 10_000_000);
    assert_eq!(MAX_TOKENS_PER_SECOND, 1_000_000);
}

#[test]
fn a_one_second_period_is_written_exactly_as_before_without_a_version() {
    let config = config(RateLimit::per_period(2, 1, 4));
    assert_eq!(config.version(), 1);
    assert_eq!(config, self::config(RateLimit::new(2, 4)));
    assert_eq!(
        config.to_json().unwrap(),
        r#"{"policy":"default/login","rateLimit":{"tokensPerSecond":2,"burst":4,"key":"none","maxKeys":10000,"statusCode":429,"body":"rate limited\n","rateLimitHeaders":"ietf","enforce":true}}"#
    );
}

#[test]
fn a_sixty_second_period_writes_version_two_tokens_and_period_seconds() {
    let config = config(RateLimit::per_period(5, 60, 5));
    assert_eq!(config.version(), 2);
    let value = written(&config);
    assert_eq!(value["version"], 2);
    assert_eq!(value["rateLimit"]["tokens"], 5);
    assert_eq!(value["rateLimit"]["periodSeconds"], 60);
    assert!(
        value["rateLimit"].get("tokensPerSecond").is_none(),
        "{value}"
    );
    assert_eq!(
        config.to_json().unwrap(),
        r#"{"version":2,"policy":"default/login","rateLimit":{"tokens":5,"periodSeconds":60,"burst":5,"key":"none","maxKeys":10000,"statusCode":429,"body":"rate limited\n","rateLimitHeaders":"ietf","enforce":true}}"#
    );
    assert_eq!(
        PluginConfig::from_json(config.to_json().unwrap().as_bytes()).unwrap(),
        config
    );
}

#[test]
fn tokens_with_a_one_second_period_read_as_tokens_per_second() {
    let general =
        parse(json!({"policy": "a/b", "rateLimit": {"tokens": 3, "periodSeconds": 1, "burst": 3}}));
    let classic = parse(json!({"policy": "a/b", "rateLimit": {"tokensPerSecond": 3, "burst": 3}}));
    assert_eq!(general.unwrap(), classic.unwrap());
}

#[test]
fn both_rate_forms_neither_or_half_of_the_general_one_are_refused_naming_the_fields() {
    for rate in [
        json!({"tokensPerSecond": 1, "tokens": 5, "periodSeconds": 60}),
        json!({"tokensPerSecond": 1, "tokens": 5}),
        json!({"tokensPerSecond": 1, "periodSeconds": 60}),
        json!({}),
        json!({"tokens": 5}),
        json!({"periodSeconds": 60}),
    ] {
        let mut limit = rate.clone();
        limit["burst"] = json!(5);
        let message = parse(json!({"version": 2, "policy": "a/b", "rateLimit": limit}))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(
                "rateLimit.tokensPerSecond: exactly one rate form must be set: \
                 rateLimit.tokensPerSecond, or rateLimit.tokens with rateLimit.periodSeconds"
            ),
            "{rate}: {message}"
        );
    }
}

#[test]
fn the_period_must_be_one_second_to_a_day_split_across_ten_thousand_proxies() {
    rejects(
        RateLimit::per_period(5, 0, 5),
        "rateLimit.periodSeconds",
        "at least 1",
    );
    rejects(
        RateLimit::per_period(5, 864_000_001, 5),
        "rateLimit.periodSeconds",
        "at most 864000000",
    );
    config(RateLimit::per_period(1, 864_000_000, 1))
        .validate()
        .unwrap();
}

#[test]
fn tokens_must_be_one_to_ten_million() {
    rejects(
        RateLimit::per_period(0, 60, 5),
        "rateLimit.tokens",
        "at least 1",
    );
    rejects(
        RateLimit::per_period(10_000_001, 86_400, 5),
        "rateLimit.tokens",
        "at most 10000000",
    );
    config(RateLimit::per_period(10_000_000, 86_400, 1))
        .validate()
        .unwrap();
}

#[test]
fn tokens_per_period_must_not_exceed_a_million_per_second() {
    rejects(
        RateLimit::per_period(2_000_001, 2, 5),
        "rateLimit.tokens",
        "at most 1000000 per second",
    );
    config(RateLimit::per_period(2_000_000, 2, 5))
        .validate()
        .unwrap();
}

#[test]
fn the_per_second_form_keeps_its_field_name_in_errors() {
    rejects(
        RateLimit::new(0, 5),
        "rateLimit.tokensPerSecond",
        "at least 1",
    );
    rejects(
        RateLimit::new(1_000_001, 5),
        "rateLimit.tokensPerSecond",
        "at most 1000000",
    );
}
