//! Taking a token from a bucket that lives in proxy shared data, so every worker thread (each
//! its own VM) draws from the same bucket. Pure over the `SharedStore` trait: the adapter
//! implements it with host calls, the tests with an in-memory map.

use crate::headers::same_bytes;
use crate::key::{BucketKey, MAX_KEY_BYTES, probe_slots};
use crate::limiter::{Bucket, ENCODED_LEN, Rate};
use crate::policy::StoreKeys;

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
    /// The key found no slot and used the policy's overflow bucket.
    pub overflow: bool,
}

/// Where a keyed request's bucket lives, found by probing its slots.
struct Target {
    key: String,
    bucket: Bucket,
    cas: u32,
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
    let owner: &[u8] = match key {
        BucketKey::Single => return take_named(store, &keys.single, rate, now_ns),
        BucketKey::Missing => return take_named(store, &keys.missing, rate, now_ns),
        BucketKey::Keyed(owner) => owner.as_slice(),
    };
    let mut last = None;
    for _ in 0..MAX_ATTEMPTS {
        let Some(target) = find_slot(store, keys, rate, max_keys, owner, now_ns) else {
            let outcome = take_named(store, &keys.overflow, rate, now_ns);
            return Outcome {
                overflow: true,
                ..outcome
            };
        };
        let take = target.bucket.take(rate, now_ns);
        let outcome = Outcome {
            allowed: take.allowed,
            bucket: take.bucket,
            exhausted: false,
            overflow: false,
        };
        // A refused take changes nothing that time would not recompute: no write.
        if !take.allowed && !target.bucket.is_reanchored(&take.bucket) {
            return outcome;
        }
        // On the stack for every owner key `key.rs` makes (at most MAX_KEY_BYTES + 1 bytes).
        let mut buf = [0u8; ENCODED_LEN + MAX_KEY_BYTES + 1];
        let heap;
        let value = match take.bucket.encode_to(owner, &mut buf) {
            Some(value) => value,
            None => {
                heap = take.bucket.encode(owner);
                heap.as_slice()
            }
        };
        if store.set(&target.key, value, target.cas) == Written::Stored {
            return outcome;
        }
        last = Some(outcome);
    }
    exhausted(last, rate, now_ns)
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
        let outcome = Outcome {
            allowed: take.allowed,
            bucket: take.bucket,
            exhausted: false,
            overflow: false,
        };
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

/// The slot `owner` already holds, else the first empty or idle one among its probes.
fn find_slot(
    store: &mut dyn SharedStore,
    keys: &StoreKeys,
    rate: &Rate,
    max_keys: u32,
    owner: &[u8],
    now_ns: u64,
) -> Option<Target> {
    let mut free: Option<Target> = None;
    for slot in probe_slots(owner, max_keys) {
        let key = keys.slot(slot);
        let Some((value, cas)) = store.get(&key) else {
            // Slots are never emptied, so the owner cannot sit further along the probe.
            return Some(free.unwrap_or(Target {
                key,
                bucket: Bucket::full(rate, now_ns),
                cas: 0,
            }));
        };
        match Bucket::decode(&value) {
            // Not `==` (the C library's bytewise `memcmp`): this runs for every probe.
            Some((bucket, holder)) if same_bytes(holder, owner) => {
                return Some(Target { key, bucket, cas });
            }
            Some((bucket, _)) if !bucket.is_full_at(rate, now_ns) => {}
            // An idle holder (full again) or a value that is not ours: free to take over.
            _ => {
                if free.is_none() {
                    free = Some(Target {
                        key,
                        bucket: Bucket::full(rate, now_ns),
                        cas,
                    });
                }
            }
        }
    }
    free
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
#[path = "shared_tests.rs"]
mod tests;
