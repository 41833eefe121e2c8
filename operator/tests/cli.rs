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

#[test]
fn a_bad_rate_limit_service_stops_the_operator_before_it_starts_and_names_the_flag() {
    for (service, timeout, needle) in [
        ("ratelimit:8081", "100ms", "fully qualified name"),
        (
            "ratelimit.hrl-system.svc.cluster.local:8081",
            "0.1",
            "--rls-timeout",
        ),
    ] {
        let out = operator(&[
            "run",
            "--metrics-addr",
            "127.0.0.1:0",
            "--allow-unpinned-filter=true",
            "--rls-service",
            service,
            "--rls-timeout",
            timeout,
        ])
        .output()
        .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(needle), "{service} {timeout}: {stderr}");
    }
}

#[test]
fn render_writes_a_cluster_policy_with_the_given_service_and_a_workload_share_at_the_given_count() {
    let dir = std::env::temp_dir().join(format!("hrl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("policies.yaml");
    std::fs::write(
        &file,
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata: {name: c}\n\
         spec: {selector: {matchLabels: {app: a}}, rateLimit: {tokens: 60, per: 1m, scope: Cluster}}\n\
         ---\napiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata: {name: w}\n\
         spec: {selector: {matchLabels: {app: a}}, rateLimit: {tokensPerSecond: 100, scope: Workload}}\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    let out = operator(&[
        "render",
        "-f",
        path,
        "--rls-service",
        "ratelimit.hrl-system.svc.cluster.local:8081",
        "--replicas",
        "4",
    ])
    .output()
    .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("cluster: outbound|8081||ratelimit.hrl-system.svc.cluster.local"),
        "{stdout}"
    );
    assert!(stdout.contains("tokensPerSecond: 25"), "{stdout}");
    let out = operator(&["render", "-f", path]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("spec.rateLimit.scope") && stderr.contains("--rls-service"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
