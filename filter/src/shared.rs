//! Taking a token from a bucket that lives in proxy shared data, so every worker thread (each
//! its own VM) draws from the same bucket. Pure over the `SharedStore` trait: the adapter
//! implements it with host calls, the tests with an in-memory map.
//!
//! Buckets with a fixed name (the single bucket, a keyed policy's missing-key and overflow
//! buckets) are one entry each. Keyed buckets live in groups (`keyed.rs`, `group.rs`).

#[path = "group.rs"]
pub mod group;
#[path = "keyed.rs"]
mod keyed;

use crate::key::BucketKey;
use crate::limiter::{Bucket, Rate, Take};
use crate::policy::StoreKeys;

pub use keyed::CREATE_CAS;

/// Read-modify-write attempts before a request is let through uncounted.
pub const MAX_ATTEMPTS: u32 = 8;

/// The result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The value was stored.
    Stored,
    /// Someone else wrote since our read (or the host failed): read again.
    Conflict,
}

/// Proxy shared data as the limiter needs it.
pub trait SharedStore {
    /// The value and its cas token; `None` if the key does not exist (or cannot be read).
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Store `value` if the entry's cas is still `cas` (0 = unconditional / create).
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written;
}

/// What happened to one request's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A token was taken (or the store gave up: see `exhausted`).
    pub allowed: bool,
    /// The bucket after this request, for the rate-limit headers.
    pub bucket: Bucket,
    /// Every attempt conflicted; the request is allowed without a token.
    pub exhausted: bool,
    /// The key found no room in its groups and used the policy's overflow bucket.
    pub overflow: bool,
}

impl Outcome {
    /// The outcome of one take from a bucket the request found (no conflict, no overflow).
    #[inline(always)]
    pub(crate) fn of(take: Take) -> Outcome {
        Outcome {
            allowed: take.allowed,
            bucket: take.bucket,
            exhausted: false,
            overflow: false,
        }
    }
}

/// Create the named buckets (full at `now_ns`) that do not exist yet; returns how many it
/// created. Run from `on_configure`, before the worker serves requests: Envoy ignores the cas
/// of a write to a missing key, so two workers whose first requests both found a bucket absent
/// would each take a token from a fresh one. Once the entry exists every request-time write is
/// a real compare-and-swap. An existing value, even an undecodable one, is left alone.
pub fn prepare(store: &mut dyn SharedStore, names: &[&str], rate: &Rate, now_ns: u64) -> usize {
    let full = Bucket::full(rate, now_ns).encode_named();
    let mut created: usize = 0;
    for name in names {
        if store.get(name).is_none() && store.set(name, &full, 0) == Written::Stored {
            created = created.saturating_add(1);
        }
    }
    created
}

/// Take one token for `key` at `now_ns`.
pub fn take(
    store: &mut dyn SharedStore,
    keys: &StoreKeys,
    rate: &Rate,
    max_keys: u32,
    key: &BucketKey,
    now_ns: u64,
) -> Outcome {
    match key {
        BucketKey::Single => take_named(store, &keys.single, rate, now_ns),
        BucketKey::Missing => take_named(store, &keys.missing, rate, now_ns),
        BucketKey::Keyed(owner) => keyed::take(store, keys, rate, max_keys, owner, now_ns),
    }
}

/// Take from a bucket with a fixed key (single, missing, overflow).
fn take_named(store: &mut dyn SharedStore, key: &str, rate: &Rate, now_ns: u64) -> Outcome {
    let mut last = None;
    for _ in 0..MAX_ATTEMPTS {
        let (bucket, cas) = match store.get(key) {
            Some((value, cas)) => match Bucket::decode(&value) {
                Some((bucket, _)) => (bucket, cas),
                None => (Bucket::full(rate, now_ns), cas),
            },
            None => (Bucket::full(rate, now_ns), 0),
        };
        let take = bucket.take(rate, now_ns);
        let outcome = Outcome::of(take);
        if !take.allowed && !bucket.is_reanchored(&take.bucket) {
            return outcome;
        }
        if store.set(key, &take.bucket.encode_named(), cas) == Written::Stored {
            return outcome;
        }
        last = Some(outcome);
    }
    exhausted(last, rate, now_ns)
}

/// Every attempt conflicted: allow, and report the last computed level.
fn exhausted(last: Option<Outcome>, rate: &Rate, now_ns: u64) -> Outcome {
    let bucket = last.map_or(Bucket::full(rate, now_ns), |o| o.bucket);
    Outcome {
        allowed: true,
        bucket,
        exhausted: true,
        overflow: last.is_some_and(|o| o.overflow),
    }
}

#[cfg(test)]
#[path = "store_fake.rs"]
mod fake;
#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
