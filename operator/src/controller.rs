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
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Notify;

use crate::conditions::{self, Outcome, reason};
use crate::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use crate::metrics::Metrics;
use crate::plan::{FIELD_MANAGER, Observed, Settings, plan};
use crate::report::{self, Applied};
use crate::scope;
use crate::throttle::{self, Decision, LastApply};
use crate::wasm_plugin::WasmPlugin;

/// Longest wait for the WasmPlugin store at startup.
pub const STORE_WAIT: Duration = Duration::from_secs(10);
/// How soon a Workload policy is tried again while the pod cache has not synced (it is not
/// applied before its pods are counted: a proxy would get the whole rate meanwhile).
pub const POD_CACHE_WAIT: Duration = Duration::from_secs(2);

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
        if !store_is_complete(&ctx.pods) {
            // Starts the pod watch if it has not started (a stored permit if nobody waits).
            ctx.pods_wanted.notify_one();
            tracing::debug!(%namespace, %name, "pods not counted yet; waiting for the pod cache");
            return Ok(Retry::After(POD_CACHE_WAIT));
        }
        let pods = ctx.pods.state();
        let replicas = scope::replicas(&hrl.spec, &namespace, pods.iter().map(|p| &**p));
        Observed {
            replicas: Some(replicas),
        }
    } else {
        Observed::default()
    };
    let planned = plan(hrl, &ctx.settings, &observed);
    if workload
        && let Ok(desired) = &planned.wasm_plugin
        && !is_current(&ctx.wasm_plugins, desired)
    {
        let last = ctx
            .last_applies
            .lock()
            .ok()
            .and_then(|applies| applies.get(&key(hrl)).copied());
        let now = tokio::time::Instant::now();
        if let Decision::Wait(rest) = throttle::decide(
            last.as_ref(),
            hrl.metadata.generation,
            observed.replicas,
            now,
        ) {
            tracing::debug!(%namespace, %name, replicas = ?observed.replicas, wait = ?rest, "replica change throttled");
            return Ok(Retry::After(rest));
        }
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
                    if workload && let Ok(mut applies) = ctx.last_applies.lock() {
                        let now = tokio::time::Instant::now();
                        // An apply older than the window decides nothing: forget it, so deleted
                        // policies do not stay in the map.
                        applies.retain(|_, last| {
                            now.saturating_duration_since(last.at) < throttle::SCALE_WINDOW
                        });
                        applies.insert(
                            key(hrl),
                            LastApply {
                                at: now,
                                generation: hrl.metadata.generation,
                                replicas: observed.replicas,
                            },
                        );
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
        log_status_change(&namespace, &name, &previous, &status);
    }
    publish_event(ctx, hrl, &previous, &outcome, applied, &desired).await;
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

/// One line per status transition: INFO when Ready, WARN (with why) when not.
fn log_status_change(
    namespace: &str,
    name: &str,
    previous: &HeaderRateLimitStatus,
    status: &HeaderRateLimitStatus,
) {
    let Some(change) = report::status_change(&previous.conditions, &status.conditions) else {
        return;
    };
    // Debug formatting quotes the values: they contain spaces.
    let conditions = change.changed;
    if change.ready {
        tracing::info!(%namespace, %name, ?conditions, "status changed: ready");
    } else {
        let detail = change.message;
        tracing::warn!(%namespace, %name, ?conditions, ?detail, "status changed: not ready");
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

/// One event per change, not per reconciliation: an apply that did something, or a new
/// reason/message on Programmed.
async fn publish_event(
    ctx: &Context,
    hrl: &HeaderRateLimit,
    previous: &HeaderRateLimitStatus,
    outcome: &Outcome,
    applied: bool,
    desired: &[conditions::Desired; 3],
) {
    let programmed = &desired[1];
    let accepted = &desired[0];
    let shown = if outcome == &Outcome::Applied {
        programmed
    } else {
        &desired[2]
    };
    let before = previous
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::PROGRAMMED);
    let changed = before
        .is_none_or(|c| c.reason != programmed.reason || c.message != programmed.message)
        || previous
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::ACCEPTED)
            .is_none_or(|c| c.message != accepted.message);
    if !applied && !changed {
        return;
    }
    let (type_, note) = match outcome {
        Outcome::Applied => (EventType::Normal, programmed.message.clone()),
        Outcome::Invalid(message) | Outcome::NotAccepted { message, .. } => {
            (EventType::Warning, message.clone())
        }
        _ => (EventType::Warning, shown.message.clone()),
    };
    let event = Event {
        type_,
        reason: outcome.reason().to_string(),
        note: Some(note),
        action: if outcome == &Outcome::Applied {
            "ApplyWasmPlugin"
        } else {
            "Reconcile"
        }
        .into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &hrl.object_ref(&())).await {
        tracing::warn!(namespace = %hrl.namespace().unwrap_or_default(), name = %hrl.name_any(), %error, "event not recorded");
    }
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
