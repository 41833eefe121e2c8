//! Leader election against a mocked API server: the exact Lease calls (get, create, update),
//! which are what `rbac::API_CALLS` grants.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

#[path = "support/answers.rs"]
mod answers;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use answers::{failure, json_response};
use hrl_operator::leader::{self, LeaderElector, RENEW_DEADLINE};
use hrl_operator::metrics::Metrics;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tower_test::mock::Mock;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/hrl-system/leases/hrl-operator";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/hrl-system/leases";

fn lease(holder: &str, version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "hrl-operator", "namespace": "hrl-system", "resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    })
}

fn not_found() -> Value {
    failure(StatusCode::NOT_FOUND, "NotFound", "not found")
}

fn conflict() -> Value {
    failure(StatusCode::CONFLICT, "Conflict", "conflict")
}

/// Answers each expected (method, path) with (status, body); returns the request bodies.
async fn serve(
    mut handle: Handle,
    script: Vec<(Method, &'static str, StatusCode, Value)>,
) -> (Handle, Vec<Value>) {
    let mut bodies = Vec::new();
    for (i, (method, path, status, answer)) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let Ok(Some((request, respond))) = next else {
            panic!("request {i} ({method} {path}) was not made")
        };
        assert_eq!(
            (request.method(), request.uri().path()),
            (&method, path),
            "request {i}"
        );
        let bytes = request.into_body().collect_bytes().await.expect("body");
        bodies.push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        respond.send_response(json_response(status, &answer));
    }
    (handle, bodies)
}

/// An elector of the Lease `hrl-system/hrl-operator` as `identity`, over `service`.
fn elector(service: Mock<Request<Body>, Response<Body>>, identity: String) -> LeaderElector {
    let client = Client::new(service, "hrl-system");
    LeaderElector::new(
        Api::namespaced(client, "hrl-system"),
        "hrl-operator".into(),
        identity,
    )
}

async fn attempt(script: Vec<(Method, &'static str, StatusCode, Value)>) -> (bool, Vec<Value>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut elector = elector(service, "me".into());
    let (result, (mut handle, bodies)) =
        tokio::join!(elector.try_acquire_or_renew(), serve(handle, script));
    drop(elector);
    let extra = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    assert!(matches!(extra, Ok(None)), "an unexpected request was made");
    (result.expect("no API error"), bodies)
}

#[tokio::test]
async fn a_missing_lease_is_created_with_us_as_holder() {
    let (leading, bodies) = attempt(vec![
        (Method::GET, LEASE, StatusCode::NOT_FOUND, not_found()),
        (Method::POST, LEASES, StatusCode::CREATED, lease("me", "1")),
    ])
    .await;
    assert!(leading);
    assert_eq!(bodies[1]["spec"]["holderIdentity"], "me");
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_only_read() {
    let (leading, _) = attempt(vec![(
        Method::GET,
        LEASE,
        StatusCode::OK,
        lease("other", "7"),
    )])
    .await;
    assert!(!leading);
}

#[tokio::test]
async fn our_lease_is_renewed_with_an_update_carrying_the_resource_version() {
    let (leading, bodies) = attempt(vec![
        (Method::GET, LEASE, StatusCode::OK, lease("me", "7")),
        (Method::PUT, LEASE, StatusCode::OK, lease("me", "8")),
    ])
    .await;
    assert!(leading);
    assert_eq!(bodies[1]["metadata"]["resourceVersion"], "7");
    assert!(bodies[1]["spec"]["renewTime"].is_string());
}

#[tokio::test]
async fn a_conflicting_update_means_someone_else_won() {
    let (leading, _) = attempt(vec![
        (Method::GET, LEASE, StatusCode::OK, lease("", "7")),
        (Method::PUT, LEASE, StatusCode::CONFLICT, conflict()),
    ])
    .await;
    assert!(!leading);
}

/// One Lease kept in memory, with the API server's optimistic concurrency: create fails when it
/// exists, an update whose resourceVersion is not the current one fails with 409.
#[derive(Default)]
struct LeaseStore {
    lease: Option<Value>,
    version: u64,
}

/// Serves get/create/update of the Lease from `store` until the client is dropped.
async fn lease_server(mut handle: Handle, store: Arc<Mutex<LeaseStore>>) {
    while let Some((request, respond)) = handle.next_request().await {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut store = store.lock().expect("lock");
        let response = match (method, path.as_str()) {
            (Method::GET, LEASE) => match &store.lease {
                Some(lease) => json_response(StatusCode::OK, lease),
                None => json_response(StatusCode::NOT_FOUND, &not_found()),
            },
            (Method::POST, LEASES) if store.lease.is_some() => {
                json_response(StatusCode::CONFLICT, &conflict())
            }
            (Method::PUT, LEASE)
                if body["metadata"]["resourceVersion"].as_str()
                    != Some(store.version.to_string().as_str()) =>
            {
                json_response(StatusCode::CONFLICT, &conflict())
            }
            (Method::POST, LEASES) | (Method::PUT, LEASE) => {
                store.version += 1;
                let mut lease = body;
                lease["metadata"]["resourceVersion"] = json!(store.version.to_string());
                store.lease = Some(lease.clone());
                json_response(StatusCode::OK, &lease)
            }
            (method, path) => panic!("unexpected {method} {path}"),
        };
        respond.send_response(response);
    }
}

fn elector_on(store: &Arc<Mutex<LeaseStore>>, identity: String) -> LeaderElector {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(lease_server(handle, store.clone()));
    elector(service, identity)
}

#[tokio::test]
async fn two_processes_with_the_same_host_name_never_both_lead() {
    let store = Arc::new(Mutex::new(LeaseStore::default()));
    let mut a = elector_on(&store, leader::identity(None, Some("node-1")));
    let mut b = elector_on(&store, leader::identity(None, Some("node-1")));
    for round in 0..5 {
        let first = a.try_acquire_or_renew().await.expect("a answered");
        let second = b.try_acquire_or_renew().await.expect("b answered");
        assert!(
            first ^ second,
            "round {round}: exactly one leads (a: {first}, b: {second})"
        );
    }
    let holder = store.lock().expect("lock").lease.clone().expect("lease");
    assert_eq!(holder["spec"]["holderIdentity"], a.identity());
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_never_answers_ends_the_term_by_the_renew_deadline() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    // The Lease is created, then the API server takes every request and never answers.
    tokio::spawn(async move {
        let mut unanswered = Vec::new();
        let mut created = false;
        while let Some((request, respond)) = handle.next_request().await {
            match (request.method(), created) {
                (&Method::GET, false) => {
                    respond.send_response(json_response(StatusCode::NOT_FOUND, &not_found()))
                }
                (&Method::POST, false) => {
                    created = true;
                    respond.send_response(json_response(StatusCode::CREATED, &lease("me", "1")));
                }
                _ => unanswered.push(respond),
            }
        }
    });
    let mut elector = elector(service, "me".into());
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ended = Arc::new(Mutex::new(None));
    let term = {
        let (inner, ended) = (metrics.clone(), ended.clone());
        leader::lead(&mut elector, &metrics, stop_rx, move |shutdown| {
            let (metrics, ended, stop_tx) = (inner.clone(), ended.clone(), stop_tx.clone());
            async move {
                let elected = Instant::now();
                assert_eq!(metrics.leader.get(), 1, "leader while the term runs");
                shutdown.await;
                *ended.lock().expect("lock") = Some((elected.elapsed(), metrics.leader.get()));
                let _ = stop_tx.send(true);
            }
        })
    };
    // Virtual time: without a bound on the renewal this never returns.
    tokio::time::timeout(Duration::from_secs(120), term)
        .await
        .expect("the term ended although the API server never answered");
    let (held, gauge) = ended
        .lock()
        .expect("lock")
        .expect("the term started and ended");
    assert!(held <= RENEW_DEADLINE, "held for {held:?}");
    assert_eq!(
        gauge, 0,
        "the leader gauge is 0 once the controllers are told to stop"
    );
    assert_eq!(metrics.leader.get(), 0);
    assert!(metrics.ready.load(Ordering::Relaxed));
}
