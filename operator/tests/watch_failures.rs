//! The controllers against a fake API server whose HeaderRateLimit list first fails (403), then
//! returns one object this version cannot decode next to a good one: the failure is counted and
//! makes `/readyz` fail, the bad object is reported and skipped, the good one is reconciled.
//! Pods are listed only once a `scope: Workload` policy exists.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

#[path = "support/answers.rs"]
mod answers;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use answers::{failure, json_response};
use hrl_operator::metrics::Metrics;
use hrl_operator::plan::Settings;
use hrl_operator::run::{RunConfig, run};
use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn hrl(name: &str, rate_limit: Value) -> Value {
    json!({
        "apiVersion": "hrl.dev/v1alpha1",
        "kind": "HeaderRateLimit",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}"), "generation": 1, "resourceVersion": "5"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "rateLimit": rate_limit},
    })
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

/// Serves the fake API server until the test ends; records `METHOD path` of every request.
/// The good object has `rate_limit`.
async fn serve(mut handle: Handle, seen: Arc<Mutex<Vec<String>>>, rate_limit: Value) {
    let mut hrl_lists = 0;
    // Watches are long polls: holding the responder keeps them open.
    let mut open_watches = Vec::new();
    while let Some((request, respond)) = handle.next_request().await {
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let method = request.method().clone();
        seen.lock().expect("lock").push(format!("{method} {path}"));
        if query.contains("watch=true") {
            open_watches.push(respond);
            continue;
        }
        let body = request.into_body().collect_bytes().await.expect("body");
        let answer = match (&method, path.as_str()) {
            (&Method::GET, "/apis/extensions.istio.io/v1alpha1/wasmplugins") => json_response(
                StatusCode::OK,
                &list("WasmPluginList", "extensions.istio.io/v1alpha1", vec![]),
            ),
            // The pod cache of scope: Workload.
            (&Method::GET, "/api/v1/pods") => {
                json_response(StatusCode::OK, &list("PodList", "v1", vec![]))
            }
            (&Method::GET, "/apis/hrl.dev/v1alpha1/headerratelimits") => {
                hrl_lists += 1;
                if hrl_lists == 1 {
                    let forbidden = "headerratelimits.hrl.dev is forbidden";
                    json_response(
                        StatusCode::FORBIDDEN,
                        &failure(StatusCode::FORBIDDEN, "Forbidden", forbidden),
                    )
                } else {
                    let bad = hrl("old", json!({"tokensPerSecond": "ten"}));
                    let good = hrl("web", rate_limit.clone());
                    json_response(
                        StatusCode::OK,
                        &list("HeaderRateLimitList", "hrl.dev/v1alpha1", vec![bad, good]),
                    )
                }
            }
            // Applies and status patches: echo the object back.
            (&Method::PATCH, _) => {
                let value: Value = serde_json::from_slice(&body).expect("patch body");
                json_response(StatusCode::OK, &value)
            }
            (&Method::POST, p) if p.ends_with("/events") => {
                let value: Value = serde_json::from_slice(&body).expect("event body");
                json_response(StatusCode::CREATED, &value)
            }
            _ => panic!("unexpected request {method} {path}?{query}"),
        };
        respond.send_response(answer);
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Runs the controllers until the good object's WasmPlugin is applied; returns the requests.
async fn run_until_applied(rate_limit: Value) -> Vec<String> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(handle, seen.clone(), rate_limit));
    let metrics = Arc::new(Metrics::default());
    metrics.ready.store(true, Ordering::Relaxed);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let config = RunConfig {
        settings: Settings::default(),
        namespaces: vec![],
        instance: "test".into(),
    };
    let controllers = tokio::spawn(run(client, config, metrics.clone(), async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    let text = || metrics.encode();
    eventually("the 403 is counted", || {
        text().contains(r#"hrl_operator_watch_errors_total{resource="headerratelimits"} 1"#)
    })
    .await;
    assert!(
        !metrics.is_ready(),
        "a watch without its list is not ready:\n{}",
        text()
    );

    eventually("the retried list syncs", || metrics.is_ready()).await;
    eventually("the good object's WasmPlugin is applied", || {
        seen.lock().expect("lock").iter().any(|r| {
            r == "PATCH /apis/extensions.istio.io/v1alpha1/namespaces/shop/wasmplugins/hrl-web"
        })
    })
    .await;
    assert!(
        text().contains("hrl_operator_undecodable_objects_total 1"),
        "{}",
        text()
    );
    let requests = seen.lock().expect("lock").clone();
    assert!(
        !requests
            .iter()
            .any(|r| r.contains("hrl-old") || r.contains("/old")),
        "nothing is written for the object that does not decode: {requests:#?}"
    );

    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(10), controllers)
        .await
        .expect("controllers stop on shutdown")
        .expect("no panic");
    server.abort();
    requests
}

#[tokio::test]
async fn a_failing_list_is_counted_and_unready_then_a_bad_object_is_skipped_and_the_good_one_reconciled()
 {
    let requests = run_until_applied(json!({"tokensPerSecond": 5})).await;
    assert!(
        !requests.iter().any(|r| r.starts_with("GET /api/v1/pods")),
        "no Workload policy, no pod list: {requests:#?}"
    );
}

#[tokio::test]
async fn the_first_workload_policy_starts_the_pod_watch() {
    let requests = run_until_applied(json!({"tokensPerSecond": 5, "scope": "Workload"})).await;
    let pods = requests.iter().position(|r| r == "GET /api/v1/pods");
    let applied = requests
        .iter()
        .position(|r| r.ends_with("/wasmplugins/hrl-web") && r.starts_with("PATCH"));
    assert!(
        matches!((pods, applied), (Some(p), Some(a)) if p < a),
        "pods listed, then the WasmPlugin applied: {requests:#?}"
    );
}
