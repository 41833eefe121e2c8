use super::super::fake::{FakeStore, ReadBefore};
use super::super::{prepare, take};
use super::*;
use crate::key::{BucketKey, GROUP_BUCKETS, candidate_groups};
use crate::limiter::NANOS_PER_TOKEN;

const SECOND: u64 = 1_000_000_000;

fn keys() -> StoreKeys {
    StoreKeys::new("ns/p")
}

fn keyed(name: &str) -> BucketKey {
    BucketKey::from_header(Some(name.as_bytes()))
}

fn owner(key: &BucketKey) -> &[u8] {
    match key {
        BucketKey::Keyed(owner) => owner,
        _ => unreachable!("a keyed bucket"),
    }
}

/// Header keys whose groups match `pick`, numbered from `prefix`.
fn keys_where(max_keys: u32, pick: impl Fn([u32; 2]) -> bool) -> impl Iterator<Item = BucketKey> {
    (0..)
        .map(|i| keyed(&format!("k{i}")))
        .filter(move |k| pick(candidate_groups(owner(k), max_keys)))
}

fn group_value(store: &FakeStore, group: u32) -> Vec<u8> {
    store.entries[&keys().slot(group)].0.clone()
}

#[test]
fn a_key_with_a_bucket_in_its_first_group_costs_one_read_and_one_write() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    let alice = keyed("alice");
    assert!(take(&mut store, &keys, &rate, 100, &alice, 0).allowed);
    let (reads, writes) = (store.reads, store.writes);
    assert!(take(&mut store, &keys, &rate, 100, &alice, 1).allowed);
    assert_eq!((store.reads - reads, store.writes - writes), (1, 1));
    // Limited: the read only.
    let limited = take(&mut store, &keys, &rate, 100, &alice, 2);
    assert!(!limited.allowed && !limited.overflow);
    assert_eq!((store.reads - reads, store.writes - writes), (2, 1));
}

#[test]
fn a_new_key_in_a_group_that_never_spilled_costs_one_read_and_one_write() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    let outcome = take(&mut store, &keys, &rate, 100, &keyed("new"), 0);
    assert!(outcome.allowed && !outcome.overflow);
    assert_eq!(outcome.bucket.remaining(), 1);
    assert_eq!((store.reads, store.writes), (1, 1));
    let [first, _] = candidate_groups(owner(&keyed("new")), 100);
    assert_eq!(
        store.entries.keys().collect::<Vec<_>>(),
        [&keys.slot(first)]
    );
}

#[test]
fn keys_beyond_the_room_of_their_groups_share_one_overflow_bucket() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    // maxKeys 4: one group, room for 8 buckets.
    let max_keys = 4;
    prepare(&mut store, &[&keys.missing, &keys.overflow], &rate, 0);
    for i in 0..GROUP_BUCKETS {
        let outcome = take(
            &mut store,
            &keys,
            &rate,
            max_keys,
            &keyed(&format!("k{i}")),
            0,
        );
        assert!(outcome.allowed && !outcome.overflow, "key {i}");
    }
    let first = take(&mut store, &keys, &rate, max_keys, &keyed("late"), 0);
    assert!(
        first.overflow && first.allowed,
        "the overflow bucket starts full"
    );
    let second = take(&mut store, &keys, &rate, max_keys, &keyed("later"), 0);
    assert!(second.overflow && !second.allowed, "new keys share it");
    let again = take(&mut store, &keys, &rate, max_keys, &keyed("k3"), 0);
    assert!(!again.overflow && !again.allowed, "k3 keeps its own bucket");
    assert_eq!(
        store.entries.len(),
        3,
        "memory stays bounded: one group, missing and overflow buckets"
    );
}

#[test]
fn an_idle_bucket_makes_room_and_is_dropped_from_shared_data() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 1));
    for i in 0..GROUP_BUCKETS {
        assert!(take(&mut store, &keys, &rate, 1, &keyed(&format!("old{i}")), 0).allowed);
    }
    assert!(take(&mut store, &keys, &rate, 1, &keyed("new"), 0).overflow);
    let crowded = group_value(&store, 0).len();
    // One second later the old keys' buckets are full again: nobody uses them.
    let outcome = take(&mut store, &keys, &rate, 1, &keyed("new"), SECOND);
    assert!(outcome.allowed && !outcome.overflow);
    let value = group_value(&store, 0);
    let owners: Vec<&[u8]> = Group::decode(Some(&value))
        .records()
        .map(|r| r.owner)
        .collect();
    assert_eq!(owners, [&b"hnew"[..]]);
    assert!(
        value.len() < crowded / 4,
        "{} of {crowded} bytes",
        value.len()
    );
    // A returning old key starts from a full bucket, which is what it had.
    let back = take(&mut store, &keys, &rate, 1, &keyed("old0"), SECOND);
    assert!(back.allowed && !back.overflow);
}

#[test]
fn a_key_in_its_second_group_is_found_there_after_its_first_group_has_room_again() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    let max_keys = 100;
    let me = keyed("me");
    let [first, second] = candidate_groups(owner(&me), max_keys);
    // Eight others fill my first group at 0 (one token left each: in use until 1 s).
    for other in keys_where(max_keys, |g| g[0] == first).take(GROUP_BUCKETS) {
        assert!(!take(&mut store, &keys, &rate, max_keys, &other, 0).overflow);
    }
    let spilled = take(&mut store, &keys, &rate, max_keys, &me, 0);
    assert!(spilled.allowed && !spilled.overflow);
    assert!(Group::decode(Some(&group_value(&store, first))).spilled());
    assert!(
        Group::decode(Some(&group_value(&store, second)))
            .find(owner(&me))
            .is_some()
    );
    // At 0.9 s I take again (0.9 tokens left); at 1 s the others are idle, I am not.
    assert!(take(&mut store, &keys, &rate, max_keys, &me, SECOND * 9 / 10).allowed);
    let (reads, writes) = (store.reads, store.writes);
    let outcome = take(&mut store, &keys, &rate, max_keys, &me, SECOND);
    assert!(outcome.allowed);
    assert_eq!(outcome.bucket.tokens, 0, "my own bucket, not a fresh one");
    assert_eq!((store.reads - reads, store.writes - writes), (2, 1));
}

#[test]
fn two_workers_creating_one_group_at_once_keep_both_buckets() {
    let (keys, rate) = (keys(), Rate::new(1, 1));
    let max_keys = 100;
    let mut pair = keys_where(max_keys, |g| g[0] == 7);
    let (a, b) = (pair.next().unwrap(), pair.next().unwrap());
    let mut store = FakeStore::default();
    // Worker B read the group as missing before worker A created it with key a.
    let before = store.clone();
    assert!(take(&mut store, &keys, &rate, max_keys, &a, 0).allowed);
    let late = take(
        &mut ReadBefore::new(&mut store, before),
        &keys,
        &rate,
        max_keys,
        &b,
        0,
    );
    assert!(late.allowed && !late.exhausted);
    let value = group_value(&store, 7);
    assert_eq!(
        Group::decode(Some(&value)).records().count(),
        2,
        "a was not overwritten"
    );
    assert!(!take(&mut store, &keys, &rate, max_keys, &a, 0).allowed);
    assert!(!take(&mut store, &keys, &rate, max_keys, &b, 0).allowed);
}

#[test]
fn two_workers_adding_the_same_new_key_at_once_admit_exactly_the_burst() {
    let (keys, rate) = (keys(), Rate::new(1, 1));
    let mut store = FakeStore::default();
    let before = store.clone();
    assert!(take(&mut store, &keys, &rate, 100, &keyed("k"), 0).allowed);
    let late = take(
        &mut ReadBefore::new(&mut store, before),
        &keys,
        &rate,
        100,
        &keyed("k"),
        0,
    );
    assert!(
        !late.allowed,
        "its create conflicts, its re-read finds the key's bucket"
    );
    assert!(!late.exhausted);
}

#[test]
fn workers_updating_different_keys_of_one_group_lose_neither_update() {
    let (keys, rate) = (keys(), Rate::new(1, 3));
    let max_keys = 100;
    let mut pair = keys_where(max_keys, |g| g[0] == 3);
    let (a, b) = (pair.next().unwrap(), pair.next().unwrap());
    let mut store = FakeStore::default();
    take(&mut store, &keys, &rate, max_keys, &a, 0);
    take(&mut store, &keys, &rate, max_keys, &b, 0);
    let before = store.clone();
    assert_eq!(
        take(&mut store, &keys, &rate, max_keys, &a, 0)
            .bucket
            .remaining(),
        1
    );
    // B's worker read the group before A's write: its cas is stale, it reads again.
    let stale = take(
        &mut ReadBefore::new(&mut store, before),
        &keys,
        &rate,
        max_keys,
        &b,
        0,
    );
    assert_eq!(stale.bucket.remaining(), 1);
    let value = group_value(&store, 3);
    let group = Group::decode(Some(&value));
    let level = |k: &BucketKey| group.find(owner(k)).unwrap().bucket().tokens;
    assert_eq!((level(&a), level(&b)), (NANOS_PER_TOKEN, NANOS_PER_TOKEN));
}

#[test]
fn a_host_that_refuses_a_cas_on_a_missing_key_still_gets_its_groups() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 2));
    store.refuse_cas_create = true;
    let outcome = take(&mut store, &keys, &rate, 100, &keyed("k"), 0);
    assert!(outcome.allowed && !outcome.exhausted && !outcome.overflow);
    let again = take(&mut store, &keys, &rate, 100, &keyed("k"), 0);
    assert_eq!(again.bucket.remaining(), 0, "the group was created");
}

#[test]
fn an_undecodable_group_is_replaced_by_a_group_with_the_new_key() {
    let (mut store, keys, rate) = (FakeStore::default(), keys(), Rate::new(1, 3));
    let [first, _] = candidate_groups(owner(&keyed("k")), 100);
    store.set(&keys.slot(first), b"\x01garbage", 0);
    let outcome = take(&mut store, &keys, &rate, 100, &keyed("k"), 0);
    assert!(outcome.allowed && !outcome.overflow);
    assert_eq!(outcome.bucket.remaining(), 2);
    assert!(
        Group::decode(Some(&group_value(&store, first)))
            .find(b"hk")
            .is_some()
    );
}

/// One store shared by threads; each get and set is atomic on its own, as in Envoy, so threads
/// interleave between a read and its write.
#[derive(Clone)]
struct Threaded(std::sync::Arc<std::sync::Mutex<FakeStore>>);

impl SharedStore for Threaded {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        let read = self.0.lock().unwrap().get(key);
        // Let another thread write between this read and our write.
        std::thread::yield_now();
        read
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written {
        self.0.lock().unwrap().set(key, value, cas)
    }
}

#[test]
fn worker_threads_on_keys_sharing_one_group_admit_exactly_each_burst_unless_cas_gives_up() {
    let (burst, max_keys, workers, rounds) = (100u64, 4, 4, 50);
    let names: Vec<BucketKey> = (0..6).map(|i| keyed(&format!("k{i}"))).collect();
    let store = Threaded(Default::default());
    let start = std::sync::Arc::new(std::sync::Barrier::new(workers));
    let handles: Vec<_> = (0..workers)
        .map(|worker| {
            let (mut store, names, start) = (store.clone(), names.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (keys, rate) = (keys(), Rate::new(1, burst as u32));
                let mut counts = vec![(0u64, 0u64); names.len()];
                for round in 0..rounds {
                    // Every worker hits every key, from a different starting key.
                    for i in 0..names.len() {
                        let at = (i + worker + round) % names.len();
                        let outcome = take(&mut store, &keys, &rate, max_keys, &names[at], 0);
                        assert!(!outcome.overflow, "8 buckets fit in the group");
                        counts[at].0 += u64::from(outcome.allowed);
                        counts[at].1 += u64::from(outcome.exhausted);
                    }
                }
                counts
            })
        })
        .collect();
    let mut totals = vec![(0u64, 0u64); names.len()];
    for handle in handles {
        for (total, (admitted, exhausted)) in totals.iter_mut().zip(handle.join().unwrap()) {
            total.0 += admitted;
            total.1 += exhausted;
        }
    }
    for (key, (admitted, exhausted)) in names.iter().zip(totals) {
        assert_eq!(
            admitted,
            burst + exhausted,
            "{key:?}: cas_exhausted {exhausted}"
        );
    }
    let store = store.0.lock().unwrap();
    assert_eq!(store.entries.len(), 1, "one group holds all six keys");
}
