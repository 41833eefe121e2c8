//! Leader election against a mocked API server: the exact Lease calls (get, create, update),
//! which are what `rbac::API_CALLS` grants.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use std::time::Duration;

use hrl_operator::leader::LeaderElector;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};

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
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
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
        let answer = serde_json::to_vec(&answer).expect("answer");
        respond.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(answer))
                .expect("response"),
        );
    }
    (handle, bodies)
}

async fn attempt(script: Vec<(Method, &'static str, StatusCode, Value)>) -> (bool, Vec<Value>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "hrl-system");
    let mut elector = LeaderElector::new(
        Api::namespaced(client, "hrl-system"),
        "hrl-operator".into(),
        "me".into(),
    );
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
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "conflict"});
    let (leading, _) = attempt(vec![
        (Method::GET, LEASE, StatusCode::OK, lease("", "7")),
        (Method::PUT, LEASE, StatusCode::CONFLICT, conflict),
    ])
    .await;
    assert!(!leading);
}
