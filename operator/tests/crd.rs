//! The generated CRD file is what the Rust types produce.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use hrl_operator::crd::crd_yaml;

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
            ("WasmPlugin", 0),
            ("Age", 0),
            ("Reason", 1),
            ("Key", 1),
            ("Enforce", 1),
            ("FailurePolicy", 1)
        ]
    );
}
