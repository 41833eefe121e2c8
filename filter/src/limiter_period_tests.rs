//! Rates over periods longer than a second: exact over long runs, truthful `t` and `w`.

use super::*;

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SECOND;
const DAY: u64 = 24 * HOUR;

/// Takes one token at each of `times` (ns, ascending); returns how many were admitted.
fn admitted(rate: &Rate, times: impl Iterator<Item = u64>) -> u64 {
    let mut bucket = Bucket::full(rate, 0);
    let mut count = 0;
    for now in times {
        let take = bucket.take(rate, now);
        count += u64::from(take.allowed);
        bucket = take.bucket;
    }
    count
}

#[test]
fn a_thousand_per_hour_admits_exactly_burst_plus_24000_over_a_day_of_requests_every_second() {
    let rate = Rate::per_period(1000, 3600, 1000);
    let every_second = (0..=DAY / SECOND).map(|s| s * SECOND);
    assert_eq!(admitted(&rate, every_second), 1000 + 24_000);
}

#[test]
fn requests_at_steps_that_are_not_whole_quanta_lose_nothing_over_a_day() {
    // 3600 ns quanta; steps of 999_999_937 ns leave a different remainder every time. Demand
    // (~1/s) exceeds the rate (~0.28/s) from the start, so after the burst every token that
    // accrued by the last request is admitted: floor(1000 * last / 3600 s).
    let rate = Rate::per_period(1000, 3600, 1000);
    let step = 999_999_937;
    let last = DAY / step * step;
    let accrued = u128::from(last) * 1000 / u128::from(HOUR);
    assert_eq!(
        admitted(&rate, (0..=DAY / step).map(|i| i * step)),
        1000 + u64::try_from(accrued).unwrap()
    );
}

#[test]
fn many_small_refills_equal_one_big_refill_for_a_slow_rate() {
    // Burst 100: the bucket never caps in these ~62 s.
    let rate = Rate::per_period(5, 60, 100);
    let empty = Bucket {
        tokens: 0,
        updated_ns: 0,
    };
    let mut stepped = empty;
    let mut now = 0;
    for step in [1, 7, 59, 60, 61, 3599, 1_000_003, 123_456_789]
        .iter()
        .cycle()
        .take(4000)
    {
        now += step;
        stepped = stepped.refilled(&rate, now);
        assert!(stepped.updated_ns <= now && now - stepped.updated_ns < 60);
    }
    assert_eq!(stepped.tokens, empty.refilled(&rate, now).tokens);
    assert_eq!(stepped.tokens, now / 60 * 5);
}

#[test]
fn five_per_minute_resets_and_retries_after_twelve_seconds_when_empty() {
    let rate = Rate::per_period(5, 60, 5);
    let mut bucket = Bucket::full(&rate, 0);
    for _ in 0..5 {
        bucket = bucket.take(&rate, 0).bucket;
    }
    let limited = bucket.take(&rate, 0);
    assert!(!limited.allowed);
    assert_eq!(limited.bucket.reset_seconds(&rate), 12);
    assert_eq!(
        crate::headers::retry_after_seconds(&crate::headers::Level::of(&rate, &limited.bucket)),
        12
    );
    // Half-way to the next token, 6 s remain.
    let later = limited.bucket.take(&rate, 6 * SECOND);
    assert!(!later.allowed);
    assert_eq!(later.bucket.reset_seconds(&rate), 6);
    // At 12 s the token is there.
    assert!(later.bucket.take(&rate, 12 * SECOND).allowed);
}

#[test]
fn the_window_is_the_period_when_burst_equals_tokens() {
    assert_eq!(Rate::per_period(5, 60, 5).window_seconds(), 60);
    assert_eq!(Rate::per_period(1000, 3600, 1000).window_seconds(), 3600);
    assert_eq!(Rate::per_period(1, 86_400, 1).window_seconds(), 86_400);
    assert_eq!(Rate::per_period(5, 60, 10).window_seconds(), 120);
    assert_eq!(Rate::per_period(5, 60, 1).window_seconds(), 12);
}
