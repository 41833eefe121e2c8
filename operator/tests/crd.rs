//! The generated CRD file is what the Rust types produce.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use hrl_operator::crd::{HeaderRateLimit, crd_yaml, is_known_format, kubernetes_formats};
use kube::CustomResourceExt;
use serde_json::Value;

#[test]
fn the_committed_crd_matches_the_rust_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/headerratelimits.hrl.dev.yaml"
    );
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = crd_yaml().expect("the CRD serialises");
    assert!(
        committed == generated,
        "crds/headerratelimits.hrl.dev.yaml is out of date with operator/src/crd.rs; regenerate it with\n  \
         cargo run -q -p hrl-operator -- crd > crds/headerratelimits.hrl.dev.yaml\n\
         (and copy it to charts/hrl-operator/crds/)"
    );
}

#[test]
fn the_crd_has_short_name_status_subresource_and_printer_columns() {
    let yaml = crd_yaml().expect("the CRD serialises");
    let crd: serde_json::Value = serde_norway::from_str(&yaml).expect("the CRD parses");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["hrl"])
    );
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<(&str, i64)> = version["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Ready", 0),
            ("Rate", 0),
            ("Burst", 0),
            ("Scope", 0),
            ("WasmPlugin", 0),
            ("Age", 0),
            ("Reason", 1),
            ("Replicas", 1),
            ("Share", 1),
            ("Key", 1),
            ("Enforce", 1),
            ("FailurePolicy", 1)
        ]
    );
}

/// Every `format` in `node` and below that the API server does not know, as `path: type/format`.
fn unknown_formats(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return;
    };
    if let Some(format) = object.get("format").and_then(Value::as_str) {
        let type_ = object.get("type").and_then(Value::as_str);
        if !is_known_format(type_, format) {
            out.push(format!("{path}: {}/{format}", type_.unwrap_or("-")));
        }
    }
    for (key, child) in object {
        match key.as_str() {
            "properties" | "patternProperties" => {
                for (name, schema) in child.as_object().into_iter().flatten() {
                    unknown_formats(schema, &format!("{path}.{name}"), out);
                }
            }
            "items" | "additionalProperties" | "not" => {
                unknown_formats(child, &format!("{path}[{key}]"), out);
            }
            "allOf" | "anyOf" | "oneOf" => {
                for (i, schema) in child.as_array().into_iter().flatten().enumerate() {
                    unknown_formats(schema, &format!("{path}.{key}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_format_in_the_crd_is_one_the_api_server_knows() {
    let crd = serde_json::to_value(HeaderRateLimit::crd()).expect("CRD serialises");
    let mut unknown = Vec::new();
    for (i, version) in crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let schema = &version["schema"]["openAPIV3Schema"];
        assert!(schema.is_object(), "version {i} has a schema");
        unknown_formats(schema, &format!("versions[{i}]"), &mut unknown);
    }
    assert!(
        unknown.is_empty(),
        "formats the API server warns about (unrecognized format): {unknown:#?}"
    );
}

#[test]
fn the_walk_finds_the_unsigned_formats_schemars_writes_without_the_transform() {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Raw {
        a: u32,
        b: Option<u16>,
    }
    #[derive(schemars::JsonSchema)]
    #[schemars(transform = kubernetes_formats)]
    #[allow(dead_code)]
    struct Fixed {
        a: u32,
        b: Option<u16>,
    }
    let generator = || schemars::generate::SchemaSettings::openapi3().into_generator();
    let raw = generator().into_root_schema_for::<Raw>().to_value();
    let fixed = generator().into_root_schema_for::<Fixed>().to_value();
    let mut unknown = Vec::new();
    unknown_formats(&raw, "raw", &mut unknown);
    assert_eq!(unknown, ["raw.a: integer/uint32", "raw.b: integer/uint16"]);
    unknown.clear();
    unknown_formats(&fixed, "fixed", &mut unknown);
    assert!(unknown.is_empty(), "{unknown:?}");
    assert_eq!(fixed["properties"]["a"]["format"], "int64");
    assert_eq!(fixed["properties"]["b"]["format"], "int32");
    assert_eq!(fixed["properties"]["b"]["maximum"], 65535);
}
