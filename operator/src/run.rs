//! Wiring: one kube-runtime Controller per watched scope (all namespaces, or each listed one),
//! each with a reflector of the WasmPlugins it owns.
//!
//! The WasmPlugin watch is our own stream, not `Controller::owns`: when Istio's CRD is missing,
//! `owns` would feed 404 errors into the controller's shared trigger backoff and slow down the
//! HeaderRateLimit watch as well. Ours retries with its own backoff, swallows the errors, and
//! when it recovers (the CRD appeared) it triggers one reconciliation of every
//! HeaderRateLimit, so the operator converges without a restart (objects marked
//! `IstioNotInstalled` are also requeued with bounded per-object backoff by `reconcile`).

use std::collections::{BTreeSet, HashMap};
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
    let controllers = scopes(&config.namespaces).into_iter().map(|scope| {
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

/// PURE: the watched scopes for `--namespaces`: each listed namespace once (trimmed, empty
/// entries dropped), or `[None]` (all namespaces) when none is left. A namespace listed twice
/// (`a,a` or `a, a`) must not get two controllers that both write its objects.
pub fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let listed: BTreeSet<&str> = namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if listed.is_empty() {
        vec![None]
    } else {
        listed.into_iter().map(|n| Some(n.to_string())).collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn no_namespaces_watch_all_namespaces() {
        assert_eq!(scopes(&[]), vec![None]);
        assert_eq!(scopes(&names(&["", " "])), vec![None]);
    }

    #[test]
    fn each_listed_namespace_gets_one_controller_even_when_repeated_or_padded() {
        assert_eq!(
            scopes(&names(&["b", " a", "a", "b ", ""])),
            vec![Some("a".to_string()), Some("b".to_string())]
        );
    }
}
