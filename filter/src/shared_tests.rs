use super::fake::{FakeStore, ReadBefore};
use super::*;

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
