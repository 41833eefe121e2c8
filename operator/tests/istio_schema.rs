//! Every WasmPlugin `plan` produces for `examples/*.yaml` is one Istio's API server accepts:
//! validated against the openAPIV3Schema of Istio's own CRD (types, enums, patterns, required
//! fields) and its CEL rules (selector/targetRefs exclusivity, url scheme, label keys, ...),
//! evaluated client-side with kube-cel.
//!
//! The CRD lives outside the project: `ISTIO_WASMPLUGIN_CRD` names it, by default
//! `../shared/istio/wasmplugin-crd.yaml` beside the checkout. A missing or unreadable file fails
//! the tests: they never pass unchecked.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

#[path = "support/settings.rs"]
mod settings;

use hrl_operator::plan::{Observed, Settings, plan};
use hrl_operator::render::parse_documents;
use serde_json::{Value, json};
use settings::with_rate_limit_service;

/// Istio's WasmPlugin schema (v1alpha1).
fn istio_schema() -> Value {
    let path = std::env::var("ISTIO_WASMPLUGIN_CRD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/istio/wasmplugin-crd.yaml"
            )
            .into()
        });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("Istio's WasmPlugin CRD not readable at {path} ({e}): set ISTIO_WASMPLUGIN_CRD to its path")
    });
    let crd: Value = serde_norway::from_str(&text).expect("Istio's CRD parses");
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v1alpha1 = versions
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .expect("v1alpha1");
    v1alpha1["schema"]["openAPIV3Schema"].clone()
}

/// Errors from Istio's schema and CEL rules for `object`; empty when Istio would accept it.
fn istio_errors(schema: &Value, object: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("Istio's schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(cel) = kube_cel::validate(schema, object, None) {
        errors.extend(
            cel.as_slice()
                .iter()
                .map(|e| format!("CEL {}: {} ({})", e.field_path, e.message, e.rule)),
        );
    }
    errors
}

fn planned_examples(settings: &Settings) -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/")
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        let yaml = std::fs::read_to_string(&path).expect("readable");
        for mut hrl in parse_documents(&yaml).expect("example parses") {
            hrl.metadata.uid = Some("0f3c4bde-1111-4a5e-9c57-000000000001".into());
            // Workload examples at 3 pods, as the controller would count them.
            let observed = Observed { replicas: Some(3) };
            let wp = plan(&hrl, settings, &observed)
                .wasm_plugin
                .expect("example is valid");
            out.push((
                path.display().to_string(),
                serde_json::to_value(&wp).expect("serialises"),
            ));
        }
    }
    assert!(
        out.len() >= 10,
        "expected the ten examples, found {}",
        out.len()
    );
    out
}

#[test]
fn every_wasm_plugin_planned_from_the_examples_passes_istios_crd_schema_and_cel_rules() {
    let schema = istio_schema();
    let default = with_rate_limit_service();
    let pinned = Settings {
        filter_url: "oci://ghcr.io/hrl-dev/hrl-filter:0.1.0".into(),
        filter_sha256: Some("0123456789abcdef".repeat(4)),
        ..default.clone()
    };
    for settings in [default, pinned] {
        for (example, wp) in planned_examples(&settings) {
            let errors = istio_errors(&schema, &wp);
            assert!(
                errors.is_empty(),
                "{example}: Istio would reject the WasmPlugin:\n{}\n{wp:#}",
                errors.join("\n")
            );
        }
    }
}

#[test]
fn the_istio_schema_check_catches_what_istio_rejects() {
    let schema = istio_schema();
    let (_, wp) = planned_examples(&with_rate_limit_service()).remove(0);
    let mut both = wp.clone();
    both["spec"]["targetRefs"] = json!([{"kind": "Gateway", "name": "g"}]);
    assert!(
        istio_errors(&schema, &both)
            .iter()
            .any(|e| e.contains("only one of targetRefs or selector")),
        "CEL exclusivity"
    );
    let mut bad_sha = wp.clone();
    bad_sha["spec"]["sha256"] = json!("not-hex");
    assert!(
        !istio_errors(&schema, &bad_sha).is_empty(),
        "sha256 pattern"
    );
    let mut bad_enum = wp.clone();
    bad_enum["spec"]["failStrategy"] = json!("FAIL_SOMETIMES");
    assert!(
        !istio_errors(&schema, &bad_enum).is_empty(),
        "failStrategy enum"
    );
    let mut bad_mode = wp;
    bad_mode["spec"]["match"] = json!([{"mode": "INBOUND"}]);
    assert!(
        !istio_errors(&schema, &bad_mode).is_empty(),
        "match mode enum"
    );
}

#[test]
fn gateway_selectors_and_fail_reload_pass_istios_crd_schema() {
    let schema = istio_schema();
    let yaml = "apiVersion: hrl.dev/v1alpha1
kind: HeaderRateLimit
metadata: {name: edge, namespace: istio-ingress, uid: u-1}
spec:
  selector: {matchLabels: {istio: ingressgateway}, proxy: Gateway}
  failurePolicy: FailReload
  headers: {x-edge: '1'}
";
    let hrl = parse_documents(yaml).expect("fixture").remove(0);
    let wp = serde_json::to_value(
        plan(&hrl, &Settings::default(), &Observed::default())
            .wasm_plugin
            .expect("valid"),
    )
    .expect("json");
    assert_eq!(wp["spec"]["match"], json!([{"mode": "CLIENT"}]));
    assert_eq!(wp["spec"]["failStrategy"], "FAIL_RELOAD");
    let errors = istio_errors(&schema, &wp);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
