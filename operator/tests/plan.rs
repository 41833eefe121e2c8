//! Table tests of `plan`: every field mapping, the defaults, and each invalid spec.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use hrl_operator::conditions::{self, Outcome};
use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::plan::{Observed, Settings, plan, plugin_config, wasm_plugin_name};
use hrl_operator::render::parse_documents;
use hrl_plugin_config::{DEFAULT_BODY, Key, PluginConfig, RateLimitHeaders};
use pretty_assertions::assert_eq;
use serde_json::json;

/// A HeaderRateLimit `default/web` (uid set, as from the API server) with `spec` in YAML.
fn hrl(spec: &str) -> HeaderRateLimit {
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata:\n  name: web\n  uid: u-1234\nspec:\n{indented}"
    );
    match parse_documents(&yaml) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("bad fixture {yaml}: {other:?}"),
    }
}

fn planned_spec(spec: &str, settings: &Settings) -> serde_json::Value {
    match plan(&hrl(spec), settings, &Observed::default()).wasm_plugin {
        Ok(wp) => serde_json::to_value(&wp).unwrap_or_default(),
        Err(e) => panic!("unexpected invalid spec: {e}"),
    }
}

const SELECTOR: &str = "selector: {matchLabels: {app: web}}\n";

#[test]
fn a_minimal_spec_maps_to_a_complete_wasm_plugin_with_defaults() {
    let wp = planned_spec(
        &format!("{SELECTOR}rateLimit: {{tokensPerSecond: 3}}"),
        &Settings::default(),
    );
    assert_eq!(
        wp,
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {
                "name": "hrl-web",
                "namespace": "default",
                "labels": {"app.kubernetes.io/managed-by": "hrl-operator", "app.kubernetes.io/instance": "web"},
                "ownerReferences": [{"apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit", "name": "web", "uid": "u-1234", "controller": true}],
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "match": [{"mode": "SERVER"}],
                "url": concat!("oci://ghcr.io/hrl-dev/hrl-filter:", env!("CARGO_PKG_VERSION")),
                "imagePullPolicy": "IfNotPresent",
                "pluginName": "hrl",
                "failStrategy": "FAIL_CLOSE",
                "type": "HTTP",
                "pluginConfig": {
                    "policy": "default/web",
                    "rateLimit": {
                        "tokensPerSecond": 3, "burst": 3, "key": "none", "maxKeys": 10000,
                        "statusCode": 429, "body": DEFAULT_BODY, "rateLimitHeaders": "ietf", "enforce": true,
                    },
                },
            },
        })
    );
}

#[test]
fn every_rate_limit_field_maps_to_the_plugin_config() {
    let config = plugin_config(&hrl(&format!(
        "{SELECTOR}headers: {{wang: '1234567', hally: wang, who-am-i: wasm-extension, injected-by: istio-api!}}
removeHeaders: [x-powered-by]
rateLimit:
  tokensPerSecond: 2
  burst: 2
  key: {{type: Header, header: x-api-key}}
  maxKeys: 100
  statusCode: 429
  body: \"rate limited, wait and retry.\\n\"
  responseHeaders: {{powered-by: hrl-filter}}
  rateLimitHeaders: IETF
  enforce: true"
    )));
    let mut golden = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugin-config/tests/fixtures/full.json"
    ))
    .ok()
    .and_then(|bytes| PluginConfig::from_json(&bytes).ok());
    if let Some(g) = golden.as_mut() {
        g.policy = "default/web".into();
    }
    assert_eq!(
        config.ok(),
        golden,
        "the operator renders the golden full.json fixture"
    );
}

#[test]
fn key_types_header_flavours_and_dry_run_map_one_to_one() {
    let cases = [
        (
            "key: {type: None}",
            Key::None,
            "rateLimitHeaders: None",
            RateLimitHeaders::None,
            "enforce: false",
            false,
        ),
        (
            "key: {type: ClientAddress}",
            Key::ClientAddress,
            "rateLimitHeaders: Draft03",
            RateLimitHeaders::Draft03,
            "enforce: true",
            true,
        ),
        (
            "key: {type: Header, header: x-k}",
            Key::Header("x-k".into()),
            "rateLimitHeaders: IETF",
            RateLimitHeaders::Ietf,
            "{}",
            true,
        ),
    ];
    for (key, want_key, flavour, want_flavour, enforce, want_enforce) in cases {
        let spec = format!(
            "{SELECTOR}rateLimit:\n  tokensPerSecond: 1\n  {key}\n  {flavour}\n  {}",
            if enforce == "{}" { "" } else { enforce }
        );
        let limit = plugin_config(&hrl(&spec)).ok().and_then(|c| c.rate_limit);
        let got = limit.map(|l| (l.key, l.rate_limit_headers, l.enforce));
        assert_eq!(got, Some((want_key, want_flavour, want_enforce)), "{spec}");
    }
}

#[test]
fn headers_only_has_no_rate_limit_and_sorted_response_headers() {
    let config = plugin_config(&hrl(&format!(
        "{SELECTOR}headers: {{b: '2', a: '1'}}\nremoveHeaders: [server]"
    )));
    let config = config.ok();
    assert_eq!(config.as_ref().map(|c| c.rate_limit.is_none()), Some(true));
    let names: Vec<String> = config
        .iter()
        .flat_map(|c| c.response_headers.iter().map(|h| h.name.clone()))
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        config.map(|c| c.remove_response_headers),
        Some(vec!["server".to_string()])
    );
}

#[test]
fn target_refs_failure_policy_phase_and_priority_pass_through() {
    let wp = planned_spec(
        "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]
failurePolicy: FailOpen
phase: AUTHZ
priority: 10
headers: {x-a: b}",
        &Settings::default(),
    );
    let spec = &wp["spec"];
    assert_eq!(
        spec["targetRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}])
    );
    assert_eq!(spec.get("selector"), None);
    assert_eq!(
        spec.get("match"),
        None,
        "Istio attaches targetRefs only to the Gateway's pods; its listeners are CLIENT on an \
         ingress gateway and SERVER on a waypoint"
    );
    assert_eq!(spec["failStrategy"], "FAIL_OPEN");
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["priority"], 10);
    let unspecified = planned_spec(
        &format!("{SELECTOR}phase: UNSPECIFIED_PHASE\nheaders: {{x-a: b}}"),
        &Settings::default(),
    );
    assert_eq!(unspecified["spec"]["phase"], "UNSPECIFIED_PHASE");
}

#[test]
fn a_sidecar_policy_filters_inbound_traffic_only_and_a_gateway_selector_the_gateway_listeners() {
    // Without `match` Istio adds the filter to the sidecar's outbound listeners too: the app's
    // own calls would take tokens from its inbound limit and get its headers.
    let default = planned_spec(
        &format!("{SELECTOR}headers: {{x-a: b}}"),
        &Settings::default(),
    );
    assert_eq!(default["spec"]["match"], json!([{"mode": "SERVER"}]));
    let sidecar = planned_spec(
        "selector: {matchLabels: {app: web}, proxy: Sidecar}\nheaders: {x-a: b}",
        &Settings::default(),
    );
    assert_eq!(sidecar["spec"]["match"], json!([{"mode": "SERVER"}]));
    // A gateway's listeners are all CLIENT; SERVER would leave the gateway without the filter.
    let gateway = planned_spec(
        "selector: {matchLabels: {istio: ingressgateway}, proxy: Gateway}\nheaders: {x-a: b}",
        &Settings::default(),
    );
    assert_eq!(gateway["spec"]["match"], json!([{"mode": "CLIENT"}]));
    assert_eq!(
        gateway["spec"]["selector"],
        json!({"matchLabels": {"istio": "ingressgateway"}}),
        "proxy is ours, not a label"
    );
}

#[test]
fn fail_reload_maps_to_istios_fail_reload() {
    let wp = planned_spec(
        &format!("{SELECTOR}failurePolicy: FailReload\nheaders: {{x-a: b}}"),
        &Settings::default(),
    );
    assert_eq!(wp["spec"]["failStrategy"], "FAIL_RELOAD");
}

#[test]
fn the_pull_policy_is_never_always_so_an_edit_never_re_pulls_the_module() {
    for sha256 in [None, Some("b".repeat(64))] {
        let settings = Settings {
            filter_url: "oci://registry.example/hrl:latest".into(),
            filter_sha256: sha256.clone(),
            ..Settings::default()
        };
        let wp = planned_spec(&format!("{SELECTOR}headers: {{x-a: b}}"), &settings);
        assert_eq!(
            wp["spec"]["imagePullPolicy"], "IfNotPresent",
            "sha256 {sha256:?}"
        );
    }
}

#[test]
fn a_pinned_sha256_sets_if_not_present_and_the_operator_url() {
    let sha = "a".repeat(64);
    let settings = Settings {
        filter_url: "oci://registry.example/hrl:1".into(),
        filter_sha256: Some(sha.clone()),
        ..Settings::default()
    };
    let wp = planned_spec(&format!("{SELECTOR}headers: {{x-a: b}}"), &settings);
    assert_eq!(wp["spec"]["url"], "oci://registry.example/hrl:1");
    assert_eq!(wp["spec"]["sha256"], sha.as_str());
    assert_eq!(wp["spec"]["imagePullPolicy"], "IfNotPresent");
}

#[test]
fn long_names_are_shortened_deterministically_within_kubernetes_limits() {
    let long = "a".repeat(253);
    let name = wasm_plugin_name(&long);
    assert!(name.len() <= 253 && name.starts_with("hrl-aaa"), "{name}");
    assert_eq!(name, wasm_plugin_name(&long));
    assert_ne!(name, wasm_plugin_name(&format!("{}b", "a".repeat(252))));
    let mut object = hrl(&format!("{SELECTOR}headers: {{x-a: b}}"));
    object.metadata.name = Some(long);
    let wp = plan(&object, &Settings::default(), &Observed::default())
        .wasm_plugin
        .ok();
    let instance = wp
        .and_then(|w| w.metadata.labels)
        .and_then(|l| l.get("app.kubernetes.io/instance").cloned());
    assert!(instance.is_some_and(|v| v.len() <= 63));
}

#[test]
fn each_invalid_spec_names_its_field_and_plans_no_wasm_plugin() {
    let token = "must be a lowercase RFC 9110 token (a-z, 0-9 and !#$%&'*+-.^_`|~)";
    let cases: Vec<(String, String)> = vec![
        ("headers: {x-a: b}".into(), "spec: exactly one of selector or targetRefs must be set".into()),
        (format!("{SELECTOR}targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: g}}]"), "spec: exactly one of selector or targetRefs must be set".into()),
        ("selector: {matchLabels: {}}".into(), "spec.selector.matchLabels: must not be empty (an empty selector would cover every workload in the namespace)".into()),
        ("selector: {matchLabels: {app: 'we*b'}}".into(), "spec.selector.matchLabels[\"app\"]: must be a label value (at most 63 characters: a-z, A-Z, 0-9, '-', '_', '.')".into()),
        ("targetRefs: [{group: '', kind: Service, name: s}]".into(), "spec.targetRefs[0]: must be a Gateway (group gateway.networking.k8s.io, kind Gateway)".into()),
        (format!("{SELECTOR}headers: {{Bad Name: x}}"), format!("spec.headers[\"Bad Name\"]: {token}")),
        (format!("{SELECTOR}headers: {{x-a: \"a\\nb\"}}"), "spec.headers[\"x-a\"]: must not contain CR, LF, NUL or other control characters".into()),
        (format!("{SELECTOR}headers: {{retry-after: '1'}}"), "spec.headers[\"retry-after\"]: must not be a header the filter sets itself (retry-after, ratelimit*, x-ratelimit-*)".into()),
        (format!("{SELECTOR}headers: {{host: x}}"), "spec.headers[\"host\"]: must not be a framing or hop-by-hop header".into()),
        (format!("{SELECTOR}removeHeaders: [Server]"), format!("spec.removeHeaders[0]: {token}")),
        (format!("{SELECTOR}removeHeaders: [content-length]"), "spec.removeHeaders[0]: must not be a framing or hop-by-hop header".into()),
        (format!("{SELECTOR}headers: {{x-a: b}}\nremoveHeaders: [x-a]"), "spec.removeHeaders[0]: \"x-a\" is also in spec.headers: a header is either set or removed".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 0}}"), "spec.rateLimit.tokensPerSecond: must be at least 1".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 2000000}}"), "spec.rateLimit.tokensPerSecond: must be at most 1000000".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, burst: 0}}"), "spec.rateLimit.burst: must be at least 1".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, maxKeys: 0}}"), "spec.rateLimit.maxKeys: must be at least 1".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, statusCode: 200}}"), "spec.rateLimit.statusCode: must be between 400 and 599".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, body: '{}'}}", "x".repeat(16385)), "spec.rateLimit.body: must be at most 16384 bytes".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, key: {{type: Header}}}}"), "spec.rateLimit.key.header: is required when type is Header".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, key: {{type: None, header: x}}}}"), "spec.rateLimit.key.header: must not be set unless type is Header".into()),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, key: {{type: Header, header: X-Key}}}}"), format!("spec.rateLimit.key.header: {token}")),
        (format!("{SELECTOR}rateLimit: {{tokensPerSecond: 1, responseHeaders: {{ratelimit: x}}}}"), "spec.rateLimit.responseHeaders[\"ratelimit\"]: must not be a header the filter sets itself (retry-after, ratelimit*, x-ratelimit-*)".into()),
        (format!("{SELECTOR}removeHeaders: [{}]", "x".repeat(257)), "spec.removeHeaders[0]: must be at most 256 bytes".into()),
    ];
    for (spec, want) in cases {
        let planned = plan(&hrl(&spec), &Settings::default(), &Observed::default());
        let got = planned.wasm_plugin.as_ref().err().map(ToString::to_string);
        assert_eq!(got.as_deref(), Some(want.as_str()), "spec:\n{spec}");
        let [accepted, programmed, ready] =
            conditions::desired(&Outcome::Invalid(want.clone()), &planned.wasm_plugin_name);
        assert_eq!(
            (accepted.status, accepted.reason, accepted.message.as_str()),
            (false, "Invalid", want.as_str())
        );
        assert_eq!((programmed.status, programmed.reason), (false, "Invalid"));
        assert_eq!((ready.status, ready.reason), (false, "Invalid"));
    }
}

#[test]
fn too_many_headers_is_invalid() {
    let many: Vec<String> = (0..65).map(|i| format!("x-{i}: v")).collect();
    let spec = format!("{SELECTOR}headers: {{{}}}", many.join(", "));
    let got = plan(&hrl(&spec), &Settings::default(), &Observed::default())
        .wasm_plugin
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        got.as_deref(),
        Some("spec.headers: must have at most 64 headers")
    );
}

#[test]
fn tokens_per_period_maps_to_the_general_form_and_burst_defaults_to_tokens() {
    let planned = plan(
        &hrl(&format!("{SELECTOR}rateLimit: {{tokens: 5, per: 1m}}")),
        &Settings::default(),
        &Observed::default(),
    );
    assert_eq!(planned.rate.as_deref(), Some("5/1m"));
    let wp = serde_json::to_value(planned.wasm_plugin.expect("valid")).expect("json");
    let config = &wp["spec"]["pluginConfig"];
    assert_eq!(
        config["version"], 2,
        "a period other than 1s needs contract 2"
    );
    assert_eq!(config["rateLimit"]["tokens"], 5);
    assert_eq!(config["rateLimit"]["periodSeconds"], 60);
    assert_eq!(config["rateLimit"]["burst"], 5);
    assert_eq!(config["rateLimit"].get("tokensPerSecond"), None);
}

#[test]
fn a_one_second_rate_keeps_the_first_contract_so_older_filters_read_it() {
    for spec in ["tokensPerSecond: 2", "tokens: 2, per: 1s"] {
        let planned = plan(
            &hrl(&format!("{SELECTOR}rateLimit: {{{spec}}}")),
            &Settings::default(),
            &Observed::default(),
        );
        assert_eq!(planned.rate.as_deref(), Some("2/s"), "{spec}");
        let wp = serde_json::to_value(planned.wasm_plugin.expect("valid")).expect("json");
        let config = &wp["spec"]["pluginConfig"];
        assert_eq!(config.get("version"), None, "{spec}");
        assert_eq!(config["rateLimit"]["tokensPerSecond"], 2, "{spec}");
    }
}

#[test]
fn a_policy_the_installed_filter_cannot_read_is_not_applied_and_says_why() {
    let old_filter = Settings {
        filter_contract: 1,
        ..Settings::default()
    };
    let slow = plan(
        &hrl(&format!("{SELECTOR}rateLimit: {{tokens: 5, per: 1m}}")),
        &old_filter,
        &Observed::default(),
    );
    let error = slow.wasm_plugin.expect_err("not for a contract-1 filter");
    assert_eq!(error.field, "spec.rateLimit.per");
    assert!(
        error.rule.contains("contract version 2")
            && error.rule.contains("reads version 1")
            && error.rule.contains("upgrade the filter"),
        "{error}"
    );
    let fast = plan(
        &hrl(&format!("{SELECTOR}rateLimit: {{tokensPerSecond: 5}}")),
        &old_filter,
        &Observed::default(),
    );
    assert!(fast.wasm_plugin.is_ok(), "a 1s rate is contract 1");
}

#[test]
fn each_invalid_rate_form_names_its_field() {
    let cases = [
        (
            "tokens: 5",
            "spec.rateLimit.tokens: tokens and per go together",
        ),
        (
            "per: 1m",
            "spec.rateLimit.tokens: tokens and per go together",
        ),
        (
            "tokensPerSecond: 1, tokens: 5, per: 1m",
            "spec.rateLimit.tokensPerSecond: set either tokensPerSecond, or tokens and per",
        ),
        (
            "burst: 3",
            "spec.rateLimit.tokensPerSecond: set either tokensPerSecond, or tokens and per",
        ),
        (
            "tokens: 5, per: 25h",
            "spec.rateLimit.per: must be between 1s and 24h",
        ),
        (
            "tokens: 5, per: 1d",
            "spec.rateLimit.per: must be a duration of whole seconds such as 30s, 1m, 1h or 1h30m",
        ),
        (
            "tokens: 0, per: 1m",
            "spec.rateLimit.tokens: must be at least 1",
        ),
        (
            "tokens: 2000000, per: 1s",
            "spec.rateLimit.tokens: tokens per per must be at most 1000000 per second",
        ),
    ];
    for (spec, message) in cases {
        let planned = plan(
            &hrl(&format!("{SELECTOR}rateLimit: {{{spec}}}")),
            &Settings::default(),
            &Observed::default(),
        );
        assert_eq!(
            planned.wasm_plugin.map(|_| ()).map_err(|e| e.to_string()),
            Err(message.to_string()),
            "{spec}"
        );
    }
}
