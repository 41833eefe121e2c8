//! The HeaderRateLimit watch, decoded one object at a time, and the health of every watch.
//!
//! A typed watch fails its whole list when one object does not decode (an object written under
//! a newer CRD, say), and the controller then reconciles nothing while it looks healthy. Here
//! the watch lists untyped objects and [`decode`] turns each into a `HeaderRateLimit`: one that
//! does not decode is reported (log line naming the object and the field, metric) and left out,
//! and its WasmPlugin is left as it was. [`WatchHealth`] tracks whether each watch has its
//! list and is not failing; `/readyz` answers from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;

use crate::crd::{HeaderRateLimit, HeaderRateLimitSpec};

/// An object the operator could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Why, with the field path (`spec.rateLimit.burst: invalid type: ...`).
    pub error: String,
}

/// PURE: one event of the untyped watch as the controller's typed event (none when there is
/// nothing to pass on), and the object it could not decode, if any.
///
/// An update that no longer decodes becomes a `Delete` of the object's last good version in the
/// controller's cache: nothing reconciles it until it decodes again, so its WasmPlugin keeps the
/// last good configuration. During a (re)list a bad object is simply left out of the new cache.
pub fn decode(
    event: Event<DynamicObject>,
) -> (Option<Event<HeaderRateLimit>>, Option<Undecodable>) {
    match event {
        Event::Init => (Some(Event::Init), None),
        Event::InitDone => (Some(Event::InitDone), None),
        Event::Apply(object) => match typed(object) {
            Ok(hrl) => (Some(Event::Apply(hrl)), None),
            Err(bad) => (Some(Event::Delete(stub(&bad))), Some(bad)),
        },
        Event::InitApply(object) => match typed(object) {
            Ok(hrl) => (Some(Event::InitApply(hrl)), None),
            Err(bad) => (None, Some(bad)),
        },
        // A deleted object leaves the cache whether or not it decodes.
        Event::Delete(object) => match typed(object) {
            Ok(hrl) => (Some(Event::Delete(hrl)), None),
            Err(bad) => (Some(Event::Delete(stub(&bad))), None),
        },
    }
}

/// Decodes `object` after dropping what the controller never reads (`cache::strip`), so the
/// largest parts of an object are neither copied nor decoded.
fn typed(mut object: DynamicObject) -> Result<HeaderRateLimit, Undecodable> {
    crate::cache::strip(&mut object);
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let failure = |error: String| Undecodable {
        namespace: namespace.clone(),
        name: name.clone(),
        error,
    };
    let value = serde_json::to_value(&object).map_err(|e| failure(e.to_string()))?;
    serde_path_to_error::deserialize::<_, HeaderRateLimit>(value).map_err(|error| {
        let path = error.path().to_string();
        failure(format!("{path}: {}", error.into_inner()))
    })
}

/// An object with only the name and namespace of one that did not decode (cache removal goes
/// by name).
fn stub(bad: &Undecodable) -> HeaderRateLimit {
    let mut hrl = HeaderRateLimit::new(&bad.name, HeaderRateLimitSpec::default());
    hrl.metadata.namespace = Some(bad.namespace.clone());
    hrl
}

/// How many watches are not usable now (before their first list, or failing); `/readyz` is
/// 200 only at zero.
#[derive(Debug, Default)]
pub struct WatchHealth {
    unsynced: AtomicUsize,
}

impl WatchHealth {
    /// True when every running watch has its list and is not failing.
    pub fn all_synced(&self) -> bool {
        self.unsynced.load(Ordering::Relaxed) == 0
    }

    /// Registers a new watch, unsynced until its first list; dropping the guard unregisters it.
    pub fn track(self: &Arc<Self>) -> WatchGuard {
        self.unsynced.fetch_add(1, Ordering::Relaxed);
        WatchGuard {
            health: self.clone(),
            synced: AtomicBool::new(false),
        }
    }
}

/// One watch's part of [`WatchHealth`].
#[derive(Debug)]
pub struct WatchGuard {
    health: Arc<WatchHealth>,
    synced: AtomicBool,
}

impl WatchGuard {
    /// The watch has its complete list.
    pub fn synced(&self) {
        if !self.synced.swap(true, Ordering::Relaxed) {
            self.health.unsynced.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The watch failed; it counts as unsynced until its next complete list.
    pub fn failed(&self) {
        if self.synced.swap(false, Ordering::Relaxed) {
            self.health.unsynced.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if !self.synced.load(Ordering::Relaxed) {
            self.health.unsynced.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
