//! Memory of the controller's caches at 10,000 HeaderRateLimits and their 10,000 WasmPlugins,
//! with and without `cache::strip`. `cargo bench -p hrl-operator --bench cache` prints a table.
//!
//! Each mode runs in a fresh child process: it decodes N objects from JSON (as a watch does),
//! strips them or not, puts them in reflector stores, and reports the growth of its resident
//! set (VmRSS) and the JSON size of what the stores hold. The objects carry what a real API
//! server adds: managedFields of kubectl's client-side apply and of the operator's own
//! server-side applies (spec and status), and kubectl's last-applied annotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

#[path = "common/rss.rs"]
mod rss;

use hrl_operator::cache::{LAST_APPLIED, strip};
use hrl_operator::conditions::{Outcome, desired, merge};
use hrl_operator::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use hrl_operator::plan::{Observed, Settings, plan};
use hrl_operator::render::parse_documents;
use hrl_operator::wasm_plugin::WasmPlugin;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::{Map, Value, json};

const CHILD: &str = "HRL_CACHE_BENCH_CHILD";

fn main() {
    let objects = rss::objects(10_000, 200);
    if let Some(mode) = rss::child_mode(CHILD) {
        child(&mode, objects);
        return;
    }
    println!(
        "{objects} HeaderRateLimits + {objects} WasmPlugins in the controller's reflector stores"
    );
    println!(
        "{:<10} {:>14} {:>16} {:>16}",
        "cache", "RSS growth", "JSON/HRL", "JSON/WasmPlugin"
    );
    rss::each_mode_in_a_child(CHILD, &["full", "stripped"]);
}

fn child(mode: &str, objects: usize) {
    let template = template();
    let (hrls, mut hrl_writer) = reflector::store::<HeaderRateLimit>();
    let (wps, mut wp_writer) = reflector::store::<WasmPlugin>();
    // Warm the allocator and the code paths, then measure from here.
    fill(
        &template,
        mode,
        0..50,
        &mut Writer::default(),
        &mut Writer::default(),
    );
    let growth = rss::growth_kib(|| {
        fill(&template, mode, 0..objects, &mut hrl_writer, &mut wp_writer);
    });
    let (hrls, wps) = (hrls.state(), wps.state());
    assert_eq!((hrls.len(), wps.len()), (objects, objects));
    println!(
        "{:<10} {:>10.1} MiB {:>14} B {:>14} B",
        mode,
        growth as f64 / 1024.0,
        rss::json_bytes_per_object(&hrls),
        rss::json_bytes_per_object(&wps)
    );
}

/// One HeaderRateLimit (the seed-equivalent example) and its WasmPlugin, as JSON templates.
fn template() -> (HeaderRateLimit, WasmPlugin) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/seed-equivalent.yaml"
    );
    let yaml = std::fs::read_to_string(path).expect("example");
    let mut hrl = parse_documents(&yaml).expect("parses").remove(0);
    hrl.metadata.uid = Some("0f3c4bde-1111-4a5e-9c57-000000000001".into());
    let wp = plan(&hrl, &Settings::default(), &Observed::default())
        .wasm_plugin
        .expect("valid");
    (hrl, wp)
}

/// Decodes objects `range` from JSON as a watch would, strips them in mode `stripped`, and
/// stores them.
fn fill(
    (hrl, wp): &(HeaderRateLimit, WasmPlugin),
    mode: &str,
    range: std::ops::Range<usize>,
    hrls: &mut Writer<HeaderRateLimit>,
    wps: &mut Writer<WasmPlugin>,
) {
    for i in range {
        let bytes = serde_json::to_vec(&served_hrl(hrl, i)).unwrap();
        let mut object: HeaderRateLimit = serde_json::from_slice(&bytes).unwrap();
        if mode == "stripped" {
            strip(&mut object);
        }
        hrls.apply_watcher_event(&Event::Apply(object));
        let bytes = serde_json::to_vec(&served_wasm_plugin(wp, i)).unwrap();
        let mut object: WasmPlugin = serde_json::from_slice(&bytes).unwrap();
        if mode == "stripped" {
            strip(&mut object);
        }
        wps.apply_watcher_event(&Event::Apply(object));
    }
}

/// HeaderRateLimit `i` as the API server serves it after `kubectl apply` (client-side) and
/// the operator's status apply.
fn served_hrl(template: &HeaderRateLimit, i: usize) -> Value {
    let (name, namespace) = (format!("web-{i}"), format!("team-{}", i % 100));
    let applied = json!({"apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit",
        "metadata": {"annotations": {}, "name": name, "namespace": namespace},
        "spec": template.spec});
    let mut hrl = template.clone();
    hrl.metadata.name = Some(name);
    hrl.metadata.namespace = Some(namespace);
    hrl.metadata.uid = Some(format!("0f3c4bde-1111-4a5e-9c57-{i:012}"));
    let time = Time(Timestamp::UNIX_EPOCH);
    hrl.status = Some(HeaderRateLimitStatus {
        observed_generation: Some(1),
        wasm_plugin: Some(format!("hrl-web-{i}")),
        rate: Some("10/s".into()),
        conditions: merge(&[], &desired(&Outcome::Applied, "hrl-web"), Some(1), &time),
        ..HeaderRateLimitStatus::default()
    });
    let mut value = serde_json::to_value(&hrl).unwrap();
    let spec_fields = fields(&value["spec"]);
    let status_fields = json!({"f:status": {
        "f:conditions": {
            "k:{\"type\":\"Accepted\"}": condition_fields(),
            "k:{\"type\":\"Programmed\"}": condition_fields(),
            "k:{\"type\":\"Ready\"}": condition_fields(),
        },
        "f:observedGeneration": {}, "f:wasmPlugin": {}}});
    let meta = &mut value["metadata"];
    server_metadata(meta, i);
    meta["annotations"] = json!({LAST_APPLIED: applied.to_string()});
    meta["managedFields"] = json!([
        entry(
            "kubectl-client-side-apply",
            "Update",
            None,
            json!({
            "f:metadata": {"f:annotations": {".": {}, format!("f:{LAST_APPLIED}"): {}}},
            "f:spec": spec_fields})
        ),
        entry("hrl-operator", "Apply", Some("status"), status_fields),
    ]);
    value
}

/// WasmPlugin `i` as the API server serves it after the operator's server-side apply.
fn served_wasm_plugin(template: &WasmPlugin, i: usize) -> Value {
    let mut value = serde_json::to_value(template).unwrap();
    value["metadata"]["name"] = json!(format!("hrl-web-{i}"));
    value["metadata"]["namespace"] = json!(format!("team-{}", i % 100));
    let owner = format!("k:{{\"uid\":\"0f3c4bde-1111-4a5e-9c57-{i:012}\"}}");
    let applied = json!({
        "f:metadata": {"f:labels": fields(&value["metadata"]["labels"]),
            "f:ownerReferences": {owner: {}}},
        "f:spec": fields(&value["spec"])});
    let meta = &mut value["metadata"];
    server_metadata(meta, i);
    meta["managedFields"] = json!([entry("hrl-operator", "Apply", None, applied)]);
    value
}

fn server_metadata(meta: &mut Value, i: usize) {
    meta["resourceVersion"] = json!(format!("{}", 100_000 + i));
    meta["generation"] = json!(1);
    meta["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
    if meta.get("uid").is_none_or(Value::is_null) {
        meta["uid"] = json!(format!("7a1d0c2e-2222-4b6f-8d68-{i:012}"));
    }
}

fn entry(manager: &str, operation: &str, subresource: Option<&str>, fields: Value) -> Value {
    let mut entry = json!({"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields,
        "manager": manager, "operation": operation, "time": "2025-01-01T00:00:00Z"});
    if let Some(subresource) = subresource {
        entry["subresource"] = json!(subresource);
    }
    entry
}

fn condition_fields() -> Value {
    json!({".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:observedGeneration": {},
        "f:reason": {}, "f:status": {}, "f:type": {}})
}

/// The fieldsV1 set of every field in `value`: `f:name` per key, `.` on nested objects, lists
/// as atomic.
fn fields(value: &Value) -> Value {
    let mut out = Map::new();
    for (key, child) in value.as_object().into_iter().flatten() {
        let nested = match child {
            Value::Object(_) => {
                let mut inner = fields(child);
                inner["."] = json!({});
                inner
            }
            _ => json!({}),
        };
        out.insert(format!("f:{key}"), nested);
    }
    Value::Object(out)
}
