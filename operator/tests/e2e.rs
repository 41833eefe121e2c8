//! Cluster tests against a real API server with Istio's WasmPlugin CRD installed (for example
//! kind + `istioctl install --set profile=minimal`). They are `#[ignore]`d, so a plain
//! `cargo test` reports them as ignored, never as passed, and they are not counted as coverage.
//! Run them with `--ignored` and `HRL_E2E_KUBECONFIG` naming a kubeconfig; with `--ignored` but
//! without the variable they fail. They install the HeaderRateLimit CRD, run the controller
//! in-process (no leader election) and work in a namespace `hrl-e2e-<pid>` that they delete at
//! the end.
//!
//! ```sh
//! kind create cluster && istioctl install -y --set profile=minimal
//! HRL_E2E_KUBECONFIG=$HOME/.kube/config cargo test -p hrl-operator --test e2e -- --ignored --nocapture
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use std::sync::Arc;
use std::time::Duration;

use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::metrics::Metrics;
use hrl_operator::plan::Settings;
use hrl_operator::render::parse_documents;
use hrl_operator::run::{RunConfig, run};
use hrl_operator::wasm_plugin::WasmPlugin;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, CustomResourceExt};

async fn client() -> Client {
    let Ok(path) = std::env::var("HRL_E2E_KUBECONFIG") else {
        panic!(
            "HRL_E2E_KUBECONFIG is not set: the cluster tests need a kubeconfig of a cluster with Istio's WasmPlugin CRD"
        )
    };
    let kubeconfig = Kubeconfig::read_from(&path).expect("kubeconfig readable");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig valid");
    Client::try_from(config).expect("client")
}

/// Polls `check` every 500 ms for up to 60 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..120 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
#[ignore = "needs a cluster: set HRL_E2E_KUBECONFIG and run cargo test -p hrl-operator --test e2e -- --ignored"]
async fn a_header_rate_limit_becomes_ready_and_its_wasm_plugin_is_repaired_and_collected() {
    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply("hrl-e2e").force();
    crds.patch(
        "headerratelimits.hrl.dev",
        &apply,
        &Patch::Apply(HeaderRateLimit::crd()),
    )
    .await
    .expect("CRD applied");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let ns = format!("hrl-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");

    let config = RunConfig {
        settings: Settings::default(),
        namespaces: vec![ns.clone()],
        instance: "e2e".into(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run(
        client.clone(),
        config,
        Arc::new(Metrics::default()),
        async {
            let _ = stop_rx.await;
        },
    ));

    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/seed-equivalent.yaml"
    ))
    .expect("example");
    let mut hrl = parse_documents(&yaml).expect("parses").remove(0);
    hrl.metadata.namespace = Some(ns.clone());
    let hrls: Api<HeaderRateLimit> = Api::namespaced(client.clone(), &ns);
    hrls.create(&PostParams::default(), &hrl)
        .await
        .expect("HeaderRateLimit created");

    eventually("Ready=True", || async {
        let Ok(h) = hrls.get("httpbin").await else {
            return false;
        };
        h.status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await;

    let wasm_plugins: Api<WasmPlugin> = Api::namespaced(client.clone(), &ns);
    let original = wasm_plugins
        .get("hrl-httpbin")
        .await
        .expect("WasmPlugin exists");
    let edit = serde_json::json!({"spec": {"failStrategy": "FAIL_OPEN"}});
    wasm_plugins
        .patch("hrl-httpbin", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("edited by hand");
    eventually("the hand edit is repaired", || async {
        wasm_plugins
            .get("hrl-httpbin")
            .await
            .is_ok_and(|w| w.spec == original.spec)
    })
    .await;

    wasm_plugins
        .delete("hrl-httpbin", &DeleteParams::default())
        .await
        .expect("deleted by hand");
    eventually("the deleted WasmPlugin is recreated", || async {
        wasm_plugins
            .get_opt("hrl-httpbin")
            .await
            .is_ok_and(|w| w.is_some())
    })
    .await;

    hrls.delete("httpbin", &DeleteParams::default())
        .await
        .expect("HeaderRateLimit deleted");
    eventually("the WasmPlugin is garbage collected", || async {
        wasm_plugins
            .get_opt("hrl-httpbin")
            .await
            .is_ok_and(|w| w.is_none())
    })
    .await;

    let _ = stop_tx.send(());
    let _ = controller.await;
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}
