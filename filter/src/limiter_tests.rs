//! Token bucket maths: refill, take, reset, window, encoding.

use super::*;

const SECOND: u64 = 1_000_000_000;

#[test]
fn a_new_bucket_is_full_and_allows_burst_requests_then_limits() {
    let rate = Rate::new(2, 3);
    let mut bucket = Bucket::full(&rate, 0);
    for left in [2, 1, 0] {
        let take = bucket.take(&rate, 0);
        assert!(take.allowed);
        assert_eq!(take.bucket.remaining(), left);
        bucket = take.bucket;
    }
    assert!(!bucket.take(&rate, 0).allowed);
}

#[test]
fn refill_adds_tokens_per_second_continuously() {
    let rate = Rate::new(2, 2);
    let empty = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    assert_eq!(
        empty.refilled(&rate, SECOND / 4).tokens,
        NANOS_PER_TOKEN / 2
    );
    assert!(!empty.take(&rate, SECOND / 2 - 1).allowed);
    assert!(empty.take(&rate, SECOND / 2).allowed);
}

#[test]
fn refill_never_exceeds_burst() {
    let rate = Rate::new(5, 3);
    let empty = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    let later = empty.refilled(&rate, 3600 * SECOND);
    assert_eq!(later.tokens, 3 * NANOS_PER_TOKEN);
    assert_eq!(later.remaining(), 3);
}

#[test]
fn fractional_accrual_over_many_small_steps_is_exact() {
    // 3 tokens/s: one token every 333_333_333.3 ns. A million 1 µs steps = exactly 3 tokens.
    let rate = Rate::new(3, 10);
    let mut bucket = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    let step = 1_000;
    let mut now = 0;
    for _ in 0..1_000_000 {
        now += step;
        bucket = bucket.refilled(&rate, now);
    }
    assert_eq!(now, SECOND);
    assert_eq!(bucket.tokens, 3 * NANOS_PER_TOKEN);
    let one_step = Bucket {
        tokens: 0,
        updated_ns: 0,
    }
    .refilled(&rate, SECOND);
    assert_eq!(bucket, one_step);
}

#[test]
fn one_nanosecond_steps_at_one_token_per_second_lose_nothing() {
    let rate = Rate::new(1, 1);
    let mut bucket = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    for now in 1..=10_000 {
        bucket = bucket.refilled(&rate, now);
    }
    assert_eq!(bucket.tokens, 10_000);
}

#[test]
fn clock_going_backwards_mints_no_tokens() {
    let rate = Rate::new(1, 5);
    let bucket = Bucket {
        tokens: NANOS_PER_TOKEN,
        updated_ns: 10 * SECOND,
    };
    // A worker whose clock read lags another's write: nothing credited, timestamp kept.
    let back = bucket.refilled(&rate, 10 * SECOND - MAX_CLOCK_LAG_NS);
    assert_eq!(back, bucket);
    assert!(!bucket.is_reanchored(&back));
    // Coming forward again credits only time after the latest timestamp.
    let forward = back.refilled(&rate, 11 * SECOND);
    assert_eq!(forward.tokens, 2 * NANOS_PER_TOKEN);
    // However far back the clock goes, the level never grows.
    for now in [0, SECOND, 9 * SECOND, 10 * SECOND - 1] {
        assert_eq!(bucket.refilled(&rate, now).tokens, NANOS_PER_TOKEN);
    }
    assert!(
        !Bucket {
            tokens: 0,
            updated_ns: 10 * SECOND
        }
        .take(&rate, 0)
        .allowed
    );
}

#[test]
fn a_clock_stepped_back_a_long_way_refills_again_from_the_new_time() {
    let rate = Rate::new(1, 5);
    let empty = Bucket {
        tokens: 0,
        updated_ns: 3600 * SECOND,
    };
    // The host clock is stepped back an hour: the bucket re-anchors without gaining a token...
    let stepped = empty.refilled(&rate, 10 * SECOND);
    assert_eq!(stepped.tokens, 0);
    assert!(empty.is_reanchored(&stepped));
    assert!(!empty.take(&rate, 10 * SECOND).allowed);
    // ...and one second later it has the token that second earned, not an hour from now.
    assert!(stepped.take(&rate, 11 * SECOND).allowed);
}

#[test]
fn huge_elapsed_times_and_rates_saturate_instead_of_overflowing() {
    let rate = Rate::new(u32::MAX, u32::MAX);
    let bucket = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    let later = bucket.refilled(&rate, u64::MAX);
    assert_eq!(later.tokens, rate.capacity());
    assert_eq!(later.remaining(), u64::from(u32::MAX));
    let corrupt = Bucket {
        tokens: u64::MAX,
        updated_ns: 0,
    };
    assert_eq!(corrupt.refilled(&rate, u64::MAX).tokens, rate.capacity());
    assert_eq!(
        corrupt.refilled(&Rate::new(1, 1), 0).tokens,
        NANOS_PER_TOKEN
    );
}

#[test]
fn refill_matches_the_saturating_formula_around_the_fill_time() {
    // The plain definition `refilled` must agree with (it skips the overflow check).
    let reference = |rate: &Rate, tokens: u64, elapsed: u64| {
        tokens
            .saturating_add((elapsed / rate.quantum_ns.get()).saturating_mul(rate.per_quantum))
            .min(rate.capacity())
    };
    for (per_second, burst, period) in [
        (1, 1, 1),
        (2, 2, 1),
        (3, 10, 1),
        (7, 1, 1),
        (1000, 3, 1),
        (u32::MAX, 1, 1),
        (1, u32::MAX, 1),
        (u32::MAX, u32::MAX, 1),
        (5, 5, 60),
        (7, 3, 86_400),
        (1, u32::MAX, 86_400),
        (10_000_000, 10_000_000, 3600),
    ] {
        let rate = Rate::per_period(per_second, period, burst);
        assert_eq!(rate.capacity(), u64::from(burst) * NANOS_PER_TOKEN);
        for tokens in [0, 1, NANOS_PER_TOKEN - 1, rate.capacity(), u64::MAX] {
            let fill = rate.fill_quanta.saturating_mul(rate.quantum_ns.get());
            for elapsed in [
                0,
                1,
                fill.saturating_sub(2),
                fill - 1,
                fill,
                fill.saturating_add(1),
                u64::MAX / 2,
                u64::MAX,
            ] {
                let bucket = Bucket {
                    tokens,
                    updated_ns: 0,
                };
                assert_eq!(
                    bucket.refilled(&rate, elapsed).tokens,
                    reference(&rate, tokens, elapsed),
                    "rate {per_second}/{period}s burst {burst}, tokens {tokens}, elapsed {elapsed}"
                );
            }
        }
    }
}

#[test]
fn window_is_the_time_to_refill_an_empty_bucket_at_least_one_second() {
    assert_eq!(Rate::new(2, 2).window_seconds(), 1);
    assert_eq!(Rate::new(10, 5).window_seconds(), 1);
    assert_eq!(Rate::new(1, 10).window_seconds(), 10);
    assert_eq!(Rate::new(3, 10).window_seconds(), 4);
    assert_eq!(Rate::new(0, 0).window_seconds(), 1);
}

#[test]
fn reset_is_the_time_to_the_next_whole_token_and_zero_when_full() {
    let rate = Rate::new(2, 2);
    assert_eq!(Bucket::full(&rate, 0).reset_seconds(&rate), 0);
    let one = Bucket {
        tokens: NANOS_PER_TOKEN,
        updated_ns: 0,
    };
    assert_eq!(one.reset_seconds(&rate), 1);
    let slow = Rate::new(1, 10);
    let almost = Bucket {
        tokens: NANOS_PER_TOKEN - 1,
        updated_ns: 0,
    };
    assert_eq!(almost.reset_seconds(&slow), 1);
    let empty = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    assert_eq!(empty.reset_seconds(&slow), 1);
    assert_eq!(empty.reset_seconds(&Rate::new(1000, 1)), 1);
}

#[test]
fn encoding_round_trips_with_and_without_an_owner() {
    let bucket = Bucket {
        tokens: 123_456_789_012,
        updated_ns: u64::MAX - 7,
    };
    let plain = bucket.encode_named();
    assert_eq!(plain.len(), ENCODED_LEN);
    assert_eq!(Bucket::decode(&plain), Some((bucket, &b""[..])));
    let owned = [plain.as_slice(), b"h-key"].concat();
    assert_eq!(Bucket::decode(&owned), Some((bucket, &b"h-key"[..])));
}

#[test]
fn foreign_or_truncated_values_do_not_decode() {
    let good = Bucket::full(&Rate::new(1, 1), 5).encode_named();
    assert_eq!(Bucket::decode(&good[..ENCODED_LEN - 1]), None);
    assert_eq!(Bucket::decode(b""), None);
    let mut other_version = good;
    other_version[0] = 9;
    assert_eq!(Bucket::decode(&other_version), None);
}
