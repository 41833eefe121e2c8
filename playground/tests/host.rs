//! The host itself, exercised with the do-nothing module (no real filter needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use hrl_playground::{Error, Host, Module, Plugin, Request, Response, Started};

fn noop_host(workers: usize) -> Host {
    Host::builder(common::noop())
        .plugin(Plugin::new("default.noop", b"{}".to_vec()))
        .workers(workers)
        .build()
        .expect("noop host starts")
}

#[test]
fn noop_module_passes_requests_and_responses_through_unchanged() {
    let mut host = noop_host(1);
    let request = Request::get("/headers").with_header("X-Api-Key", "k1");
    let response = host
        .worker(0)
        .http_stream_with(request, |req| {
            assert_eq!(req.header(":path"), Some("/headers"));
            assert_eq!(req.header("x-api-key"), Some("k1"), "names are lowercased");
            Response::new(201)
                .with_header("Server", "upstream")
                .with_body("hello")
        })
        .expect("stream");
    assert_eq!(response.status, 201);
    assert!(!response.local);
    assert_eq!(
        response.headers,
        vec![("server".to_string(), "upstream".to_string())]
    );
    assert_eq!(response.body_text(), "hello");
}

#[test]
fn request_bodies_reach_the_upstream_through_the_body_callbacks() {
    let mut host = noop_host(1);
    let request = Request::new("POST", "/post").with_body("payload");
    let mut seen = Vec::new();
    let response = host
        .worker(0)
        .http_stream_with(request, |req| {
            seen = req.body.clone();
            Response::new(200)
        })
        .expect("stream");
    assert_eq!(response.status, 200);
    assert_eq!(seen, b"payload");
}

#[test]
fn every_worker_starts_every_plugin_and_serves_streams() {
    let mut host = Host::builder(common::noop())
        .plugin(Plugin::new("a", b"{}".to_vec()))
        .plugin(Plugin::new("b", Vec::new()))
        .workers(3)
        .build()
        .expect("host");
    assert_eq!(host.worker_count(), 3);
    for i in 0..9 {
        let response = host
            .http_stream(Request::get(&format!("/{i}")))
            .expect("stream");
        assert_eq!(response.status, 200);
    }
    assert_eq!(host.shared_data_len(), 0);
    assert!(
        host.logs().is_empty(),
        "noop logs nothing at info: {:?}",
        host.logs()
    );
}

#[test]
fn split_streams_forward_the_request_and_finish_with_the_upstream_response() {
    let mut host = noop_host(1);
    let worker = host.worker(0);
    let Started::Forward { stream, request } =
        worker.start_stream(Request::get("/a")).expect("start")
    else {
        panic!("noop never answers itself");
    };
    assert_eq!(request.header(":path"), Some("/a"));
    let response = worker
        .finish_stream(stream, Response::new(204))
        .expect("finish");
    assert_eq!(response.status, 204);
    assert!(matches!(
        worker.finish_stream(stream, Response::new(200)),
        Err(Error::UnknownStream(_))
    ));
}

#[test]
fn metered_modules_report_the_same_fuel_for_the_same_stream() {
    let mut host = Host::builder(common::noop_metered())
        .plugin(Plugin::new("default.noop", b"{}".to_vec()))
        .build()
        .expect("host");
    let worker = host.worker(0);
    let mut used = Vec::new();
    for _ in 0..3 {
        let before = worker.fuel_consumed().expect("metered");
        worker.http_stream(Request::get("/")).expect("stream");
        used.push(worker.fuel_consumed().expect("metered") - before);
    }
    assert!(used[0] > 0);
    assert_eq!(
        used[1], used[2],
        "a stream costs the same fuel every time: {used:?}"
    );
    assert!(!common::noop().is_metered());
}

/// A tiny hand-assembled module: memory, the ABI marker, an allocator, and an `_initialize`
/// that calls the import `env::proxy_done`, which the host does not implement.
fn module_calling_proxy_done(with_abi_marker: bool) -> Vec<u8> {
    fn name(s: &str) -> Vec<u8> {
        let mut out = vec![s.len() as u8];
        out.extend_from_slice(s.as_bytes());
        out
    }
    fn section(id: u8, content: Vec<u8>) -> Vec<u8> {
        let mut out = vec![id, content.len() as u8];
        out.extend(content);
        out
    }
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    // types: ()->i32, ()->(), (i32)->i32
    wasm.extend(section(
        1,
        vec![3, 0x60, 0, 1, 0x7f, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f],
    ));
    let mut import = vec![1];
    import.extend(name("env"));
    import.extend(name("proxy_done"));
    import.extend([0, 0]);
    wasm.extend(section(2, import));
    wasm.extend(section(3, vec![3, 1, 1, 2]));
    wasm.extend(section(5, vec![1, 0, 1]));
    let mut exports = vec![0u8];
    let mut add = |n: &str, kind: u8, index: u8| {
        exports[0] += 1;
        exports.extend(name(n));
        exports.extend([kind, index]);
    };
    add("memory", 2, 0);
    add("_initialize", 0, 1);
    if with_abi_marker {
        add("proxy_abi_version_0_2_1", 0, 2);
    }
    add("proxy_on_memory_allocate", 0, 3);
    wasm.extend(section(7, exports));
    let code = vec![
        3, 5, 0, 0x10, 0, 0x1a, 0x0b, 2, 0, 0x0b, 4, 0, 0x41, 0, 0x0b,
    ];
    wasm.extend(section(10, code));
    wasm
}

#[test]
fn calling_an_import_the_host_does_not_implement_fails_naming_it() {
    let module = Module::compile(&module_calling_proxy_done(true)).expect("valid module");
    let error = Host::builder(&module)
        .plugin(Plugin::new("p", Vec::new()))
        .build()
        .unwrap_err();
    match &error {
        Error::UnimplementedImport {
            module,
            name,
            callback,
        } => {
            assert_eq!(
                (module.as_str(), name.as_str(), *callback),
                ("env", "proxy_done", "_initialize")
            );
        }
        other => panic!("expected UnimplementedImport, got {other:?}"),
    }
    assert!(error.to_string().contains("env::proxy_done"), "{error}");
}

#[test]
fn a_module_without_the_proxy_wasm_abi_marker_is_refused() {
    let error = Module::compile(&module_calling_proxy_done(false)).unwrap_err();
    assert!(matches!(error, Error::UnsupportedAbi), "{error:?}");
    assert!(matches!(
        Module::compile(b"not wasm"),
        Err(Error::Compile(_))
    ));
}
