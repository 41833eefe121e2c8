//! The reconciler against a mocked API server (tower-test): for each situation, the exact
//! requests (method, path, query with fieldManager, body), and that nothing else is called.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hrl_operator::conditions::{self, Outcome};
use hrl_operator::controller::{Context, Error, error_policy, reconcile};
use hrl_operator::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use hrl_operator::metrics::Metrics;
use hrl_operator::plan::{Settings, plan};
use hrl_operator::render::parse_documents;
use hrl_operator::wasm_plugin::WasmPlugin;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const WP_PATH: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/hrl-web";
const STATUS_PATH: &str = "/apis/hrl.dev/v1alpha1/namespaces/default/headerratelimits/web/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn hrl(spec: &str) -> HeaderRateLimit {
    let yaml = format!(
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata: {{name: web, uid: u-1, generation: 3}}\nspec: {spec}\n"
    );
    parse_documents(&yaml).expect("fixture parses").remove(0)
}

fn valid() -> HeaderRateLimit {
    hrl(
        "{selector: {matchLabels: {app: web}}, headers: {x-a: '1'}, rateLimit: {tokensPerSecond: 2}}",
    )
}

fn desired(hrl: &HeaderRateLimit) -> WasmPlugin {
    plan(hrl, &Settings::default())
        .wasm_plugin
        .expect("valid plan")
}

/// `hrl` with the status a previous successful reconcile wrote.
fn already_ready(hrl: HeaderRateLimit) -> HeaderRateLimit {
    with_status(hrl, &Outcome::Applied)
}

/// `hrl` with the status a previous reconcile that ended in `outcome` wrote.
fn with_status(mut hrl: HeaderRateLimit, outcome: &Outcome) -> HeaderRateLimit {
    let desired = conditions::desired(outcome, "hrl-web");
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    hrl.status = Some(HeaderRateLimitStatus {
        observed_generation: Some(3),
        wasm_plugin: Some("hrl-web".into()),
        conditions: conditions::merge(&[], &desired, Some(3), &now),
    });
    hrl
}

type Failures = Arc<Mutex<HashMap<(String, String), u32>>>;

fn context(client: Client, existing: Option<WasmPlugin>) -> Arc<Context> {
    context_sharing(client, existing, Cache::Partial, Failures::default())
}

/// Whether the WasmPlugin cache has seen its initial list (it never does while Istio's CRD is
/// missing).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cache {
    Partial,
    Complete,
}

/// A context whose per-object failure counts are `failures` (shared across reconciles).
fn context_sharing(
    client: Client,
    existing: Option<WasmPlugin>,
    cache: Cache,
    failures: Failures,
) -> Arc<Context> {
    let (store, mut writer) = reflector::store();
    match cache {
        Cache::Partial => {
            if let Some(wp) = existing {
                writer.apply_watcher_event(&Event::Apply(wp));
            }
        }
        Cache::Complete => {
            writer.apply_watcher_event(&Event::Init);
            if let Some(wp) = existing {
                writer.apply_watcher_event(&Event::InitApply(wp));
            }
            writer.apply_watcher_event(&Event::InitDone);
        }
    }
    Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "hrl-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        settings: Settings::default(),
        wasm_plugins: store,
        metrics: Arc::new(Metrics::default()),
        failures,
        store_waited: Arc::new(AtomicBool::new(true)),
    })
}

/// One expected request and the answer the fake API server gives.
struct Exchange {
    method: Method,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    check: Box<dyn Fn(&Value) + Send>,
    status: StatusCode,
    answer: Value,
}

/// A forced apply of the WasmPlugin (our own object, or the cache cannot tell).
fn apply_wp(body: Value, status: StatusCode, answer: Value) -> Exchange {
    Exchange {
        query: &[("fieldManager", "hrl-operator"), ("force", "true")],
        ..apply_wp_unforced(body, status, answer)
    }
}

/// An apply without force: the complete cache does not have the WasmPlugin.
fn apply_wp_unforced(body: Value, status: StatusCode, answer: Value) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: WP_PATH,
        query: &[("fieldManager", "hrl-operator")],
        check: Box::new(move |got| assert_eq!(got, &body, "apply body")),
        status,
        answer,
    }
}

/// Status apply whose conditions are (type, status, reason) as listed.
fn apply_status(
    want: [(&'static str, &'static str, &'static str); 3],
    message: Option<&'static str>,
) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: STATUS_PATH,
        query: &[("fieldManager", "hrl-operator"), ("force", "true")],
        check: Box::new(move |got| {
            assert_eq!(got["apiVersion"], "hrl.dev/v1alpha1");
            assert_eq!(got["kind"], "HeaderRateLimit");
            assert_eq!(got["status"]["observedGeneration"], 3);
            assert_eq!(got["status"]["wasmPlugin"], "hrl-web");
            let conditions = got["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let seen: Vec<(String, String, String)> = conditions
                .iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap_or("").into(),
                        c["status"].as_str().unwrap_or("").into(),
                        c["reason"].as_str().unwrap_or("").into(),
                    )
                })
                .collect();
            let want: Vec<(String, String, String)> = want
                .iter()
                .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
                .collect();
            assert_eq!(seen, want);
            if let Some(message) = message {
                assert_eq!(conditions[0]["message"], message);
            }
            assert_eq!(
                got.as_object().map(|o| o.len()),
                Some(3),
                "only apiVersion, kind, status"
            );
        }),
        status: StatusCode::OK,
        answer: json!({"apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit", "metadata": {"name": "web"}, "spec": {}}),
    }
}

fn event(type_: &'static str, reason: &'static str) -> Exchange {
    Exchange {
        method: Method::POST,
        path: EVENTS_PATH,
        query: &[],
        check: Box::new(move |got| {
            assert_eq!(
                (got["type"].as_str(), got["reason"].as_str()),
                (Some(type_), Some(reason))
            );
            assert_eq!(got["regarding"]["name"], "web");
            assert_eq!(got["reportingController"], "hrl-operator");
        }),
        status: StatusCode::CREATED,
        answer: json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.1"}, "eventTime": null}),
    }
}

async fn serve(mut handle: Handle, script: Vec<Exchange>) -> Handle {
    for (i, want) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let Ok(Some((request, respond))) = next else {
            panic!("request {i} ({} {}) was not made", want.method, want.path)
        };
        assert_eq!(
            (request.method(), request.uri().path()),
            (&want.method, want.path),
            "request {i}"
        );
        let query: BTreeSet<(String, String)> = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let expected: BTreeSet<(String, String)> = want
            .query
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(query, expected, "query of request {i}");
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
        (want.check)(&body);
        let answer = serde_json::to_vec(&want.answer).expect("answer");
        respond.send_response(
            Response::builder()
                .status(want.status)
                .body(Body::from(answer))
                .expect("response"),
        );
    }
    handle
}

/// Runs one reconcile against the script; then asserts that no further request was made.
async fn run(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    script: Vec<Exchange>,
) -> Result<Action, Error> {
    run_with(hrl, existing, Cache::Partial, script, Failures::default()).await
}

/// `run`, keeping the per-object failure counts in `failures` (to see backoff grow).
async fn run_sharing(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    script: Vec<Exchange>,
    failures: Failures,
) -> Result<Action, Error> {
    run_with(hrl, existing, Cache::Partial, script, failures).await
}

/// `run` with the cache in the given state.
async fn run_with(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    cache: Cache,
    script: Vec<Exchange>,
    failures: Failures,
) -> Result<Action, Error> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context_sharing(Client::new(service, "default"), existing, cache, failures);
    let (result, mut handle) =
        tokio::join!(reconcile(Arc::new(hrl), ctx.clone()), serve(handle, script));
    drop(ctx);
    let extra = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    assert!(matches!(extra, Ok(None)), "an unexpected request was made");
    result
}

fn wp_json(wp: &WasmPlugin) -> Value {
    serde_json::to_value(wp).expect("serialises")
}

const READY: [(&str, &str, &str); 3] = [
    ("Accepted", "True", "Accepted"),
    ("Programmed", "True", "WasmPluginApplied"),
    ("Ready", "True", "Ready"),
];

#[tokio::test]
async fn a_new_resource_creates_its_wasm_plugin_then_writes_ready_status_and_an_event() {
    let hrl = valid();
    let body = wp_json(&desired(&hrl));
    let script = vec![
        apply_wp(body.clone(), StatusCode::CREATED, body),
        apply_status(READY, None),
        event("Normal", "WasmPluginApplied"),
    ];
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
    let body = wp_json(&want);
    let script = vec![
        apply_wp(body.clone(), StatusCode::OK, body),
        event("Normal", "WasmPluginApplied"),
    ];
    run(hrl, Some(drifted), script).await.expect("reconciled");
}

#[tokio::test]
async fn an_invalid_spec_applies_nothing_and_sets_accepted_false_invalid() {
    let hrl = hrl("{selector: {matchLabels: {app: web}}, rateLimit: {tokensPerSecond: 0}}");
    let invalid = [
        ("Accepted", "False", "Invalid"),
        ("Programmed", "False", "Invalid"),
        ("Ready", "False", "Invalid"),
    ];
    let script = vec![
        apply_status(
            invalid,
            Some("spec.rateLimit.tokensPerSecond: must be at least 1"),
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
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404});
    let missing = [
        ("Accepted", "True", "Accepted"),
        ("Programmed", "False", "IstioNotInstalled"),
        ("Ready", "False", "IstioNotInstalled"),
    ];
    let script = vec![
        apply_wp(wp_json(&desired(&hrl)), StatusCode::NOT_FOUND, not_found),
        apply_status(missing, None),
        event("Warning", "IstioNotInstalled"),
    ];
    let action = run_sharing(hrl.clone(), None, script, failures.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));

    // The retry finds Istio still missing: same status (no status patch, no event), longer wait.
    let seen = with_status(hrl.clone(), &Outcome::IstioNotInstalled);
    let not_found_again = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404});
    let script = vec![apply_wp(
        wp_json(&desired(&hrl)),
        StatusCode::NOT_FOUND,
        not_found_again,
    )];
    let action = run_sharing(seen, None, script, failures.clone())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));

    // The wait is bounded however long Istio stays missing.
    failures
        .lock()
        .expect("lock")
        .insert(("default".into(), "web".into()), 40);
    let boom = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "gone", "reason": "NotFound", "code": 404});
    let script = vec![apply_wp(
        wp_json(&desired(&hrl)),
        StatusCode::NOT_FOUND,
        boom,
    )];
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
    let boom = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd timeout", "reason": "InternalError", "code": 500});
    let failed = [
        ("Accepted", "True", "Accepted"),
        ("Programmed", "False", "ApplyFailed"),
        ("Ready", "False", "ApplyFailed"),
    ];
    let script = vec![
        apply_wp(
            wp_json(&desired(&hrl)),
            StatusCode::INTERNAL_SERVER_ERROR,
            boom,
        ),
        apply_status(failed, None),
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
    let script = vec![
        apply_wp_unforced(body.clone(), StatusCode::CREATED, body),
        apply_status(READY, None),
        event("Normal", "WasmPluginApplied"),
    ];
    let action = run_with(hrl, None, Cache::Complete, script, Failures::default())
        .await
        .expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn with_a_complete_cache_our_drifted_wasm_plugin_is_still_forced_back() {
    let hrl = already_ready(valid());
    let want = desired(&hrl);
    let mut drifted = want.clone();
    drifted.spec.fail_strategy = Some("FAIL_OPEN".into());
    let body = wp_json(&want);
    let script = vec![
        apply_wp(body.clone(), StatusCode::OK, body),
        event("Normal", "WasmPluginApplied"),
    ];
    let action = run_with(
        hrl,
        Some(drifted),
        Cache::Complete,
        script,
        Failures::default(),
    )
    .await
    .expect("reconciled");
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn someone_elses_wasm_plugin_of_the_same_name_is_left_alone_and_reported_as_a_conflict() {
    let hrl = valid();
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "Apply failed with 1 conflict: conflict with \"kubectl-create\": .spec.url", "reason": "Conflict", "code": 409});
    let conflicted = [
        ("Accepted", "True", "Accepted"),
        ("Programmed", "False", "Conflict"),
        ("Ready", "False", "Conflict"),
    ];
    let script = vec![
        apply_wp_unforced(wp_json(&desired(&hrl)), StatusCode::CONFLICT, conflict),
        apply_status(conflicted, None),
        event("Warning", "Conflict"),
    ];
    let action = run_with(hrl, None, Cache::Complete, script, Failures::default())
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
