//! The CRD's validation evaluated client-side, for the tests in `cel.rs` and `cel_match.rs`: its
//! openAPIV3Schema (patterns, bounds) with jsonschema, its CEL rules with kube-cel (the
//! evaluator kube 5's `cel` feature uses; taken directly as a dev-dependency so the operator
//! binary does not link a CEL engine), and the API server's list-type uniqueness rule.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)] // test code; each test binary uses a part

use hrl_operator::crd::HeaderRateLimit;
use kube::CustomResourceExt;
use serde_json::{Value, json};

pub fn schema() -> Value {
    let crd = serde_json::to_value(HeaderRateLimit::crd()).expect("CRD serialises");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Every message the API server would answer for `spec` (empty = accepted).
pub fn rejections(spec: Value) -> Vec<String> {
    let object = json!({"apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit", "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
    let schema = schema();
    let validator = jsonschema::validator_for(&schema).expect("our schema compiles");
    let mut out: Vec<String> = validator
        .iter_errors(&object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(errors) = kube_cel::validate(&schema, &object, None) {
        out.extend(
            errors
                .as_slice()
                .iter()
                .map(|e| format!("{}: {}", e.field_path, e.message)),
        );
    }
    list_type_errors(&schema, &object, "", &mut out);
    out
}

/// The API server's uniqueness rule for `x-kubernetes-list-type: set` (whole items) and `map`
/// (the `x-kubernetes-list-map-keys`) lists, which neither jsonschema nor kube-cel checks:
/// apiextensions-apiserver `pkg/apiserver/schema/listtype/validation.go`
/// (`ValidateListSetsAndMaps`) answers `Duplicate value` at each repeated item.
fn list_type_errors(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, child) in fields {
                let sub = schema
                    .get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| schema.get("additionalProperties"));
                if let Some(sub) = sub {
                    list_type_errors(sub, child, &format!("{path}/{name}"), out);
                }
            }
        }
        Value::Array(items) => {
            let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let identity = |item: &Value| match schema["x-kubernetes-list-type"].as_str() {
                Some("set") => Some(item.clone()),
                Some("map") => Some(
                    keys.iter()
                        .map(|k| item.get(*k).cloned())
                        .collect::<Value>(),
                ),
                _ => None,
            };
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(id) = identity(item) {
                    if seen.contains(&id) {
                        out.push(format!("{path}/{i}: Duplicate value"));
                    }
                    seen.push(id);
                }
                list_type_errors(&schema["items"], item, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

pub fn rejected_with(spec: Value, needle: &str) {
    let got = rejections(spec.clone());
    assert!(
        got.iter().any(|m| m.contains(needle)),
        "{spec}: expected a rejection containing {needle:?}, got {got:?}"
    );
}
