//! Wiring: one kube-runtime Controller per watched scope (all namespaces, or each listed one),
//! each with a reflector of the WasmPlugins it owns.
//!
//! The WasmPlugin watch is our own stream, not `Controller::owns`: when Istio's CRD is missing,
//! `owns` would feed 404 errors into the controller's shared trigger backoff and slow down the
//! HeaderRateLimit watch as well. Ours retries with its own backoff, swallows the errors, and
//! when it recovers (the CRD appeared) it triggers one reconciliation of every
//! HeaderRateLimit, so the operator converges without a restart (objects marked
//! `IstioNotInstalled` are also requeued with bounded per-object backoff by `reconcile`).
//!
//! Pods are watched in the same scope once a `scope: Workload` policy exists: stripped to what the
//! count reads (`scope::strip_pod`) before the reflector stores them, and only versions that
//! can change a count (`scope::changes_count`) are stored and passed on (`store_pod_event`:
//! a relabelled pod's previous version too), to the Workload policies that cover them
//! (`scope::policies_covering`).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::controller::Error as ControllerError;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Config, Controller, WatchStreamExt, reflector};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use crate::cache::strip;
use crate::controller::{Context, error_policy, reconcile};
use crate::crd::HeaderRateLimit;
use crate::metrics::Metrics;
use crate::plan::{MANAGED_BY_SELECTOR, Settings};
use crate::scope;
use crate::wasm_plugin::WasmPlugin;
use crate::watch::{WatchGuard, decode};

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
            pods: reflector::store().0,
            pods_wanted: Arc::new(Notify::new()),
            last_applies: Arc::new(Mutex::new(HashMap::new())),
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
    let untyped = ApiResource::erase::<HeaderRateLimit>(&());
    let (hrls, wasm_plugins, pods): (Api<DynamicObject>, Api<WasmPlugin>, Api<Pod>) = match &scope {
        Some(ns) => (
            Api::namespaced_with(client.clone(), ns, &untyped),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (
            Api::all_with(client.clone(), &untyped),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let (store, writer) = reflector::store();
    ctx.wasm_plugins = store;
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut failing = false;
    let metrics = ctx.metrics.clone();
    let owned = watcher(wasm_plugins)
        .default_backoff()
        .filter_map(move |event| {
            let item = match event {
                Err(error) => {
                    metrics.watch_failed("wasmplugins");
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
        .modify(strip::<WasmPlugin>)
        .reflect(writer)
        .touched_objects();
    let recovered = futures::stream::unfold(trigger_rx, |mut rx| async move {
        rx.recv().await.map(|()| ((), rx))
    });
    let (hrl_store, hrl_writer) = reflector::store();
    let metrics = ctx.metrics.clone();
    let health = metrics.watches.track();
    // any_semantic: the initial list is served from the API server's watch cache (cheap at scale).
    let hrl_events = watcher::watcher(hrls, watcher::Config::default().any_semantic())
        .default_backoff()
        .filter_map(move |event| {
            let item = tracked(event, &health, &metrics, "headerratelimits").and_then(|event| {
                let (event, undecodable) = decode(event);
                if let Some(bad) = undecodable {
                    metrics.undecodable.inc();
                    tracing::warn!(namespace = %bad.namespace, name = %bad.name, error = %bad.error, "cannot decode HeaderRateLimit; skipped, its WasmPlugin is left as it is");
                }
                event.map(Ok)
            });
            futures::future::ready(item)
        })
        .reflect(hrl_writer)
        .applied_objects();
    let (pod_store, pod_writer) = reflector::store();
    ctx.pods = pod_store.clone();
    // Started by the first Workload policy (`Context::pods_wanted`), then for good.
    let wanted = ctx.pods_wanted.clone();
    let metrics = ctx.metrics.clone();
    let pod_events = futures::stream::once(async move {
        wanted.notified().await;
        tracing::info!("a scope: Workload policy exists; watching pods to count its proxies");
        pod_watch(pods, pod_store, pod_writer, metrics)
    })
    .flatten();
    let policies = hrl_store.clone();
    tracing::info!(
        namespace = scope.as_deref().unwrap_or("(all)"),
        "starting controller"
    );
    Controller::for_stream(hrl_events, hrl_store)
        .owns_stream(owned)
        .watches_stream(pod_events, move |pod: Pod| {
            scope::policies_covering(&pod, &policies.state())
        })
        .reconcile_all_on(recovered)
        .with_config(Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(ctx))
        .for_each(|result| {
            match result {
                // Already logged at warn by `error_policy`; an object deleted meanwhile is normal.
                Ok(_)
                | Err(ControllerError::ReconcilerFailed(..) | ControllerError::ObjectNotFound(_)) =>
                    {}
                Err(error) => tracing::warn!(%error, "controller error"),
            }
            futures::future::ready(())
        })
        .await;
}

/// The pod watch: stripped pods into `writer`; passed on, the pods whose covering policies
/// must recount (`store_pod_event`).
fn pod_watch(
    api: Api<Pod>,
    store: reflector::Store<Pod>,
    mut writer: reflector::store::Writer<Pod>,
    metrics: Arc<Metrics>,
) -> impl futures::Stream<Item = watcher::Result<Pod>> + Send + 'static {
    let health = metrics.watches.track();
    let cached = store.clone();
    // any_semantic: the initial list is served from the API server's watch cache.
    watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(scope::strip_pod)
        .filter_map(move |event| {
            let item = tracked(event, &health, &metrics, "pods").filter(|event| match event {
                Event::Apply(pod) => {
                    scope::changes_count(cached.get(&ObjectRef::from_obj(pod)).as_deref(), pod)
                }
                _ => true,
            });
            futures::future::ready(item)
        })
        .flat_map(move |event| {
            let touched = store_pod_event(&store, &mut writer, &event);
            futures::stream::iter(touched.into_iter().map(Ok))
        })
}

/// A watch event, with the watch's health kept: a failure is counted, logged and dropped (the
/// watcher retries with backoff), the end of a list marks the watch synced.
fn tracked<K>(
    event: watcher::Result<Event<K>>,
    health: &WatchGuard,
    metrics: &Metrics,
    resource: &'static str,
) -> Option<Event<K>> {
    match event {
        Err(error) => {
            health.failed();
            metrics.watch_failed(resource);
            tracing::warn!(%error, resource, "cannot list or watch; retrying with backoff");
            None
        }
        Ok(event) => {
            if matches!(event, Event::InitDone) {
                health.synced();
            }
            Some(event)
        }
    }
}

/// Stores a pod event (as `reflect` would) and returns the pods whose covering Workload
/// policies must recount: a changed or deleted pod; for a relabelled pod also its previous
/// version, since the policies it left recount too; after a (re)list every pod of the old and
/// the new list, since the store only changes when the list is complete (`InitDone` swaps it
/// in, and a pod gone during a watch outage has no Delete event). Nothing during a list: a
/// policy counted then would see the old store.
fn store_pod_event(
    store: &reflector::Store<Pod>,
    writer: &mut reflector::store::Writer<Pod>,
    event: &Event<Pod>,
) -> Vec<Pod> {
    let before = match event {
        Event::Apply(pod) => store
            .get(&ObjectRef::from_obj(pod))
            .filter(|previous| previous.labels() != pod.labels())
            .into_iter()
            .collect(),
        Event::InitDone => store.state(),
        _ => Vec::new(),
    };
    writer.apply_watcher_event(event);
    let now = match event {
        Event::Apply(pod) | Event::Delete(pod) => vec![pod.clone()],
        Event::InitDone => store.state().iter().map(|pod| (**pod).clone()).collect(),
        Event::Init | Event::InitApply(_) => Vec::new(),
    };
    now.into_iter()
        .chain(before.iter().map(|pod| (**pod).clone()))
        .collect()
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

    fn pod(name: &str, app: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("shop".into());
        pod.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        pod
    }

    /// `(name, app label)` of each pod, sorted.
    fn seen(pods: &[Pod]) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = pods
            .iter()
            .map(|p| (p.name_any(), p.labels()["app"].clone()))
            .collect();
        seen.sort();
        seen
    }

    fn pair(name: &str, app: &str) -> (String, String) {
        (name.to_owned(), app.to_owned())
    }

    #[test]
    fn pod_events_recount_the_policies_of_old_and_new_labels_and_lists_only_once_complete() {
        let (store, mut writer) = reflector::store::<Pod>();
        let mut event = |e: Event<Pod>| seen(&store_pod_event(&store, &mut writer, &e));

        assert!(event(Event::Init).is_empty());
        assert!(
            event(Event::InitApply(pod("a", "web"))).is_empty(),
            "nothing is counted before the list is complete"
        );
        assert_eq!(event(Event::InitDone), [pair("a", "web")]);
        assert_eq!(store.state().len(), 1);

        assert_eq!(event(Event::Apply(pod("b", "web"))), [pair("b", "web")]);
        assert_eq!(
            event(Event::Apply(pod("a", "api"))),
            [pair("a", "api"), pair("a", "web")],
            "a relabelled pod recounts the policies of its old labels too"
        );
        assert_eq!(event(Event::Delete(pod("b", "web"))), [pair("b", "web")]);

        // A relist after an outage: `a` went away unseen, `c` came.
        assert!(event(Event::Init).is_empty());
        assert!(event(Event::InitApply(pod("c", "web"))).is_empty());
        assert_eq!(
            event(Event::InitDone),
            [pair("a", "api"), pair("c", "web")],
            "the old list and the new one"
        );
        assert_eq!(
            seen(
                &store
                    .state()
                    .iter()
                    .map(|p| (**p).clone())
                    .collect::<Vec<_>>()
            ),
            [pair("c", "web")]
        );
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
