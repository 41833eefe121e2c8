//! Wiring: one kube-runtime Controller per watched scope (all namespaces, or each listed one),
//! each with a reflector of the WasmPlugins it owns.
//!
//! The WasmPlugin watch is our own stream, not `Controller::owns`: when Istio's CRD is missing,
//! `owns` would feed 404 errors into the controller's shared trigger backoff and slow down the
//! HeaderRateLimit watch as well. Ours retries with its own backoff, swallows the errors, and
//! when it recovers (the CRD appeared) it triggers one reconciliation of every
//! HeaderRateLimit, so the operator converges without a restart (objects marked
//! `IstioNotInstalled` are also requeued with bounded per-object backoff by `reconcile`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Config, Controller, WatchStreamExt, reflector};
use kube::{Api, Client};

use crate::controller::{Context, error_policy, reconcile};
use crate::crd::HeaderRateLimit;
use crate::metrics::Metrics;
use crate::plan::{MANAGED_BY_SELECTOR, Settings};
use crate::wasm_plugin::WasmPlugin;

/// Reconciliations running at once per controller (bounded for 10,000 objects).
pub const CONCURRENCY: u16 = 16;

/// What the controllers need.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Filter URL and digest.
    pub settings: Settings,
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// Reporting instance for events (the pod name).
    pub instance: String,
}

/// Runs the controllers until `shutdown` resolves (then finishes in-flight reconciliations).
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = shutdown.shared();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "hrl-operator".into(),
            instance: Some(config.instance.clone()),
        },
    );
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = scopes.into_iter().map(|scope| {
        let ctx = Context {
            client: client.clone(),
            settings: config.settings.clone(),
            wasm_plugins: reflector::store().0,
            recorder: recorder.clone(),
            metrics: metrics.clone(),
            failures: Arc::new(Mutex::new(HashMap::new())),
            store_waited: Arc::new(AtomicBool::new(false)),
        };
        controller(ctx, scope, shutdown.clone())
    });
    futures::future::join_all(controllers).await;
}

async fn controller(
    mut ctx: Context,
    scope: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (hrls, wasm_plugins): (Api<HeaderRateLimit>, Api<WasmPlugin>) = match &scope {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let (store, writer) = reflector::store();
    ctx.wasm_plugins = store;
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut failing = false;
    let owned = watcher(wasm_plugins)
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| {
            let item = match event {
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "cannot watch WasmPlugins (is Istio installed?); retrying with backoff");
                    }
                    failing = true;
                    None
                }
                Ok(Event::InitDone) if failing => {
                    failing = false;
                    tracing::info!("WasmPlugin watch recovered; reconciling every HeaderRateLimit");
                    // A full channel already holds a pending trigger: nothing is lost.
                    let _ = trigger_tx.try_send(());
                    Some(Ok(Event::InitDone))
                }
                Ok(event) => Some(Ok(event)),
            };
            futures::future::ready(item)
        })
        .touched_objects();
    let recovered = futures::stream::unfold(trigger_rx, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    });
    tracing::info!(
        namespace = scope.as_deref().unwrap_or("(all)"),
        "starting controller"
    );
    // any_semantic: the initial list is served from the API server's watch cache (cheap at scale).
    Controller::new(hrls, watcher::Config::default().any_semantic())
        .owns_stream(owned)
        .reconcile_all_on(recovered)
        .with_config(Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
            futures::future::ready(())
        })
        .await;
}

fn watcher(
    api: Api<WasmPlugin>,
) -> impl futures::Stream<Item = watcher::Result<Event<WasmPlugin>>> {
    watcher::watcher(
        api,
        watcher::Config::default()
            .labels(MANAGED_BY_SELECTOR)
            .any_semantic(),
    )
}
