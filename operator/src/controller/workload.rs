//! What `reconcile` does for `scope: Workload` policies only: count the proxies before
//! planning, and hold back updates caused by a new count alone (the scale throttle).

use std::time::Duration;

use super::{Context, key, store_is_complete};
use crate::crd::HeaderRateLimit;
use crate::plan::Observed;
use crate::scope;
use crate::throttle::{self, Decision, LastApply};

/// How soon a Workload policy is tried again while the pod cache has not synced (it is not
/// applied before its pods are counted: a proxy would get the whole rate meanwhile).
pub const POD_CACHE_WAIT: Duration = Duration::from_secs(2);

/// The proxies serving `hrl`, counted in the pod cache; `Err(wait)` while the cache has no
/// complete list yet (the first call starts the pod watch).
pub(super) fn observe(hrl: &HeaderRateLimit, ctx: &Context) -> Result<Observed, Duration> {
    if !store_is_complete(&ctx.pods) {
        // Starts the pod watch if it has not started (a stored permit if nobody waits yet).
        ctx.pods_wanted.notify_one();
        let (namespace, name) = key(hrl);
        tracing::debug!(%namespace, %name, "pods not counted yet; waiting for the pod cache");
        return Err(POD_CACHE_WAIT);
    }
    let namespace = key(hrl).0;
    let pods = ctx.pods.state();
    let replicas = scope::replicas(&hrl.spec, &namespace, pods.iter().map(|p| &**p));
    Ok(Observed {
        replicas: Some(replicas),
    })
}

/// How long an update of `hrl`'s WasmPlugin must wait (`throttle::decide`), or `None` to apply
/// it now.
pub(super) fn throttled(
    hrl: &HeaderRateLimit,
    ctx: &Context,
    observed: &Observed,
) -> Option<Duration> {
    let last = ctx
        .last_applies
        .lock()
        .ok()
        .and_then(|applies| applies.get(&key(hrl)).copied());
    let now = tokio::time::Instant::now();
    match throttle::decide(
        last.as_ref(),
        hrl.metadata.generation,
        observed.replicas,
        now,
    ) {
        Decision::Apply => None,
        Decision::Wait(rest) => {
            let (namespace, name) = key(hrl);
            tracing::debug!(%namespace, %name, replicas = ?observed.replicas, wait = ?rest, "replica change throttled");
            Some(rest)
        }
    }
}

/// Records an apply of `hrl`'s WasmPlugin for the throttle.
pub(super) fn remember_apply(hrl: &HeaderRateLimit, ctx: &Context, observed: &Observed) {
    let Ok(mut applies) = ctx.last_applies.lock() else {
        return;
    };
    let now = tokio::time::Instant::now();
    // An apply older than the window decides nothing: forget it, so deleted policies do not
    // stay in the map.
    applies.retain(|_, last| now.saturating_duration_since(last.at) < throttle::SCALE_WINDOW);
    applies.insert(
        key(hrl),
        LastApply {
            at: now,
            generation: hrl.metadata.generation,
            replicas: observed.replicas,
        },
    );
}
