//! `reconcile`: applies what `plan` decided (server-side apply), writes status, records events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Notify;

use crate::conditions::{self, Outcome, reason};
use crate::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use crate::metrics::Metrics;
use crate::plan::{FIELD_MANAGER, Observed, Settings, plan};
use crate::report::{self, Applied};
use crate::scope;
use crate::throttle::LastApply;
use crate::wasm_plugin::WasmPlugin;

mod tell;
mod workload;

/// Longest wait for the WasmPlugin store at startup.
pub const STORE_WAIT: Duration = Duration::from_secs(10);
pub use workload::POD_CACHE_WAIT;

/// Why a reconciliation failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed the WasmPlugin apply.
    #[error("applying the WasmPlugin failed: {0}")]
    ApplyWasmPlugin(#[source] kube::Error),
    /// Writing the HeaderRateLimit status failed.
    #[error("patching the HeaderRateLimit status failed: {0}")]
    PatchStatus(#[source] kube::Error),
}

/// Shared state of one controller.
#[derive(Clone)]
pub struct Context {
    /// API client.
    pub client: Client,
    /// Where proxies fetch the filter.
    pub settings: Settings,
    /// Reflector store of the WasmPlugins the operator owns (for drift checks without a GET).
    pub wasm_plugins: Store<WasmPlugin>,
    /// Event recorder (events.k8s.io).
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for the retry backoff.
    pub failures: Arc<Mutex<HashMap<(String, String), u32>>>,
    /// Set once the WasmPlugin store has synced (or we stopped waiting for it).
    pub store_waited: Arc<AtomicBool>,
    /// Reflector store of the pods in the watched namespaces, stripped by
    /// `scope::strip_pod` (what Workload policies count).
    pub pods: Store<Pod>,
    /// Woken by the first Workload policy reconciled: the pod watch starts then, so an
    /// installation without Workload policies lists and keeps no pods.
    pub pods_wanted: Arc<Notify>,
    /// The last WasmPlugin apply per Workload policy, for the scale throttle.
    pub last_applies: Arc<Mutex<HashMap<(String, String), LastApply>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Reconciles one HeaderRateLimit.
pub async fn reconcile(hrl: Arc<HeaderRateLimit>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciliations.inc();
    let started = Instant::now();
    let result = reconcile_inner(&hrl, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        // Istio missing: retried per object with the same bounded backoff as errors (the
        // WasmPlugin watch also reconciles everything once the CRD appears).
        Ok(Retry::Backoff) => Ok(Action::requeue(backoff(next_attempt(&ctx, &hrl)))),
        Ok(Retry::After(delay)) => Ok(Action::requeue(delay)),
        Ok(Retry::Done) => {
            if let Ok(mut failures) = ctx.failures.lock() {
                failures.remove(&key(&hrl));
            }
            Ok(Action::await_change())
        }
        Err(error) => Err(error),
    }
}

/// What to do after a reconciliation that did not fail.
enum Retry {
    /// Converged (or invalid: waits for a spec change).
    Done,
    /// Not converged for a reason outside our control: try again after the backoff.
    Backoff,
    /// Not converged yet on purpose (pods not counted yet, scale throttle): try again after
    /// this long; nothing was written.
    After(Duration),
}

async fn reconcile_inner(hrl: &HeaderRateLimit, ctx: &Context) -> Result<Retry, Error> {
    let namespace = hrl.namespace().unwrap_or_default();
    let name = hrl.name_any();
    if !ctx.store_waited.load(Ordering::Relaxed) {
        // At startup, wait (once, briefly) for the WasmPlugin store so unchanged objects cost
        // no request; if Istio is missing it never syncs, and we go on without it.
        let ready = ctx.wasm_plugins.wait_until_ready();
        let _ = tokio::time::timeout(STORE_WAIT, ready).await;
        ctx.store_waited.store(true, Ordering::Relaxed);
    }
    let workload = scope::is_workload(&hrl.spec);
    let observed = if workload {
        match workload::observe(hrl, ctx) {
            Ok(observed) => observed,
            Err(wait) => return Ok(Retry::After(wait)),
        }
    } else {
        Observed::default()
    };
    let planned = plan(hrl, &ctx.settings, &observed);
    if workload
        && let Ok(desired) = &planned.wasm_plugin
        && !is_current(&ctx.wasm_plugins, desired)
        && let Some(wait) = workload::throttled(hrl, ctx, &observed)
    {
        return Ok(Retry::After(wait));
    }
    let mut apply_error = None;
    let mut applied = false;
    let outcome = match &planned.wasm_plugin {
        Err(invalid) if invalid.reason == reason::INVALID => Outcome::Invalid(invalid.to_string()),
        Err(invalid) => Outcome::NotAccepted {
            reason: invalid.reason,
            message: invalid.to_string(),
        },
        Ok(desired) if is_current(&ctx.wasm_plugins, desired) => Outcome::Applied,
        Ok(desired) => {
            let api = Api::<WasmPlugin>::namespaced(ctx.client.clone(), &namespace);
            // Force only over our own object (drift repair). When the complete cache of our
            // WasmPlugins does not have it, a plain apply creates it, or meets someone else's
            // object of that name with a conflict: that object is left alone. Before the cache
            // is complete we cannot tell, and force as before.
            let cached = ObjectRef::new(&planned.wasm_plugin_name).within(&namespace);
            let before = ctx.wasm_plugins.get(&cached);
            let ours = !store_is_complete(&ctx.wasm_plugins) || before.is_some();
            let mut params = PatchParams::apply(FIELD_MANAGER);
            if ours {
                params = params.force();
            }
            match api
                .patch(&planned.wasm_plugin_name, &params, &Patch::Apply(desired))
                .await
            {
                Ok(after) => {
                    if workload {
                        workload::remember_apply(hrl, ctx, &observed);
                    }
                    let change =
                        report::applied(before.as_deref().map(|wp| &wp.metadata), &after.metadata);
                    applied = change != Applied::Unchanged;
                    let wasm_plugin = &planned.wasm_plugin_name;
                    match change {
                        Applied::Created => {
                            tracing::info!(%namespace, %name, %wasm_plugin, "WasmPlugin created");
                        }
                        Applied::Updated => {
                            tracing::info!(%namespace, %name, %wasm_plugin, "WasmPlugin updated");
                        }
                        Applied::Unchanged => {}
                    }
                    Outcome::Applied
                }
                Err(kube::Error::Api(status)) if status.code == 404 => Outcome::IstioNotInstalled,
                Err(kube::Error::Api(status)) if status.code == 409 && !ours => {
                    Outcome::Conflict(status.message.clone())
                }
                Err(error) => {
                    let outcome = Outcome::ApplyFailed(error.to_string());
                    apply_error = Some(error);
                    outcome
                }
            }
        }
    };
    if outcome != Outcome::Applied {
        ctx.metrics.failed(outcome.reason());
    }

    let previous = hrl.status.clone().unwrap_or_default();
    let service = planned.scoped.service.as_deref();
    let desired = conditions::desired_using(&outcome, &planned.wasm_plugin_name, service);
    let status = HeaderRateLimitStatus {
        observed_generation: hrl.metadata.generation,
        wasm_plugin: report::status_wasm_plugin(&outcome, &planned.wasm_plugin_name, || {
            owned_exists(ctx, hrl, &namespace, &planned.wasm_plugin_name)
        }),
        rate: planned.rate.clone(),
        replicas: planned.scoped.replicas,
        share: planned.scoped.share.clone(),
        conditions: conditions::merge(
            &previous.conditions,
            &desired,
            hrl.metadata.generation,
            &Time(Timestamp::now()),
        ),
    };
    if status != previous {
        let api = Api::<HeaderRateLimit>::namespaced(ctx.client.clone(), &namespace);
        let body = serde_json::json!({
            "apiVersion": HeaderRateLimit::api_version(&()),
            "kind": HeaderRateLimit::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        if let Err(error) = api.patch_status(&name, &params, &Patch::Apply(&body)).await {
            ctx.metrics.failed("PatchStatus");
            return Err(Error::PatchStatus(error));
        }
        tell::log_status_change(&namespace, &name, &previous, &status);
    }
    tell::publish_event(ctx, hrl, &previous, &outcome, applied, &desired).await;
    match apply_error {
        Some(error) => Err(Error::ApplyWasmPlugin(error)),
        // Both clear up without a change to this object (Istio installed, the other
        // WasmPlugin deleted), so they are retried.
        None if matches!(outcome, Outcome::IstioNotInstalled | Outcome::Conflict(_)) => {
            Ok(Retry::Backoff)
        }
        None => Ok(Retry::Done),
    }
}

/// Whether our cache of owned WasmPlugins has `name`, owned by `hrl` (so it exists and is ours).
fn owned_exists(ctx: &Context, hrl: &HeaderRateLimit, namespace: &str, name: &str) -> bool {
    let Some(existing) = ctx
        .wasm_plugins
        .get(&ObjectRef::new(name).within(namespace))
    else {
        return false;
    };
    let uid = hrl.metadata.uid.as_deref();
    uid.is_some()
        && existing
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(o.uid.as_str()) == uid)
}

/// True once a cache holds its initial list (the WasmPlugin cache never does while Istio's CRD
/// is missing).
fn store_is_complete<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|ready| ready.is_ok())
}

/// Whether the owned WasmPlugin in the store already matches the plan (then no request).
fn is_current(store: &Store<WasmPlugin>, desired: &WasmPlugin) -> bool {
    let (Some(name), Some(namespace)) = (&desired.metadata.name, &desired.metadata.namespace)
    else {
        return false;
    };
    let Some(existing) = store.get(&ObjectRef::new(name).within(namespace)) else {
        return false;
    };
    let labels = existing.metadata.labels.clone().unwrap_or_default();
    let labels_match = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let owners = existing
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    let owner_match = desired
        .metadata
        .owner_references
        .iter()
        .flatten()
        .all(|o| owners.contains(o));
    existing.spec == desired.spec && labels_match && owner_match
}

/// Retry with exponential backoff per object: 5s, 10s, 20s, ... up to 5 minutes.
pub fn error_policy(hrl: Arc<HeaderRateLimit>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = backoff(next_attempt(&ctx, &hrl));
    tracing::warn!(namespace = %hrl.namespace().unwrap_or_default(), name = %hrl.name_any(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Counts one more consecutive failure of `hrl`; returns the count (at least 1).
fn next_attempt(ctx: &Context, hrl: &HeaderRateLimit) -> u32 {
    match ctx.failures.lock() {
        Ok(mut failures) => {
            let n = failures.entry(key(hrl)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    }
}

/// The retry delay after `attempts` consecutive failures.
pub fn backoff(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(6);
    Duration::from_secs(5u64.saturating_mul(1 << exponent)).min(Duration::from_secs(300))
}

fn key(hrl: &HeaderRateLimit) -> (String, String) {
    (hrl.namespace().unwrap_or_default(), hrl.name_any())
}
