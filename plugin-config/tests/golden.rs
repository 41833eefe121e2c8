//! Golden fixtures pin the wire format of pluginConfig: field names, enum spellings, defaults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hrl_plugin_config::{
    DEFAULT_BODY, DEFAULT_MAX_KEYS, Header, HeaderMatch, Key, Match, PathMatch, PluginConfig,
    RateLimit, RateLimitHeaders,
};
use pretty_assertions::assert_eq;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

fn full() -> PluginConfig {
    PluginConfig {
        policy: "default/httpbin".into(),
        response_headers: vec![
            Header::new("hally", "wang"),
            Header::new("injected-by", "istio-api!"),
            Header::new("wang", "1234567"),
            Header::new("who-am-i", "wasm-extension"),
        ],
        remove_response_headers: vec!["x-powered-by".into()],
        rate_limit: Some(RateLimit {
            key: Key::Header("x-api-key".into()),
            max_keys: 100,
            body: "rate limited, wait and retry.\n".into(),
            headers: vec![Header::new("powered-by", "hrl-filter")],
            ..RateLimit::new(2, 2)
        }),
        matches: None,
    }
}

#[test]
fn full_fixture_parses_into_every_field() {
    assert_eq!(
        PluginConfig::from_json(&fixture("full.json")).unwrap(),
        full()
    );
}

#[test]
fn full_config_serializes_to_the_full_fixture() {
    let rendered: serde_json::Value = serde_json::from_str(&full().to_json().unwrap()).unwrap();
    assert_eq!(rendered, json("full.json"));
}

#[test]
fn minimal_fixture_fills_every_default() {
    let config = PluginConfig::from_json(&fixture("minimal.json")).unwrap();
    let limit = config.rate_limit.expect("rateLimit");
    assert_eq!(limit.key, Key::None);
    assert_eq!(limit.max_keys, DEFAULT_MAX_KEYS);
    assert_eq!(limit.status_code, 429);
    assert_eq!(limit.body, DEFAULT_BODY);
    assert_eq!(limit.rate_limit_headers, RateLimitHeaders::Ietf);
    assert!(limit.enforce);
    assert!(limit.headers.is_empty());
    assert!(config.response_headers.is_empty());
    assert!(config.remove_response_headers.is_empty());
}

#[test]
fn headers_only_fixture_has_no_rate_limit_and_round_trips() {
    let config = PluginConfig::from_json(&fixture("headers-only.json")).unwrap();
    assert_eq!(config.rate_limit, None);
    let rendered: serde_json::Value = serde_json::from_str(&config.to_json().unwrap()).unwrap();
    assert_eq!(rendered, json("headers-only.json"));
}

#[test]
fn client_address_dry_run_fixture_spells_enums_in_camel_case() {
    let config = PluginConfig::from_json(&fixture("client-address-dry-run.json")).unwrap();
    let limit = config.rate_limit.as_ref().expect("rateLimit");
    assert_eq!(limit.key, Key::ClientAddress);
    assert_eq!(limit.rate_limit_headers, RateLimitHeaders::Draft03);
    assert!(!limit.enforce);
    let value = serde_json::to_value(&config).unwrap();
    assert_eq!(value["rateLimit"]["key"], "clientAddress");
    assert_eq!(value["rateLimit"]["rateLimitHeaders"], "draft03");
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let err = PluginConfig::from_json(br#"{"policy":"a/b","responseHeadres":[]}"#).unwrap_err();
    assert!(err.to_string().contains("responseHeadres"), "{err}");
}

#[test]
fn wrong_types_are_rejected_with_the_field_name() {
    let err = PluginConfig::from_json(
        br#"{"policy":"a/b","rateLimit":{"tokensPerSecond":-1,"burst":1}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("-1"), "{err}");
    let err = PluginConfig::from_json(br#"{"policy":"a/b","rateLimit":{"burst":1}}"#).unwrap_err();
    assert!(err.to_string().contains("tokensPerSecond"), "{err}");
}

#[test]
fn to_json_refuses_an_invalid_config() {
    let mut config = full();
    config.policy = "no-slash".into();
    let err = config.to_json().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("pluginConfig is not valid: policy: "),
        "{err}"
    );
}

fn login_match() -> PluginConfig {
    PluginConfig {
        policy: "default/login".into(),
        response_headers: Vec::new(),
        remove_response_headers: Vec::new(),
        rate_limit: Some(RateLimit {
            key: Key::ClientAddress,
            ..RateLimit::per_period(5, 60, 5)
        }),
        matches: Some(Match {
            methods: vec!["POST".into()],
            paths: vec![
                PathMatch::Exact("/login".into()),
                PathMatch::Prefix("/api/login".into()),
            ],
            hosts: vec!["shop.example.com".into(), "*.example.org".into()],
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
        }),
    }
}

#[test]
fn match_fixture_parses_and_renders_as_contract_two() {
    assert_eq!(
        PluginConfig::from_json(&fixture("login-match.json")).unwrap(),
        login_match()
    );
    let rendered: serde_json::Value =
        serde_json::from_str(&login_match().to_json().unwrap()).unwrap();
    assert_eq!(rendered, json("login-match.json"));
}
