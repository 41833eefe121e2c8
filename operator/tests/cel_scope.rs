//! The CRD's rules for `spec.rateLimit.scope` and `failureMode`, evaluated client-side (see
//! `cel_support`), and that they refuse exactly what `plan` refuses.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

mod cel_support;

use cel_support::{rejected_with, rejections};
use hrl_operator::crd::{CLUSTER_BURST_MESSAGE, CLUSTER_PERIOD_MESSAGE, FAILURE_MODE_MESSAGE};
use hrl_operator::plan::{Observed, RlsSettings, Settings, plan};
use hrl_operator::render::parse_documents;
use serde_json::{Value, json};

fn limit(rate: Value) -> Value {
    json!({"selector": {"matchLabels": {"a": "b"}}, "rateLimit": rate})
}

#[test]
fn scope_is_one_of_proxy_workload_or_cluster_and_defaults_to_proxy() {
    for scope in ["Proxy", "Workload", "Cluster"] {
        let got = rejections(limit(json!({"tokensPerSecond": 5, "scope": scope})));
        assert!(got.is_empty(), "{scope}: {got:?}");
    }
    rejected_with(
        limit(json!({"tokensPerSecond": 5, "scope": "Namespace"})),
        "/spec/rateLimit/scope",
    );
    let schema = cel_support::schema();
    let scope = &schema["properties"]["spec"]["properties"]["rateLimit"]["properties"]["scope"];
    assert_eq!(
        scope["default"], "Proxy",
        "the API server writes it, so the Scope column shows it"
    );
}

#[test]
fn a_cluster_rate_must_be_per_second_minute_hour_or_day() {
    for ok in [
        json!({"tokensPerSecond": 5}),
        json!({"tokens": 5, "per": "1s"}),
        json!({"tokens": 5, "per": "1m"}),
        json!({"tokens": 5, "per": "60s"}),
        json!({"tokens": 5, "per": "1h"}),
        json!({"tokens": 5, "per": "24h"}),
    ] {
        let mut rate = ok.clone();
        rate["scope"] = json!("Cluster");
        let got = rejections(limit(rate));
        assert!(got.is_empty(), "{ok}: {got:?}");
    }
    for per in ["30s", "90m", "2h", "1h30m"] {
        rejected_with(
            limit(json!({"tokens": 5, "per": per, "scope": "Cluster"})),
            CLUSTER_PERIOD_MESSAGE,
        );
        let got = rejections(limit(json!({"tokens": 5, "per": per, "scope": "Workload"})));
        assert!(got.is_empty(), "{per} is fine for Workload: {got:?}");
    }
}

#[test]
fn burst_is_refused_with_cluster_and_failure_mode_without_it() {
    rejected_with(
        limit(json!({"tokensPerSecond": 5, "burst": 9, "scope": "Cluster"})),
        CLUSTER_BURST_MESSAGE,
    );
    assert!(
        rejections(limit(
            json!({"tokensPerSecond": 5, "burst": 9, "scope": "Workload"})
        ))
        .is_empty()
    );
    for rate in [
        json!({"tokensPerSecond": 5, "failureMode": "Deny"}),
        json!({"tokensPerSecond": 5, "failureMode": "Allow", "scope": "Proxy"}),
        json!({"tokensPerSecond": 5, "failureMode": "Deny", "scope": "Workload"}),
    ] {
        rejected_with(limit(rate), FAILURE_MODE_MESSAGE);
    }
    assert!(
        rejections(limit(
            json!({"tokensPerSecond": 5, "failureMode": "Deny", "scope": "Cluster"})
        ))
        .is_empty()
    );
    rejected_with(
        limit(json!({"tokensPerSecond": 5, "failureMode": "Retry", "scope": "Cluster"})),
        "/spec/rateLimit/failureMode",
    );
}

/// The API server and `plan` agree on every combination of scope, period, burst and
/// failureMode: what one refuses the other refuses (with a service configured, so only the
/// spec decides).
#[test]
fn cel_and_plan_refuse_the_same_scoped_specs() {
    let settings = Settings {
        rls: Some(
            RlsSettings::new("rl.ops.svc.cluster.local:8081", "hrl", "100ms").expect("valid"),
        ),
        ..Settings::default()
    };
    let mut checked = 0;
    for scope in [None, Some("Proxy"), Some("Workload"), Some("Cluster")] {
        for per in [
            None,
            Some("1s"),
            Some("60s"),
            Some("1h"),
            Some("30s"),
            Some("24h"),
            Some("1h30m"),
        ] {
            for burst in [None, Some(3)] {
                for failure_mode in [None, Some("Deny")] {
                    let mut rate = match per {
                        None => json!({"tokensPerSecond": 5}),
                        Some(per) => json!({"tokens": 5, "per": per}),
                    };
                    if let Some(scope) = scope {
                        rate["scope"] = json!(scope);
                    }
                    if let Some(burst) = burst {
                        rate["burst"] = json!(burst);
                    }
                    if let Some(mode) = failure_mode {
                        rate["failureMode"] = json!(mode);
                    }
                    let spec = limit(rate);
                    let cel_ok = rejections(spec.clone()).is_empty();
                    let yaml = serde_norway::to_string(&json!({
                        "apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit",
                        "metadata": {"name": "x", "namespace": "default"}, "spec": spec,
                    }))
                    .expect("yaml");
                    let hrl = parse_documents(&yaml).expect("parses").remove(0);
                    let planned = plan(&hrl, &settings, &Observed { replicas: Some(2) });
                    assert_eq!(
                        cel_ok,
                        planned.wasm_plugin.is_ok(),
                        "{spec}: CEL {cel_ok}, plan {:?}",
                        planned.wasm_plugin.err()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 7 * 2 * 2);
}
