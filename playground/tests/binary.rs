//! The `hrl-playground` binary end to end on loopback, against its built-in echo upstream.
//! Every child process is killed when its guard drops; reads have timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hrl-playground");

fn workspace(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(path)
}

fn filter_path() -> PathBuf {
    common::module_path("HRL_FILTER_WASM", "plugin.wasm", "filter")
}

/// Kills the playground when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the playground on a free port and returns it with its address.
/// Starts the playground on the seed policy and checks how it describes it.
fn start(policy: &str, workers: &str) -> (Running, String) {
    start_describing(
        policy,
        workers,
        &[
            "policy default/httpbin",
            "(1 policy)",
            "rate limit    2/s, burst 2, one bucket for all requests",
            "limit headers RateLimit and RateLimit-Policy on every response",
        ],
    )
}

/// Starts the playground on `policy`; every line of `described` must be in its start-up output.
fn start_describing(policy: &str, workers: &str, described: &[&str]) -> (Running, String) {
    let child = Command::new(BIN)
        .args([
            "--policy",
            workspace(policy).to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--module",
            filter_path().to_str().unwrap(),
            "--workers",
            workers,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hrl-playground");
    let mut running = Running(child);
    let stdout = running.0.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'listening on' line; output so far: {printed:?}"));
        if let Some(address) = line.strip_prefix("hrl-playground: listening on http://") {
            let said = |text: &str| printed.iter().any(|l: &String| l.contains(text));
            for text in described {
                assert!(said(text), "{text:?} not in {printed:?}");
            }
            return (running, address.to_string());
        }
        printed.push(line);
    }
}

/// One HTTP/1.1 request; returns the status, lowercased headers and body.
fn get(address: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: demo.local\r\nX-Api-Key: k1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_playground_serves_the_seed_policy_in_front_of_the_echo_upstream() {
    let (_running, address) = start("examples/seed-equivalent.yaml", "2");
    let responses: Vec<_> = (0..3).map(|_| get(&address, "/headers?x=1")).collect();
    let statuses: Vec<u16> = responses.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 429], "two workers, one bucket");
    for (_, headers, _) in &responses {
        assert_eq!(header(headers, "who-am-i"), ["wasm-extension"]);
        assert_eq!(header(headers, "hally"), ["wang"]);
        assert_eq!(
            header(headers, "ratelimit-policy"),
            [r#""httpbin";q=2;w=1"#]
        );
    }
    let (_, headers, body) = &responses[0];
    assert!(body.contains("\"path\": \"/headers?x=1\""), "{body}");
    assert!(body.contains("\"x-api-key\": \"k1\""), "{body}");
    assert_eq!(header(headers, "content-type"), ["application/json"]);
    let (_, headers, body) = &responses[2];
    assert_eq!(header(headers, "retry-after"), ["1"]);
    assert_eq!(header(headers, "powered-by"), ["hrl-filter"]);
    assert_eq!(body, "rate limited, wait and retry.\n");
}

fn fails(args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .output()
        .expect("run hrl-playground");
    assert!(!output.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_policy_file_is_named() {
    let error = fails(&[
        "--policy",
        "/nonexistent/policy.yaml",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        error.contains("cannot read policy file /nonexistent/policy.yaml"),
        "{error}"
    );
}

#[test]
fn a_grpc_cluster_without_name_and_port_is_refused_naming_the_format() {
    let policy = workspace("examples/seed-equivalent.yaml");
    let error = fails(&[
        "--policy",
        policy.to_str().unwrap(),
        "--grpc-cluster",
        "rls",
    ]);
    assert!(error.contains("\"rls\" is not NAME=HOST:PORT"), "{error}");
}

#[test]
fn a_bad_policy_names_the_field() {
    let path = std::env::temp_dir().join(format!("hrl-bad-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata: {name: bad}\n\
         spec:\n  selector: {matchLabels: {app: x}}\n  rateLimit: {tokensPerSecond: 2, burst: 0}\n",
    )
    .unwrap();
    let error = fails(&[
        "--policy",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let _ = std::fs::remove_file(&path);
    assert!(error.contains("spec.rateLimit.burst"), "{error}");
}

#[test]
fn a_missing_module_names_make_filter() {
    let policy = workspace("examples/seed-equivalent.yaml");
    let error = fails(&[
        "--policy",
        policy.to_str().unwrap(),
        "--module",
        "/nonexistent/plugin.wasm",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(error.contains("make filter"), "{error}");
}

#[test]
fn a_port_in_use_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let policy = workspace("examples/seed-equivalent.yaml");
    let module = filter_path();
    let error = fails(&[
        "--policy",
        policy.to_str().unwrap(),
        "--module",
        module.to_str().unwrap(),
        "--listen",
        &address,
    ]);
    assert!(error.contains("in use"), "{error}");
}

#[test]
fn a_per_minute_policy_is_described_as_people_write_it_and_limits_with_retry_after_12() {
    let (_running, address) = start_describing(
        "examples/per-client-per-minute.yaml",
        "2",
        &[
            "policy default/per-client-per-minute",
            "rate limit    5/1m, burst 5, one bucket per client address",
        ],
    );
    let responses: Vec<_> = (0..6).map(|_| get(&address, "/login")).collect();
    let statuses: Vec<u16> = responses.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let (_, headers, _) = &responses[5];
    // One token every 12 s; a few ms have passed since the bucket was full, so 12 or 11.
    let retry = header(headers, "retry-after");
    assert!(retry == ["12"] || retry == ["11"], "{retry:?}");
    assert_eq!(
        header(headers, "ratelimit-policy"),
        [r#""per-client-per-minute";q=5;w=60"#]
    );
}
