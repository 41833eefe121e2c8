//! `render`: multi-document YAML in, WasmPlugins out; errors name the document and field.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

#[path = "support/settings.rs"]
mod settings;

use hrl_operator::plan::{Observed, Settings};
use hrl_operator::render::{RenderError, parse_documents, render};
use settings::with_rate_limit_service;

const TWO: &str = "---
apiVersion: hrl.dev/v1alpha1
kind: HeaderRateLimit
metadata: {name: a}
spec: {selector: {matchLabels: {app: a}}, headers: {x-a: '1'}}
---
---
apiVersion: hrl.dev/v1alpha1
kind: HeaderRateLimit
metadata: {name: b, namespace: team}
spec: {selector: {matchLabels: {app: b}}, rateLimit: {tokensPerSecond: 1}}
";

#[test]
fn every_document_is_parsed_in_order_and_a_missing_namespace_is_default() {
    let parsed = parse_documents(TWO).expect("valid");
    let names: Vec<(Option<String>, Option<String>)> = parsed
        .iter()
        .map(|h| (h.metadata.namespace.clone(), h.metadata.name.clone()))
        .collect();
    assert_eq!(
        names,
        [
            (Some("default".into()), Some("a".into())),
            (Some("team".into()), Some("b".into()))
        ]
    );
}

#[test]
fn render_prints_one_wasm_plugin_per_resource() {
    let out = render(TWO, &Settings::default(), &Observed::default()).expect("valid");
    assert_eq!(out.matches("kind: WasmPlugin").count(), 2);
    assert!(
        out.contains("name: hrl-a") && out.contains("namespace: team"),
        "{out}"
    );
}

#[test]
fn a_typo_in_a_field_name_is_an_error_naming_the_field() {
    let yaml = TWO.replace("tokensPerSecond: 1}", "tokensPerSecond: 1, burts: 2}");
    let err = parse_documents(&yaml).expect_err("unknown field");
    assert_eq!(
        err.to_string(),
        "document 3: spec.rateLimit.burts: unknown field"
    );
}

#[test]
fn a_typo_in_a_list_item_is_an_error_naming_the_item_and_field() {
    let yaml = TWO.replace(
        "tokensPerSecond: 1}",
        "tokensPerSecond: 1}, match: {paths: [{exact: /a}, {exact: /b, prefx: /c}]}",
    );
    let err = parse_documents(&yaml).expect_err("unknown field");
    assert_eq!(
        err.to_string(),
        "document 3: spec.match.paths[1].prefx: unknown field"
    );
}

#[test]
fn another_kind_is_rejected() {
    let err = parse_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
        .expect_err("not ours");
    assert!(
        matches!(err, RenderError::NotAHeaderRateLimit { document: 1, .. }),
        "{err}"
    );
}

#[test]
fn a_wrong_type_is_an_error_naming_the_field() {
    let yaml = TWO.replace("tokensPerSecond: 1}", "tokensPerSecond: fast}");
    let err = parse_documents(&yaml).expect_err("wrong type").to_string();
    assert!(
        err.starts_with("document 3: ") && err.contains("tokensPerSecond"),
        "{err}"
    );
}

#[test]
fn an_invalid_resource_fails_the_render_with_its_name_and_field() {
    let yaml = TWO.replace("tokensPerSecond: 1}", "tokensPerSecond: 0}");
    let err = render(&yaml, &Settings::default(), &Observed::default())
        .expect_err("invalid")
        .to_string();
    assert_eq!(
        err,
        "team/b: spec.rateLimit.tokensPerSecond: must be at least 1"
    );
}

#[test]
fn every_example_renders() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut count = 0;
    // The Cluster example needs the installation's rate limit service.
    let settings = with_rate_limit_service();
    for entry in std::fs::read_dir(dir).expect("examples/ exists").flatten() {
        let yaml = std::fs::read_to_string(entry.path()).expect("readable");
        let out = render(&yaml, &settings, &Observed { replicas: Some(3) });
        assert!(out.is_ok(), "{}: {:?}", entry.path().display(), out.err());
        count += 1;
    }
    assert!(count >= 10, "expected the ten examples, found {count}");
}
