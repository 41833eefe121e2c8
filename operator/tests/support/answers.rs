//! What the tests' fake API servers answer, as the API server writes it: a JSON body, and the
//! `Status` object of a failed request. Part of `support`, and included on its own by the
//! tests that script their own server (leader.rs, watch_failures.rs).

#![allow(dead_code)] // each test binary uses a part

use http::{Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// An answer of `status` with `body` as its JSON.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response")
}

/// The `Status` the API server answers a request that failed with `code` for `reason`.
pub fn failure(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
        "reason": reason, "code": code.as_u16()})
}
