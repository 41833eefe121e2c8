//! `proxy_grpc_call` against real HTTP/2 gRPC servers on loopback, driven by a small guest
//! written in WebAssembly text that behaves like a Rust SDK filter: it calls from
//! `on_http_request_headers` and pauses; in the callbacks it makes its HTTP context
//! effective, then resumes the request with the answer in a header, or replies with the
//! status it read back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hrl_playground::{Error, Host, Module, Plugin, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Guest behaviour, the first byte of its configuration (then the call timeout in
/// milliseconds, 4 bytes little-endian, then the `grpc_service` bytes).
const CALL_AND_PAUSE: u8 = 0;
const PAUSE_WITHOUT_CALL: u8 = 2;
const CALL_THEN_CANCEL_TWICE: u8 = 3;

/// The guest. Request headers: `proxy_grpc_call(service, "grpc.test.Echo", "Ask",
/// [x-meta: m1], "ping", timeout)`; a failing call is a local reply 500 with
/// `x-call-status`. Receive: request header `x-grpc-answer` = the message, `x-grpc-context` =
/// the context the callback got, then `proxy_continue_stream`. Close: local reply 503, body =
/// the status message, `x-grpc-status` = `proxy_get_status` code, `x-grpc-context`.
const GUEST: &str = r#"
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_cancel" (func $grpc_cancel (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
  (import "env" "proxy_get_status" (func $get_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 0x8000))
  (global $http (mut i32) (i32.const 0))
  (global $cfg (mut i32) (i32.const 0))
  (global $cfg_len (mut i32) (i32.const 0))
  ;; 0x100 pointer out, 0x104 size out, 0x108 token out, 0x10c status code out
  (data (i32.const 0x200) "grpc.test.Echo")
  (data (i32.const 0x220) "Ask")
  (data (i32.const 0x240) "\01\00\00\00\06\00\00\00\02\00\00\00x-meta\00m1\00")
  (data (i32.const 0x260) "ping")
  ;; two pairs, values at 0x323 and 0x334
  (data (i32.const 0x300) "\02\00\00\00\0e\00\00\00\02\00\00\00\0d\00\00\00\02\00\00\00x-grpc-context\0000\00x-grpc-status\0000\00")
  (data (i32.const 0x380) "x-grpc-answer")
  ;; one pair, value at 0x3da
  (data (i32.const 0x3c0) "\01\00\00\00\0d\00\00\00\02\00\00\00x-call-status\0000\00")

  (func $digits (param $at i32) (param $n i32)
    (i32.store8 (local.get $at)
      (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $n) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.add (local.get $at) (i32.const 1))
      (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10)))))

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.ge_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.sub (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1)) (memory.size))))))
    (local.get $ptr))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0x100) (i32.const 0x104)))
    (global.set $cfg (i32.load (i32.const 0x100)))
    (global.set $cfg_len (i32.load (i32.const 0x104)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (local $mode i32) (local $status i32) (local $first i32)
    (global.set $http (local.get $ctx))
    (local.set $mode (i32.load8_u (global.get $cfg)))
    (if (i32.eq (local.get $mode) (i32.const 2)) (then (return (i32.const 1))))
    (local.set $status (call $grpc_call
      (i32.add (global.get $cfg) (i32.const 5)) (i32.sub (global.get $cfg_len) (i32.const 5))
      (i32.const 0x200) (i32.const 14)
      (i32.const 0x220) (i32.const 3)
      (i32.const 0x240) (i32.const 22)
      (i32.const 0x260) (i32.const 4)
      (i32.load (i32.add (global.get $cfg) (i32.const 1)))
      (i32.const 0x108)))
    (if (local.get $status) (then
      (call $digits (i32.const 0x3da) (local.get $status))
      (drop (call $reply (i32.const 500) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 0x3c0) (i32.const 29) (i32.const -1)))
      (return (i32.const 1))))
    (if (i32.eq (local.get $mode) (i32.const 3)) (then
      (local.set $first (call $grpc_cancel (i32.load (i32.const 0x108))))
      (call $digits (i32.const 0x3da) (i32.add (i32.mul (local.get $first) (i32.const 10))
        (call $grpc_cancel (i32.load (i32.const 0x108)))))
      (drop (call $reply (i32.const 299) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 0x3c0) (i32.const 29) (i32.const -1)))))
    (i32.const 1))
  (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
    (call $digits (i32.const 0x390) (local.get $ctx))
    (drop (call $set_effective (global.get $http)))
    ;; an empty buffer leaves the pointers untouched (Envoy too)
    (i32.store (i32.const 0x100) (i32.const 0))
    (i32.store (i32.const 0x104) (i32.const 0))
    (drop (call $get_buffer (i32.const 5) (i32.const 0) (local.get $size) (i32.const 0x100) (i32.const 0x104)))
    (drop (call $add_header (i32.const 0) (i32.const 0x380) (i32.const 13)
      (i32.load (i32.const 0x100)) (i32.load (i32.const 0x104))))
    (drop (call $add_header (i32.const 0) (i32.const 0x314) (i32.const 14) (i32.const 0x390) (i32.const 2)))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_grpc_close") (param $ctx i32) (param $token i32) (param $code i32)
    (call $digits (i32.const 0x323) (local.get $ctx))
    (drop (call $set_effective (global.get $http)))
    (i32.store (i32.const 0x100) (i32.const 0))
    (i32.store (i32.const 0x104) (i32.const 0))
    (drop (call $get_status (i32.const 0x10c) (i32.const 0x100) (i32.const 0x104)))
    (call $digits (i32.const 0x334) (i32.load (i32.const 0x10c)))
    (drop (call $reply (i32.const 503) (i32.const 0) (i32.const 0)
      (i32.load (i32.const 0x100)) (i32.load (i32.const 0x104)) (i32.const 0x300) (i32.const 55) (i32.const -1))))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
"#;

fn guest() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| Module::compile(&wat::parse_str(GUEST).expect("guest WAT")).unwrap())
}

fn host(mode: u8, timeout_ms: u32, service: &[u8], clusters: &[(&str, &str)]) -> Host {
    let mut configuration = vec![mode];
    configuration.extend_from_slice(&timeout_ms.to_le_bytes());
    configuration.extend_from_slice(service);
    let mut builder = Host::builder(guest()).plugin(Plugin::new("grpc-guest", configuration));
    for (name, address) in clusters {
        builder = builder.grpc_cluster(name, address);
    }
    builder.build().unwrap()
}

/// What a test server does with each call.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// `grpc-status: 0` in trailers after one message.
    Message(&'static [u8]),
    /// A trailers-only answer with this status and message.
    Status(u32, &'static str),
    /// No answer for a minute.
    Silence,
}

/// A request the server got.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authority: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A gRPC server on 127.0.0.1 (HTTP/2 without TLS), alive as long as this value.
/// Dropping it closes the listener and every connection.
struct Server {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted so far.
    connections: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn serve(answer: Answer) -> Server {
    serve_at("127.0.0.1:0", answer)
}

fn serve_at(address: &str, answer: Answer) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(address))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::clone(&connections);
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let log = Arc::clone(&log);
            let service = hyper::service::service_fn(move |request| {
                respond(request, answer, Arc::clone(&log))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    Server {
        address,
        seen,
        connections,
        _runtime: runtime,
    }
}

async fn respond(
    request: hyper::Request<Incoming>,
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<hyper::Response<BoxBody<Bytes, Infallible>>, hyper::Error> {
    let (head, body) = request.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    seen.lock().unwrap().push(Seen {
        method: head.method.to_string(),
        path: head.uri.path().to_owned(),
        authority: head
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        headers: head.headers,
        body,
    });
    let response = hyper::Response::builder().header("content-type", "application/grpc");
    let response = match answer {
        Answer::Message(message) => {
            let mut frame = vec![0];
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(message);
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let body =
                Full::new(Bytes::from(frame)).with_trailers(std::future::ready(Some(Ok(trailers))));
            response.body(body.boxed())
        }
        Answer::Status(status, message) => response
            .header("grpc-status", status.to_string())
            .header("grpc-message", message)
            .body(Empty::new().boxed()),
        Answer::Silence => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            response.body(Empty::new().boxed())
        }
    };
    Ok(response.unwrap())
}

/// Runs one stream; the upstream answers 200 and the request it saw is returned too.
fn stream(host: &mut Host) -> (Response, Option<Request>) {
    let mut upstream_saw = None;
    let response = host
        .worker(0)
        .http_stream_with(Request::get("/resource"), |request| {
            upstream_saw = Some(request.clone());
            Response::new(200)
        })
        .unwrap();
    (response, upstream_saw)
}

#[test]
fn a_paused_request_resumes_after_the_module_reads_the_grpc_answer() {
    let server = serve(Answer::Message(b"pong"));
    let mut host = host(CALL_AND_PAUSE, 1500, b"rls", &[("rls", &server.address)]);
    let (response, upstream_saw) = stream(&mut host);
    assert_eq!(
        (response.status, response.local),
        (200, false),
        "{response:?}"
    );
    let request = upstream_saw.expect("the request went upstream after the answer");
    assert_eq!(request.header("x-grpc-answer"), Some("pong"));
    assert_eq!(
        request.header("x-grpc-context"),
        Some("01"),
        "the callback ran on the plugin's root context (id 1), as in Envoy"
    );

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let call = &seen[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/grpc.test.Echo/Ask")
    );
    assert_eq!(
        call.authority, "rls",
        "no authority given: the cluster name"
    );
    assert_eq!(call.headers["content-type"], "application/grpc");
    assert_eq!(call.headers["te"], "trailers");
    assert_eq!(call.headers["grpc-timeout"], "1500m");
    assert_eq!(call.headers["x-meta"], "m1");
    assert_eq!(
        call.body, b"\0\0\0\0\x04ping",
        "one length-prefixed message"
    );
}

#[test]
fn a_serialized_grpc_service_sends_its_authority_to_its_cluster() {
    let server = serve(Answer::Message(b""));
    // GrpcService { envoy_grpc { cluster_name: "rls", authority: "ratelimit.example" } }
    let mut service = vec![0x0a, 24, 0x0a, 3];
    service.extend_from_slice(b"rls");
    service.extend_from_slice(&[0x12, 17]);
    service.extend_from_slice(b"ratelimit.example");
    let mut host = host(CALL_AND_PAUSE, 1500, &service, &[("rls", &server.address)]);
    let (response, upstream_saw) = stream(&mut host);
    assert_eq!(
        (response.status, response.local),
        (200, false),
        "{response:?}"
    );
    let request = upstream_saw.unwrap();
    assert_eq!(
        request.header("x-grpc-answer"),
        Some(""),
        "an empty message"
    );
    assert_eq!(
        server.seen.lock().unwrap()[0].authority,
        "ratelimit.example"
    );
}

#[test]
fn a_grpc_error_reaches_on_grpc_close_with_status_and_message() {
    let server = serve(Answer::Status(8, "slow down"));
    let mut host = host(CALL_AND_PAUSE, 1500, b"rls", &[("rls", &server.address)]);
    let (response, upstream_saw) = stream(&mut host);
    assert!(upstream_saw.is_none(), "the module replied instead");
    assert_eq!((response.status, response.local), (503, true));
    assert_eq!(response.header("x-grpc-status"), Some("08"));
    assert_eq!(response.header("x-grpc-context"), Some("01"));
    assert_eq!(response.body_text(), "slow down");
}

#[test]
fn a_call_past_its_timeout_closes_unavailable_as_envoys_router_answers() {
    let server = serve(Answer::Silence);
    let mut host = host(CALL_AND_PAUSE, 100, b"rls", &[("rls", &server.address)]);
    let (response, _) = stream(&mut host);
    assert_eq!((response.status, response.local), (503, true));
    assert_eq!(response.header("x-grpc-status"), Some("14"));
    assert_eq!(response.body_text(), "upstream request timeout");
}

#[test]
fn calls_share_one_http2_connection_and_a_closed_one_is_replaced() {
    let server = serve(Answer::Message(b"pong"));
    let address = server.address.clone();
    let mut host = host(CALL_AND_PAUSE, 1500, b"rls", &[("rls", &address)]);
    for _ in 0..3 {
        assert_eq!(stream(&mut host).0.status, 200);
    }
    assert_eq!(server.seen.lock().unwrap().len(), 3);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "three calls over one pooled connection, as Envoy's HTTP/2 pool makes them"
    );

    drop(server);
    // Time for the client to read the peer's close. A request that races it is still sent on a
    // new connection when it was not written to the old one; one already written would fail,
    // as it can in Envoy.
    std::thread::sleep(Duration::from_millis(500));
    let server = serve_at(&address, Answer::Message(b"again"));
    let (response, upstream_saw) = stream(&mut host);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(upstream_saw.unwrap().header("x-grpc-answer"), Some("again"));
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_timed_out_call_leaves_its_connection_pooled() {
    let server = serve(Answer::Silence);
    // Long enough for the connect and the handshake on a busy machine.
    let mut host = host(CALL_AND_PAUSE, 500, b"rls", &[("rls", &server.address)]);
    for _ in 0..2 {
        let (response, _) = stream(&mut host);
        assert_eq!(response.header("x-grpc-status"), Some("14"), "{response:?}");
    }
    assert_eq!(server.seen.lock().unwrap().len(), 2);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn a_closed_port_closes_unavailable_with_envoys_reset_message() {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string(); // the listener is dropped: nothing listens there
    let mut host = host(CALL_AND_PAUSE, 1500, b"rls", &[("rls", &address)]);
    let (response, _) = stream(&mut host);
    assert_eq!(response.header("x-grpc-status"), Some("14"), "{response:?}");
    assert!(
        response.body_text().starts_with(
            "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        ),
        "{}",
        response.body_text()
    );
}

#[test]
fn unknown_clusters_fail_the_call_with_envoys_statuses() {
    // A plain name Envoy does not know: ParseFailure (4).
    let mut host1 = host(CALL_AND_PAUSE, 1500, b"nowhere", &[]);
    let (response, _) = stream(&mut host1);
    assert_eq!((response.status, response.local), (500, true));
    assert_eq!(response.header("x-call-status"), Some("04"));
    // A GrpcService naming an unknown cluster: InternalFailure (10).
    let mut host2 = host(
        CALL_AND_PAUSE,
        1500,
        &[0x0a, 5, 0x0a, 3, b'a', b'b', b'c'],
        &[],
    );
    let (response, _) = stream(&mut host2);
    assert_eq!(response.header("x-call-status"), Some("10"), "{response:?}");
}

#[test]
fn cancelling_a_call_succeeds_once_then_the_token_is_not_found() {
    let server = serve(Answer::Message(b"pong"));
    let mut host = host(
        CALL_THEN_CANCEL_TWICE,
        1500,
        b"rls",
        &[("rls", &server.address)],
    );
    let (response, _) = stream(&mut host);
    assert_eq!((response.status, response.local), (299, true));
    assert_eq!(
        response.header("x-call-status"),
        Some("01"),
        "Ok, then NotFound"
    );
}

#[test]
fn a_pause_with_no_call_outstanding_is_an_error() {
    let mut host = host(PAUSE_WITHOUT_CALL, 0, b"", &[]);
    let error = host.worker(0).http_stream(Request::get("/")).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Paused {
                callback: "proxy_on_request_headers"
            }
        ),
        "{error}"
    );
}
