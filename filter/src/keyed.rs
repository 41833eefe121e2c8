//! Keyed buckets: one per key, kept in groups of up to `GROUP_BUCKETS` (one shared-data entry
//! per group, `ceil(maxKeys / 4)` groups per policy: room for twice `maxKeys` buckets).
//!
//! A key may live in two groups (`key::candidate_groups`): its first choice, or its second when
//! the first had no room, i.e. all its buckets were in use. A bucket back at `burst` is in
//! nobody's use, so adding a key to a group drops those (memory follows the active keys). The
//! first group then carries a "spilled" flag: only then may one of its keys be in the second.
//!
//! Host calls per request (the README has the measured shares):
//! - key with a bucket in its first group: 1 get + 1 set (a limited request: 1 get);
//! - new key, first group not spilled: 1 get + 1 set;
//! - key in, or new to, a spilled first group: 2 gets + 1 set (+1 set to flag a spill);
//! - no room in either group: 2 gets, then the overflow bucket's get + set.
//!
//! Every write is a compare-and-swap of the value read, so concurrent workers never lose each
//! other's updates; a conflict reads again (at most `MAX_ATTEMPTS` in all).

use super::group::{self, FIRST_GROUP_BYTES, Group};
use super::{MAX_ATTEMPTS, Outcome, SharedStore, Written, exhausted, take_named};
use crate::key::candidate_groups;
use crate::limiter::{Bucket, Rate};
use crate::policy::StoreKeys;

/// The cas of a write that creates a group. Envoy ignores the cas of a write to a missing key
/// (proxy-wasm-cpp-host `SharedData::set`), so the write creates it; but if another worker
/// created the group since our read, this cas does not match (unless that write drew exactly
/// this number from the host's global counter), and we read again instead of overwriting the
/// bucket it added.
pub const CREATE_CAS: u32 = u32::MAX;

/// Take one token for `owner`'s bucket at `now_ns`.
pub fn take(
    store: &mut dyn SharedStore,
    keys: &StoreKeys,
    rate: &Rate,
    max_keys: u32,
    owner: &[u8],
    now_ns: u64,
) -> Outcome {
    let groups = candidate_groups(owner, max_keys);
    let mut request = Request {
        keys,
        rate,
        owner,
        now_ns,
        create: CREATE_CAS,
    };
    let mut last = None;
    for _ in 0..MAX_ATTEMPTS {
        let first = Read::of(store, keys, groups[0]);
        let found = first.group().find(owner).map(|r| (r.at, r.bucket()));
        let step = match found {
            Some((at, bucket)) => request.update(store, first, at, bucket),
            None => request.place(store, first, groups),
        };
        match step {
            Step::Done(outcome) => return outcome,
            Step::Retry(outcome) => last = outcome.or(last),
            Step::Overflow => {
                let outcome = take_named(store, &keys.overflow, rate, now_ns);
                return Outcome {
                    overflow: true,
                    ..outcome
                };
            }
        }
    }
    exhausted(last, rate, now_ns)
}

/// One group as read: its shared-data key, value and cas.
struct Read {
    key: String,
    value: Option<Vec<u8>>,
    cas: u32,
}

impl Read {
    #[inline(always)]
    fn of(store: &mut dyn SharedStore, keys: &StoreKeys, group: u32) -> Read {
        let key = keys.slot(group);
        match store.get(&key) {
            Some((value, cas)) => Read {
                key,
                value: Some(value),
                cas,
            },
            None => Read {
                key,
                value: None,
                cas: 0,
            },
        }
    }

    #[inline(always)]
    fn group(&self) -> Group<'_> {
        Group::decode(self.value.as_deref())
    }
}

/// What one attempt came to.
enum Step {
    Done(Outcome),
    /// A write conflicted: read again. The outcome it would have had, if one was computed.
    Retry(Option<Outcome>),
    /// Neither group has room.
    Overflow,
}

/// One keyed request.
struct Request<'a> {
    keys: &'a StoreKeys,
    rate: &'a Rate,
    owner: &'a [u8],
    now_ns: u64,
    /// The cas that creates a missing group (`CREATE_CAS`, or 0 on a host that refuses it).
    create: u32,
}

impl Request<'_> {
    /// Take from the owner's record at `at` in the group `read`.
    #[inline(always)]
    fn update(
        &self,
        store: &mut dyn SharedStore,
        mut read: Read,
        at: usize,
        bucket: Bucket,
    ) -> Step {
        let take = bucket.take(self.rate, self.now_ns);
        let outcome = Outcome::of(take);
        // A refused take changes nothing that time would not recompute: no write.
        if !take.allowed && !bucket.is_reanchored(&take.bucket) {
            return Step::Done(outcome);
        }
        // The record was found in this value, so both hold; a retry if they ever did not.
        let Some(value) = read.value.as_mut() else {
            return Step::Retry(Some(outcome));
        };
        if !group::patch(value, at, &take.bucket) {
            return Step::Retry(Some(outcome));
        }
        match store.set(&read.key, value, read.cas) {
            Written::Stored => Step::Done(outcome),
            Written::Conflict => Step::Retry(Some(outcome)),
        }
    }

    /// The owner has no bucket in its first group: find it in the second, or add it.
    fn place(&mut self, store: &mut dyn SharedStore, mut first: Read, groups: [u32; 2]) -> Step {
        let (rate, now_ns) = (self.rate, self.now_ns);
        let room = first.group().has_room(rate, now_ns);
        // One group only, or a first group that never spilled: the owner is nowhere else.
        if groups[0] == groups[1] || (room && !first.group().spilled()) {
            return match room {
                true => self.add(store, first),
                false => Step::Overflow,
            };
        }
        let second = Read::of(store, self.keys, groups[1]);
        if let Some((at, bucket)) = second.group().find(self.owner).map(|r| (r.at, r.bucket())) {
            return self.update(store, second, at, bucket);
        }
        if room {
            return self.add(store, first);
        }
        if !second.group().has_room(rate, now_ns) {
            return Step::Overflow;
        }
        // Flag the first group, so whoever reads it later also looks in the second. It has no
        // room, so it exists: the flag is a compare-and-swap, never a create.
        if let Some(value) = first
            .value
            .as_mut()
            .filter(|v| !Group::decode(Some(v)).spilled())
        {
            group::mark_spilled(value);
            if store.set(&first.key, value, first.cas) == Written::Conflict {
                return Step::Retry(None);
            }
        }
        self.add(store, second)
    }

    /// Add the owner, with a full bucket minus this request's token, to the group `read`.
    fn add(&mut self, store: &mut dyn SharedStore, read: Read) -> Step {
        let take = Bucket::full(self.rate, self.now_ns).take(self.rate, self.now_ns);
        let outcome = Outcome::of(take);
        let written = match read.value {
            // Edited in place: no allocation (unless the group grows past what was read).
            Some(mut value) => {
                if !group::add(&mut value, self.rate, self.now_ns, self.owner, &take.bucket) {
                    return Step::Overflow;
                }
                store.set(&read.key, &value, read.cas)
            }
            None => {
                let mut buf = [0u8; FIRST_GROUP_BYTES];
                let Some(value) = group::first(self.owner, &take.bucket, &mut buf) else {
                    return Step::Overflow;
                };
                self.create(store, &read.key, value)
            }
        };
        match written {
            Written::Stored => Step::Done(outcome),
            Written::Conflict => Step::Retry(Some(outcome)),
        }
    }

    /// Create the missing group `key` with `value`, unless another worker created it since we
    /// read (see `CREATE_CAS`).
    fn create(&mut self, store: &mut dyn SharedStore, key: &str, value: &[u8]) -> Written {
        let written = store.set(key, value, self.create);
        // Conflicted while the group is still missing: this host does not create with a cas
        // (Envoy does). Create unconditionally for the rest of this request.
        if written == Written::Conflict && self.create != 0 && store.get(key).is_none() {
            self.create = 0;
        }
        written
    }
}

#[cfg(test)]
#[path = "keyed_capacity_tests.rs"]
mod capacity_tests;
#[cfg(test)]
#[path = "keyed_tests.rs"]
mod tests;
