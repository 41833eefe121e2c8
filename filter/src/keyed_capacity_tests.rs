//! How many active keys get a bucket of their own: the overflow share at 50, 75 and 100 % of
//! `maxKeys` (and beyond), for random API keys and for sequential client addresses.
//! `cargo test -p hrl-filter overflow_share -- --nocapture` prints the table the README quotes.

use super::super::fake::FakeStore;
use super::super::take;
use crate::key::{BucketKey, group_count};
use crate::limiter::Rate;
use crate::policy::StoreKeys;

const MAX_KEYS: u32 = 10_000;
const SEEDS: [u64; 3] = [1, 2, 3];

/// What `active` keys at once did to a policy's shared data.
#[derive(Debug)]
struct Load {
    /// Keys that found no room and shared the overflow bucket.
    overflowed: usize,
    /// Shared-data reads of one more request of every key that got its own bucket.
    reads: u32,
    /// Keys that got their own bucket.
    placed: u32,
    /// Largest group value, in bytes.
    largest: usize,
}

/// Every key takes one token at the same instant; with `tokensPerSecond: 1, burst: 2` each
/// bucket then stays in use (below burst) for a second, so no key's room can be taken over.
/// Then every key that got a bucket comes back once and must find it (its second token).
fn load(keys: &[BucketKey]) -> Load {
    let (mut store, names, rate) = (
        FakeStore::default(),
        StoreKeys::new("ns/p"),
        Rate::new(1, 2),
    );
    let overflowed: Vec<bool> = keys
        .iter()
        .map(|key| take(&mut store, &names, &rate, MAX_KEYS, key, 0).overflow)
        .collect();
    let before = store.reads;
    let mut placed = 0;
    for (key, _) in keys.iter().zip(&overflowed).filter(|(_, o)| !**o) {
        let again = take(&mut store, &names, &rate, MAX_KEYS, key, 1);
        assert!(!again.overflow && again.allowed, "{key:?} lost its bucket");
        assert_eq!(again.bucket.remaining(), 0, "{key:?} found a fresh bucket");
        placed += 1;
    }
    let groups = store.entries.keys().filter(|k| k.contains("/s/")).count();
    assert!(groups <= group_count(MAX_KEYS) as usize);
    Load {
        overflowed: overflowed.iter().filter(|o| **o).count(),
        reads: store.reads - before,
        placed,
        largest: store
            .entries
            .values()
            .map(|(v, _)| v.len())
            .max()
            .unwrap_or(0),
    }
}

/// SplitMix64: a fixed, seeded stream of uniform 64-bit numbers.
fn splitmix(seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// `count` random 32-hex-digit API keys.
fn api_keys(seed: u64, count: usize) -> Vec<BucketKey> {
    let mut numbers = splitmix(seed);
    (0..count)
        .map(|_| {
            let (a, b) = (numbers.next().unwrap(), numbers.next().unwrap());
            BucketKey::from_header(Some(format!("{a:016x}{b:016x}").as_bytes()))
        })
        .collect()
}

/// `count` sequential client addresses from 10.0.0.1 on.
fn addresses(count: usize) -> Vec<BucketKey> {
    (1..=count as u32)
        .map(|i| {
            let [_, b, c, d] = i.to_be_bytes();
            BucketKey::from_address(Some(format!("10.{b}.{c}.{d}:40000").as_bytes()))
        })
        .collect()
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole as f64
}

#[test]
fn overflow_share_of_active_keys_is_zero_up_to_three_quarters_and_under_one_percent_at_max_keys() {
    println!(
        "maxKeys {MAX_KEYS}: active keys -> overflow share, reads per request of a placed key"
    );
    for (share, bound) in [
        (50, Some(0.0)),
        (75, Some(0.0)),
        (100, Some(0.2)),
        (125, None),
        (150, None),
        (200, None),
    ] {
        let active = MAX_KEYS as usize * share / 100;
        for seed in SEEDS {
            let load = load(&api_keys(seed, active));
            let overflow = percent(load.overflowed, active);
            println!(
                "  random keys, seed {seed}: {share:>3}% = {active:>5} keys: {overflow:.3}% overflow \
                 ({} keys), {:.4} reads/request, largest group {} bytes",
                load.overflowed,
                f64::from(load.reads) / f64::from(load.placed),
                load.largest,
            );
            if let Some(bound) = bound {
                assert!(
                    overflow <= bound,
                    "{overflow}% > {bound}% at {share}%, seed {seed}"
                );
                // Keys with a bucket are found with one read, bar those in a second group.
                assert!(load.reads <= load.placed + load.placed / 50, "{load:?}");
            }
        }
    }
}

#[test]
fn overflow_share_of_sequential_client_addresses_matches_random_keys() {
    for (share, bound) in [(50, 0.0), (75, 0.0), (100, 0.2)] {
        let active = MAX_KEYS as usize * share / 100;
        let load = load(&addresses(active));
        let overflow = percent(load.overflowed, active);
        println!(
            "  addresses: {share:>3}% = {active:>5} keys: {overflow:.3}% overflow, {:.4} reads/request",
            f64::from(load.reads) / f64::from(load.placed)
        );
        assert!(overflow <= bound, "{overflow}% > {bound}% at {share}%");
    }
}
