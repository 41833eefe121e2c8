//! The `hrl-operator` binary's own refusals, run as a user would.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use std::process::Command;

fn operator(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hrl-operator"));
    command
        .args(args)
        .env_remove("HRL_FILTER_SHA256")
        .env_remove("HRL_ALLOW_UNPINNED_FILTER")
        // Never reach a cluster from a test, whatever the machine has configured.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST");
    command
}

#[test]
fn run_refuses_an_unpinned_filter_and_says_what_to_set() {
    let out = operator(&["run", "--metrics-addr", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "must not start unpinned");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--filter-sha256")
            && stderr.contains("filter.sha256")
            && stderr.contains("--allow-unpinned-filter=true"),
        "{stderr}"
    );
}

#[test]
fn allowing_an_unpinned_filter_gets_past_the_check() {
    // With the opt-out it goes on to build a Kubernetes client, which fails here (no cluster):
    // the error is then about the client, not about pinning.
    let out = operator(&[
        "run",
        "--metrics-addr",
        "127.0.0.1:0",
        "--allow-unpinned-filter=true",
    ])
    .output()
    .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("is not set: pin the filter module"),
        "{stderr}"
    );
    assert!(
        !out.status.success(),
        "no cluster here, so it stops at the client"
    );
}
