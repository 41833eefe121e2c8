//! The reconciler against a mocked API server (tower-test): for each situation, the exact
//! requests (method, path, query with fieldManager, body), and that nothing else is called.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::sync::Arc;
use std::time::Duration;

use hrl_operator::conditions::{self, Outcome};
use hrl_operator::controller::{Error, error_policy};
use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::wasm_plugin::WasmPlugin;
use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::json;
use support::answers::failure;
use support::*;

type Conditions = [(&'static str, &'static str, &'static str); 3];

const READY: Conditions = [
    ("Accepted", "True", "Accepted"),
    ("Programmed", "True", "WasmPluginApplied"),
    ("Ready", "True", "Ready"),
];

const INVALID: Conditions = [
    ("Accepted", "False", "Invalid"),
    ("Programmed", "False", "Invalid"),
    ("Ready", "False", "Invalid"),
];

/// Accepted, but the WasmPlugin is not applied for `reason`.
const fn not_programmed(reason: &'static str) -> Conditions {
    [
        ("Accepted", "True", "Accepted"),
        ("Programmed", "False", reason),
        ("Ready", "False", reason),
    ]
}

/// The exchanges of a successful `apply` of the WasmPlugin of a policy not Ready yet: the
/// apply, the Ready status naming the WasmPlugin, the event.
fn applied_then_ready(apply: Exchange) -> Vec<Exchange> {
    vec![
        apply,
        apply_status(READY, None, Some("hrl-web")),
        event("Normal", "WasmPluginApplied"),
    ]
}

/// The exchanges of `desired` forced back over a drifted WasmPlugin of a Ready policy: the
/// apply and its event, no status change.
fn reapplied(desired: &WasmPlugin) -> Vec<Exchange> {
    let body = wp_json(desired);
    vec![
        apply_wp(body.clone(), StatusCode::OK, body),
        event("Normal", "WasmPluginApplied"),
    ]
}

/// The forced apply of `hrl`'s WasmPlugin, answered as when Istio's CRD is not installed.
fn apply_wp_without_istio(hrl: &HeaderRateLimit) -> Exchange {
    let message = "the server could not find the requested resource";
    apply_wp(
        wp_json(&desired(hrl)),
        StatusCode::NOT_FOUND,
        failure(StatusCode::NOT_FOUND, "NotFound", message),
    )
}

/// The exchanges of a first apply (complete cache, so without force) that meets another
/// manager's WasmPlugin of the same name: 409, then status Conflict and a warning.
fn conflict(hrl: &HeaderRateLimit) -> Vec<Exchange> {
    let message = "Apply failed with 1 conflict: conflict with \"kubectl-create\": .spec.url";
    vec![
        apply_wp_unforced(
            wp_json(&desired(hrl)),
            StatusCode::CONFLICT,
            failure(StatusCode::CONFLICT, "Conflict", message),
        ),
        apply_status(not_programmed("Conflict"), None, None),
        event("Warning", "Conflict"),
    ]
}

#[tokio::test]
async fn a_new_resource_creates_its_wasm_plugin_then_writes_ready_status_and_an_event() {
    let hrl = valid();
    let body = wp_json(&desired(&hrl));
    let script = applied_then_ready(apply_wp(body.clone(), StatusCode::CREATED, body));
    let action = run(hrl, None, script).await.expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn an_unchanged_resource_makes_no_request_at_all() {
    let hrl = already_ready(valid());
    let existing = desired(&hrl);
    let action = run(hrl, Some(existing), vec![]).await.expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_wasm_plugin_edited_by_hand_is_applied_again_without_a_status_change() {
    let hrl = already_ready(valid());
    let want = desired(&hrl);
    let mut drifted = want.clone();
    drifted.spec.plugin_config = Some(json!({"policy": "default/web"}));
    drifted.spec.fail_strategy = Some("FAIL_OPEN".into());
    run(hrl, Some(drifted), reapplied(&want))
        .await
        .expect("reconciled");
}

#[tokio::test]
async fn an_invalid_spec_applies_nothing_sets_accepted_false_and_names_no_wasm_plugin() {
    let hrl = hrl("{selector: {matchLabels: {app: web}}, rateLimit: {tokensPerSecond: 0}}");
    let script = vec![
        apply_status(
            INVALID,
            Some("spec.rateLimit.tokensPerSecond: must be at least 1"),
            None,
        ),
        event("Warning", "Invalid"),
    ];
    let action = run(hrl, None, script).await.expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_missing_istio_crd_sets_istio_not_installed_and_requeues_with_bounded_backoff() {
    let hrl = valid();
    let failures = Failures::default();
    let script = vec![
        apply_wp_without_istio(&hrl),
        apply_status(not_programmed("IstioNotInstalled"), None, None),
        event("Warning", "IstioNotInstalled"),
    ];
    let action = run_sharing(hrl.clone(), None, script, failures.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));

    // The retry finds Istio still missing: same status (no status patch, no event), longer wait.
    let seen = with_status(hrl.clone(), &Outcome::IstioNotInstalled);
    let script = vec![apply_wp_without_istio(&hrl)];
    let action = run_sharing(seen, None, script, failures.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));

    // The wait is bounded however long Istio stays missing.
    failures
        .lock()
        .expect("lock")
        .insert(("default".into(), "web".into()), 40);
    let script = vec![apply_wp_without_istio(&hrl)];
    let seen = with_status(hrl.clone(), &Outcome::IstioNotInstalled);
    let action = run_sharing(seen, None, script, failures.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));

    // Once Istio is there and the plugin is applied, the count starts over.
    let ready = already_ready(hrl.clone());
    let action = run_sharing(ready, Some(desired(&hrl)), vec![], failures.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
    assert!(failures.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_api_error_sets_apply_failed_and_retries_with_backoff() {
    let hrl = valid();
    let boom = failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "etcd timeout",
    );
    let script = vec![
        apply_wp(
            wp_json(&desired(&hrl)),
            StatusCode::INTERNAL_SERVER_ERROR,
            boom,
        ),
        apply_status(not_programmed("ApplyFailed"), None, None),
        event("Warning", "ApplyFailed"),
    ];
    let error = run(hrl.clone(), None, script)
        .await
        .expect_err("the apply failed");
    assert!(matches!(error, Error::ApplyWasmPlugin(_)), "{error}");
    let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context(Client::new(service, "default"), None);
    let first = error_policy(Arc::new(hrl.clone()), &error, ctx.clone());
    let second = error_policy(Arc::new(hrl), &error, ctx);
    assert_eq!(
        (first, second),
        (
            Action::requeue(Duration::from_secs(5)),
            Action::requeue(Duration::from_secs(10))
        )
    );
}

#[tokio::test]
async fn with_a_complete_cache_a_new_wasm_plugin_is_created_without_force() {
    let hrl = valid();
    let body = wp_json(&desired(&hrl));
    let script = applied_then_ready(apply_wp_unforced(body.clone(), StatusCode::CREATED, body));
    let action = run_complete(hrl, None, script).await.expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn with_a_complete_cache_our_drifted_wasm_plugin_is_still_forced_back() {
    let hrl = already_ready(valid());
    let want = desired(&hrl);
    let mut drifted = want.clone();
    drifted.spec.fail_strategy = Some("FAIL_OPEN".into());
    let action = run_complete(hrl, Some(drifted), reapplied(&want))
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn someone_elses_wasm_plugin_of_the_same_name_is_left_alone_and_reported_as_a_conflict() {
    let hrl = valid();
    let action = run_complete(hrl.clone(), None, conflict(&hrl))
        .await
        .expect("a conflict is a status, not an error");
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(5)),
        "retried: deleting the other object clears it"
    );
    let [_, programmed, _] = conditions::desired(
        &Outcome::Conflict("conflict with \"kubectl-create\"".into()),
        "hrl-web",
    );
    assert!(
        programmed
            .message
            .contains("hrl-web already exists and was not created by hrl-operator")
            && programmed.message.contains("kubectl-create"),
        "{}",
        programmed.message
    );
}

fn invalid_after_ready() -> HeaderRateLimit {
    let mut broken = already_ready(valid());
    broken.spec.rate_limit =
        hrl("{selector: {matchLabels: {app: web}}, rateLimit: {tokensPerSecond: 0}}")
            .spec
            .rate_limit;
    broken
}

#[tokio::test]
async fn an_invalid_spec_keeps_naming_the_wasm_plugin_it_applied_before() {
    let script = vec![
        apply_status(INVALID, None, Some("hrl-web")),
        event("Warning", "Invalid"),
    ];
    let existing = desired(&valid());
    run_complete(invalid_after_ready(), Some(existing), script)
        .await
        .expect("reconciled");
}

#[tokio::test]
async fn a_cached_wasm_plugin_owned_by_another_object_is_not_named() {
    let mut foreign = desired(&valid());
    for owner in foreign.metadata.owner_references.iter_mut().flatten() {
        owner.uid = "u-other".into();
    }
    let script = vec![
        apply_status(INVALID, None, None),
        event("Warning", "Invalid"),
    ];
    run_complete(invalid_after_ready(), Some(foreign), script)
        .await
        .expect("reconciled");
}

#[tokio::test]
async fn creating_a_wasm_plugin_logs_one_line_for_it_and_one_for_the_status() {
    let hrl = valid();
    let body = wp_json(&desired(&hrl));
    let mut created = body.clone();
    created["metadata"]["generation"] = json!(1);
    created["metadata"]["resourceVersion"] = json!("1");
    let script = applied_then_ready(apply_wp_unforced(body, StatusCode::CREATED, created));
    let (result, logs) = logged(run_complete(hrl, None, script)).await;
    result.expect("reconciled");
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 2, "{logs}");
    for (line, what) in lines
        .iter()
        .zip(["WasmPlugin created", "status changed: ready"])
    {
        assert!(
            line.contains(" INFO ") && line.contains(what),
            "{what}: {line}"
        );
        assert!(
            line.contains("namespace=default") && line.contains("name=web"),
            "{line}"
        );
    }
    assert!(lines[0].contains("wasm_plugin=hrl-web"), "{}", lines[0]);
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_logs_nothing() {
    let hrl = already_ready(valid());
    let existing = desired(&hrl);
    let (result, logs) = logged(run(hrl, Some(existing), vec![])).await;
    result.expect("reconciled");
    assert_eq!(logs, "");

    // A retry that meets the same missing CRD: no new status, no log line.
    let hrl = with_status(valid(), &Outcome::IstioNotInstalled);
    let script = vec![apply_wp_without_istio(&hrl)];
    let (result, logs) = logged(run(hrl, None, script)).await;
    result.expect("reconciled");
    assert_eq!(logs, "");
}

#[tokio::test]
async fn a_new_conflict_is_logged_once_as_a_warning_naming_the_object() {
    let hrl = valid();
    let (result, logs) = logged(run_complete(hrl.clone(), None, conflict(&hrl))).await;
    result.expect("a conflict is a status");
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(
        lines[0].contains(" WARN ")
            && lines[0].contains("namespace=default name=web")
            && lines[0].contains("Ready=False (Conflict)")
            && lines[0].contains("was not created by hrl-operator"),
        "{}",
        lines[0]
    );
}
