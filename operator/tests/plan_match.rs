//! `plan` of `spec.match`: the mapping to the contract's `match`, the operator's own check of
//! it under CRD field paths, and the contract version it needs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::plan::{Observed, Settings, plan, plugin_config};
use hrl_operator::render::parse_documents;
use hrl_plugin_config::{HeaderMatch, Key, Match, PathMatch};
use pretty_assertions::assert_eq;
use serde_json::json;

/// A HeaderRateLimit `default/web` with `spec` in YAML.
fn hrl(spec: &str) -> HeaderRateLimit {
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata:\n  name: web\n  uid: u-1\nspec:\n{indented}"
    );
    match parse_documents(&yaml) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("bad fixture {yaml}: {other:?}"),
    }
}

const SELECTOR: &str = "selector: {matchLabels: {app: web}}\n";

const LOGIN: &str = "match:
  methods: [POST, PUT]
  paths: [{exact: /login}, {prefix: /api/}]
  hosts: [api.example.com, '*.api.example.com']
  headers: [{name: x-tenant, value: beta}, {name: authorization}]
rateLimit: {tokensPerSecond: 5}";

#[test]
fn a_match_maps_field_by_field_in_order_to_the_plugin_config() {
    let config = plugin_config(&hrl(&format!("{SELECTOR}{LOGIN}"))).expect("valid");
    assert_eq!(
        config.matches,
        Some(Match {
            methods: vec!["POST".into(), "PUT".into()],
            paths: vec![
                PathMatch::Exact("/login".into()),
                PathMatch::Prefix("/api/".into())
            ],
            hosts: vec!["api.example.com".into(), "*.api.example.com".into()],
            headers: vec![
                HeaderMatch {
                    name: "x-tenant".into(),
                    value: Some("beta".into())
                },
                HeaderMatch {
                    name: "authorization".into(),
                    value: None
                },
            ],
        })
    );
}

#[test]
fn the_wasm_plugin_carries_the_match_as_contract_version_2() {
    let planned = plan(
        &hrl(&format!("{SELECTOR}{LOGIN}")),
        &Settings::default(),
        &Observed::default(),
    );
    let wp = serde_json::to_value(planned.wasm_plugin.expect("valid")).expect("json");
    let config = &wp["spec"]["pluginConfig"];
    assert_eq!(config["version"], 2, "match is a contract 2 field");
    assert_eq!(
        config["match"],
        json!({
            "methods": ["POST", "PUT"],
            "paths": [{"exact": "/login"}, {"prefix": "/api/"}],
            "hosts": ["api.example.com", "*.api.example.com"],
            "headers": [{"name": "x-tenant", "value": "beta"}, {"name": "authorization"}],
        })
    );
    // The WasmPlugin's own `match` (traffic direction) is unrelated and unchanged.
    assert_eq!(wp["spec"]["match"], json!([{"mode": "SERVER"}]));
}

#[test]
fn an_empty_match_applies_to_every_request_and_keeps_the_first_contract() {
    for empty in [
        "match: {}",
        "match: {methods: [], paths: [], hosts: [], headers: []}",
    ] {
        let spec = format!("{SELECTOR}{empty}\nrateLimit: {{tokensPerSecond: 5}}");
        let planned = plan(&hrl(&spec), &Settings::default(), &Observed::default());
        let wp = serde_json::to_value(planned.wasm_plugin.expect("valid")).expect("json");
        let config = &wp["spec"]["pluginConfig"];
        assert_eq!(config.get("match"), None, "{empty}");
        assert_eq!(config.get("version"), None, "{empty}");
    }
}

#[test]
fn each_invalid_match_names_its_crd_field_and_rule() {
    let many: Vec<String> = (0..17).map(|i| format!("M{i}")).collect();
    let cases = [
        (
            "paths: [{exact: /a, prefix: /b}]".to_string(),
            "spec.match.paths[0]: exactly one of exact or prefix must be set",
        ),
        (
            "paths: [{exact: /a}, {}]".into(),
            "spec.match.paths[1]: exactly one of exact or prefix must be set",
        ),
        (
            "paths: [{exact: /a}, {prefix: 'api?x'}]".into(),
            "spec.match.paths[1].prefix: must start with '/' and be at most 1024 visible ASCII characters without '?' or '#'",
        ),
        (
            "paths: [{exact: /a}, {exact: /a}]".into(),
            "spec.match.paths[1]: duplicate entry",
        ),
        (
            "methods: ['GET POST']".into(),
            "spec.match.methods[0]: must be an HTTP method token of at most 32 characters (e.g. GET, POST)",
        ),
        (
            "methods: [GET, GET]".into(),
            "spec.match.methods[1]: duplicate entry",
        ),
        (
            format!("methods: [{}]", many.join(", ")),
            "spec.match.methods: must have at most 16 entries",
        ),
        (
            "hosts: [a.com, 'a.com:80']".into(),
            "spec.match.hosts[1]: must be a lowercase DNS name (example.com) or a wildcard (*.example.com), without a port, at most 253 characters",
        ),
        (
            "hosts: [Example.com]".into(),
            "spec.match.hosts[0]: must be a lowercase DNS name (example.com) or a wildcard (*.example.com), without a port, at most 253 characters",
        ),
        (
            "hosts: ['*']".into(),
            "spec.match.hosts[0]: must be a lowercase DNS name (example.com) or a wildcard (*.example.com), without a port, at most 253 characters",
        ),
        (
            "headers: [{name: X-Tenant}]".into(),
            "spec.match.headers[0].name: must be a lowercase RFC 9110 token (a-z, 0-9 and !#$%&'*+-.^_`|~)",
        ),
        (
            "headers: [{name: host, value: a.com}]".into(),
            "spec.match.headers[0].name: must not be a framing or hop-by-hop header",
        ),
        (
            format!("headers: [{{name: {}}}]", "x".repeat(257)),
            "spec.match.headers[0].name: must be at most 256 bytes",
        ),
        (
            "headers: [{name: x-a, value: '1'}, {name: x-a}]".into(),
            "spec.match.headers[1].name: duplicate header name 'x-a'",
        ),
        (
            "headers: [{name: x-a, value: \"a\\nb\"}]".into(),
            "spec.match.headers[0].value: must not contain CR, LF, NUL or other control characters",
        ),
    ];
    for (matches, want) in cases {
        let spec = format!("{SELECTOR}match:\n  {matches}");
        let got = plan(&hrl(&spec), &Settings::default(), &Observed::default())
            .wasm_plugin
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_string()), "{matches}");
    }
}

#[test]
fn a_match_is_not_sent_to_a_contract_1_filter_and_the_error_names_the_field() {
    let old_filter = Settings {
        filter_contract: 1,
        ..Settings::default()
    };
    let cases = [
        ("match: {methods: [POST]}", Some("spec.match")),
        (
            "match: {methods: [POST]}\nrateLimit: {tokens: 5, per: 1s}",
            Some("spec.match"),
        ),
        (
            "match: {methods: [POST]}\nrateLimit: {tokens: 5, per: 1m}",
            Some("spec.rateLimit.per"),
        ),
        ("match: {}\nrateLimit: {tokensPerSecond: 5}", None),
    ];
    for (spec, want) in cases {
        let planned = plan(
            &hrl(&format!("{SELECTOR}{spec}")),
            &old_filter,
            &Observed::default(),
        );
        match (planned.wasm_plugin, want) {
            (Err(error), Some(field)) => {
                assert_eq!(error.field, field, "{spec}");
                assert!(
                    error.rule.contains("contract version 2")
                        && error.rule.contains("reads version 1")
                        && error.rule.contains("upgrade the filter"),
                    "{spec}: {error}"
                );
            }
            (Ok(_), None) => {}
            (got, want) => panic!("{spec}: got {got:?}, want an error at {want:?}"),
        }
    }
}

#[test]
fn the_login_example_limits_post_login_per_client_at_5_per_minute() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/login-per-minute.yaml"
    );
    let yaml = std::fs::read_to_string(path).expect("readable");
    let hrl = parse_documents(&yaml).expect("parses").remove(0);
    let config = plugin_config(&hrl).expect("valid");
    let matches = config.matches.expect("a match");
    assert_eq!(
        (matches.methods, matches.paths),
        (
            vec!["POST".to_string()],
            vec![PathMatch::Prefix("/login".into())]
        )
    );
    let limit = config.rate_limit.expect("a limit");
    assert_eq!(
        (limit.tokens, limit.period_seconds, limit.key),
        (5, 60, Key::ClientAddress)
    );
}
