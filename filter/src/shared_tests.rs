use std::collections::{HashMap, HashSet};

use super::*;
use crate::limiter::NANOS_PER_TOKEN;

/// Shared data with Envoy's semantics: every write gets a fresh cas; a non-zero cas must match
/// an existing entry; writing a missing key always creates it.
#[derive(Default, Clone)]
struct FakeStore {
    entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// Conflicts to inject before writes succeed.
    conflicts: u32,
    writes: u32,
}

impl SharedStore for FakeStore {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written {
        if self.conflicts > 0 {
            self.conflicts -= 1;
            return Written::Conflict;
        }
        if let Some((_, current)) = self.entries.get(key)
            && cas != 0
            && cas != *current
        {
            return Written::Conflict;
        }
        self.next_cas += 1;
        self.writes += 1;
        self.entries
            .insert(key.to_string(), (value.to_vec(), self.next_cas));
        Written::Stored
    }
}

/// A worker that read every key before another worker wrote: its first read of each key sees
/// `before`; later reads and every write go to the live store.
struct ReadBefore<'a> {
    live: &'a mut FakeStore,
    before: FakeStore,
    read: HashSet<String>,
}

impl<'a> ReadBefore<'a> {
    fn new(live: &'a mut FakeStore, before: FakeStore) -> ReadBefore<'a> {
        ReadBefore {
            live,
            before,
            read: HashSet::new(),
        }
    }
}

impl SharedStore for ReadBefore<'_> {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        if self.read.insert(key.to_string()) {
            self.before.get(key)
        } else {
            self.live.get(key)
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written {
        self.live.set(key, value, cas)
    }
}

fn keys() -> StoreKeys {
    StoreKeys::new("ns/p")
}

fn keyed(name: &str) -> BucketKey {
    BucketKey::from_header(Some(name.as_bytes()))
}

const SECOND: u64 = 1_000_000_000;

#[test]
fn single_bucket_is_shared_by_all_callers_and_refills() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    let take = |store: &mut FakeStore, now| take(store, &keys, &rate, 10, &BucketKey::Single, now);
    assert!(take(&mut store, 0).allowed);
    assert!(take(&mut store, 0).allowed);
    let limited = take(&mut store, 0);
    assert!(!limited.allowed);
    assert_eq!(limited.bucket.remaining(), 0);
    assert!(take(&mut store, SECOND).allowed);
    assert!(store.entries.contains_key("hrl/v1/ns/p/b"));
}

#[test]
fn limited_requests_do_not_write_shared_data() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    assert!(take(&mut store, &keys, &rate, 10, &BucketKey::Single, 0).allowed);
    let writes = store.writes;
    assert!(!take(&mut store, &keys, &rate, 10, &BucketKey::Single, 1).allowed);
    assert_eq!(store.writes, writes);
}

#[test]
fn a_conflicting_write_is_retried_with_a_fresh_read() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 5));
    store.conflicts = MAX_ATTEMPTS - 1;
    let outcome = take(&mut store, &keys, &rate, 10, &BucketKey::Single, 0);
    assert!(outcome.allowed);
    assert!(!outcome.exhausted);
    assert_eq!(outcome.bucket.remaining(), 4);
}

#[test]
fn running_out_of_attempts_allows_the_request_and_says_so() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 5));
    store.conflicts = MAX_ATTEMPTS;
    let outcome = take(&mut store, &keys, &rate, 10, &BucketKey::Single, 0);
    assert!(outcome.allowed);
    assert!(outcome.exhausted);
    assert!(store.entries.is_empty());
    store.conflicts = MAX_ATTEMPTS;
    let keyed = take(&mut store, &keys, &rate, 10, &keyed("k"), 0);
    assert!(keyed.allowed && keyed.exhausted);
}

#[test]
fn a_worker_that_read_before_another_wrote_retries_and_never_shares_a_token() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    assert!(take(&mut store, &keys, &rate, 10, &BucketKey::Single, 0).allowed);
    let before = store.clone();
    // Worker A takes the last token; worker B read the level (one token) before A wrote.
    assert!(take(&mut store, &keys, &rate, 10, &BucketKey::Single, 0).allowed);
    let late = take(
        &mut ReadBefore::new(&mut store, before),
        &keys,
        &rate,
        10,
        &BucketKey::Single,
        0,
    );
    assert!(
        !late.allowed,
        "B's stale cas fails, its re-read finds no token"
    );
    assert!(!late.exhausted);
}

#[test]
fn prepared_buckets_admit_exactly_the_burst_when_first_requests_race() {
    let (keys, rate) = (keys(), Rate::new(1, 1));
    let race = |store: &mut FakeStore| {
        let before = store.clone();
        let first = take(store, &keys, &rate, 10, &BucketKey::Single, 0).allowed;
        let second = take(
            &mut ReadBefore::new(store, before),
            &keys,
            &rate,
            10,
            &BucketKey::Single,
            0,
        )
        .allowed;
        [first, second].iter().filter(|a| **a).count()
    };
    // Without `prepare` both workers find the bucket absent, and a write to an absent key
    // cannot be conditional: both take a token from a fresh bucket.
    assert_eq!(race(&mut FakeStore::default()), 2);
    let mut store = FakeStore::default();
    assert_eq!(prepare(&mut store, &[&keys.single], &rate, 0), 1);
    assert_eq!(race(&mut store), 1);
}

#[test]
fn prepare_keeps_buckets_that_already_exist() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    assert!(take(&mut store, &keys, &rate, 10, &BucketKey::Missing, 0).allowed);
    // Another worker configures later: the half-used bucket is not reset to full.
    assert_eq!(
        prepare(&mut store, &[&keys.missing, &keys.overflow], &rate, 0),
        1
    );
    let outcome = take(&mut store, &keys, &rate, 10, &BucketKey::Missing, 0);
    assert!(outcome.allowed);
    assert_eq!(outcome.bucket.remaining(), 0);
    assert!(store.entries.contains_key("hrl/v1/ns/p/o"));
    assert_eq!(
        prepare(&mut store, &[&keys.missing, &keys.overflow], &rate, 0),
        0
    );
}

#[test]
fn over_a_simulated_minute_workers_admit_burst_plus_rate_times_sixty() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(3, 5));
    prepare(&mut store, &[&keys.single], &rate, 0);
    // One request every 7 ms (a step that divides no token period) from 0 to 60 s: ~143 req/s
    // against 3 tokens/s, so every token is taken and integer nano-tokens lose nothing.
    let mut admitted = 0;
    let mut now = 0;
    while now <= 60 * SECOND {
        admitted += u64::from(take(&mut store, &keys, &rate, 10, &BucketKey::Single, now).allowed);
        now += 7_000_000;
    }
    // 60 s = 8571 steps of 7 ms + 3 ms: the last request is at 59.997 s, one token short.
    assert_eq!(admitted, 5 + 3 * 60 - 1);
    assert!(
        take(
            &mut store,
            &keys,
            &rate,
            10,
            &BucketKey::Single,
            60 * SECOND
        )
        .allowed
    );
}

#[test]
fn each_key_gets_its_own_bucket() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    assert!(take(&mut store, &keys, &rate, 100, &keyed("a"), 0).allowed);
    assert!(!take(&mut store, &keys, &rate, 100, &keyed("a"), 0).allowed);
    assert!(take(&mut store, &keys, &rate, 100, &keyed("b"), 0).allowed);
    assert!(!take(&mut store, &keys, &rate, 100, &keyed("b"), 0).allowed);
}

#[test]
fn requests_without_a_key_share_the_missing_bucket() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    assert!(take(&mut store, &keys, &rate, 100, &BucketKey::Missing, 0).allowed);
    assert!(!take(&mut store, &keys, &rate, 100, &BucketKey::Missing, 0).allowed);
    assert!(store.entries.contains_key("hrl/v1/ns/p/m"));
    assert!(take(&mut store, &keys, &rate, 100, &keyed("a"), 0).allowed);
}

#[test]
fn keys_beyond_max_keys_share_one_overflow_bucket() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    let max_keys = 3;
    // Fill every slot with active (non-full) buckets; the first key that finds none overflows.
    let mut owners = 0;
    let first = loop {
        let outcome = take(
            &mut store,
            &keys,
            &rate,
            max_keys,
            &keyed(&format!("k{owners}")),
            0,
        );
        if outcome.overflow {
            break outcome;
        }
        owners += 1;
    };
    assert_eq!(owners, 3);
    let slots = store.entries.keys().filter(|k| k.contains("/s/")).count();
    assert_eq!(slots, 3);
    assert!(first.allowed, "the overflow bucket starts full");
    let second = take(&mut store, &keys, &rate, max_keys, &keyed("another"), 0);
    assert!(
        second.overflow && !second.allowed,
        "new keys share the overflow bucket"
    );
    assert!(store.entries.contains_key("hrl/v1/ns/p/o"));
    assert_eq!(
        store.entries.len(),
        4,
        "memory stays bounded: 3 slots + overflow"
    );
}

#[test]
fn an_idle_key_gives_its_slot_to_a_new_key() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    assert!(take(&mut store, &keys, &rate, 1, &keyed("old"), 0).allowed);
    assert!(take(&mut store, &keys, &rate, 1, &keyed("new"), 0).overflow);
    // One second later the old key's bucket is full again: its slot is free.
    let outcome = take(&mut store, &keys, &rate, 1, &keyed("new"), SECOND);
    assert!(outcome.allowed && !outcome.overflow);
    let (value, _) = store.get("hrl/v1/ns/p/s/0").unwrap();
    assert_eq!(Bucket::decode(&value).unwrap().1, b"hnew");
}

#[test]
fn a_key_keeps_its_slot_even_when_an_earlier_probe_is_idle() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    let me = keyed("me");
    let BucketKey::Keyed(owner) = &me else {
        unreachable!()
    };
    let mut probes = probe_slots(owner, 10);
    let home = probes.next().unwrap();
    let second = probes.next().unwrap();
    // Someone else holds my home slot; I live in the second probe with one token left.
    store.set(
        &keys.slot(home),
        &Bucket {
            tokens: NANOS_PER_TOKEN,
            updated_ns: 0,
        }
        .encode(b"hx"),
        0,
    );
    store.set(
        &keys.slot(second),
        &Bucket {
            tokens: NANOS_PER_TOKEN,
            updated_ns: 0,
        }
        .encode(owner),
        0,
    );
    // Later the home holder is idle (full) but I must still find my own bucket, not a fresh one.
    let now = SECOND / 4;
    let outcome = take(&mut store, &keys, &rate, 10, &me, now);
    assert!(outcome.allowed);
    assert_eq!(outcome.bucket.tokens, NANOS_PER_TOKEN / 4);
}

#[test]
fn undecodable_values_are_replaced_by_a_fresh_bucket() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 3));
    store.set("hrl/v1/ns/p/b", b"garbage", 0);
    let outcome = take(&mut store, &keys, &rate, 10, &BucketKey::Single, 0);
    assert!(outcome.allowed);
    assert_eq!(outcome.bucket.remaining(), 2);
}

#[test]
fn clients_behind_one_address_share_a_bucket_whatever_their_ports() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    let from = |addr: &str| BucketKey::from_address(Some(addr.as_bytes()));
    assert!(
        take(
            &mut store,
            &keys,
            &rate,
            100,
            &from("[2001:db8::1]:1000"),
            0
        )
        .allowed
    );
    assert!(
        !take(
            &mut store,
            &keys,
            &rate,
            100,
            &from("[2001:db8::1]:2000"),
            0
        )
        .allowed
    );
    assert!(take(&mut store, &keys, &rate, 100, &from("10.0.0.1:1000"), 0).allowed);
}

#[test]
fn a_worker_with_an_earlier_clock_cannot_mint_tokens_in_shared_data() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    assert!(take(&mut store, &keys, &rate, 10, &BucketKey::Single, 5 * SECOND).allowed);
    // Another VM reads the host clock a little earlier: nothing is credited.
    assert!(!take(&mut store, &keys, &rate, 10, &BucketKey::Single, 4 * SECOND).allowed);
    assert!(
        !take(
            &mut store,
            &keys,
            &rate,
            10,
            &BucketKey::Single,
            6 * SECOND - 1
        )
        .allowed
    );
    assert!(take(&mut store, &keys, &rate, 10, &BucketKey::Single, 6 * SECOND).allowed);
}

#[test]
fn after_the_host_clock_steps_back_an_empty_bucket_refills_within_seconds_not_hours() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    let hour = 3600 * SECOND;
    for key in [BucketKey::Single, keyed("k")] {
        assert!(take(&mut store, &keys, &rate, 10, &key, hour).allowed);
        // The clock steps back an hour: the limited request still stores the new anchor...
        assert!(!take(&mut store, &keys, &rate, 10, &key, 10 * SECOND).allowed);
        assert!(!take(&mut store, &keys, &rate, 10, &key, 11 * SECOND - 1).allowed);
        // ...so one second of the new clock earns the next token.
        assert!(take(&mut store, &keys, &rate, 10, &key, 11 * SECOND).allowed);
        assert!(!take(&mut store, &keys, &rate, 10, &key, 11 * SECOND).allowed);
    }
}
