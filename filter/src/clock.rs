//! Reading the host's monotonic clock as raw nanoseconds, without `unsafe`. Pure.
//!
//! Buckets live in proxy shared data and are written by every worker VM, so their timestamps
//! must come from one clock all VMs read alike. Envoy serves WASI `clock_time_get(MONOTONIC)`
//! from its process-wide steady clock (proxy-wasm-cpp-host `wasi_unstable_clock_time_get` ->
//! Envoy `Context::getMonotonicTimeNanoseconds` -> `time_source_.monotonicTime()`,
//! `std::chrono::steady_clock`), so its raw value is comparable across VMs. An `Instant`
//! relative to a base each VM takes for itself would not be.
//!
//! std's `Instant` holds that reading (on WASI: std's unix `Timespec`, filled by wasi-libc's
//! `clock_gettime` from `clock_time_get`) but has no accessor for it. What it does have is a
//! floor: `checked_sub` fails below the smallest value it can hold. That floor is the same
//! in every VM of the module (same std), so the time since it is comparable across VMs, and
//! it is the raw reading modulo 2^64 ns: an unsigned representation's floor is the clock's
//! zero, and signed 64-bit seconds' floor is -2^63 s, and 2^63 s = 2^72·1953125 ns is a
//! multiple of 2^64 ns. `floor_offset` finds the floor by bisection, once per VM; the
//! playground's ABI tests check the stored timestamps against the host's monotonic clock.

use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The largest `n` for which `fits(n)` holds, given that `fits(0)` holds and `fits` is true up
/// to some value and false above it; `None` when it holds everywhere. 64 probes at most.
pub fn largest_fitting(mut fits: impl FnMut(u64) -> bool) -> Option<u64> {
    if fits(u64::MAX) {
        return None;
    }
    // Invariant: fits(low), !fits(high).
    let (mut low, mut high) = (0u64, u64::MAX);
    while high.saturating_sub(low) > 1 {
        let mid = low.saturating_add(high.saturating_sub(low) / 2);
        if fits(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(low)
}

/// The largest duration `d` for which `fits(d)` holds (a clock reading minus `d` is still a
/// reading): the distance from a reading down to its representation's floor. `None` if no
/// floor is within `Duration`'s range.
pub fn floor_offset(mut fits: impl FnMut(Duration) -> bool) -> Option<Duration> {
    let secs = largest_fitting(|secs| fits(Duration::from_secs(secs)))?;
    let nanos = largest_fitting(|nanos| {
        nanos < NANOS_PER_SECOND
            && u32::try_from(nanos).is_ok_and(|nanos| fits(Duration::new(secs, nanos)))
    })?;
    Some(Duration::new(secs, u32::try_from(nanos).ok()?))
}

/// The raw clock reading in nanoseconds, from the time since the representation's floor
/// (modulo 2^64: see the module comment).
#[inline(always)]
pub fn raw_nanos(since_floor: Duration) -> u64 {
    since_floor
        .as_secs()
        .wrapping_mul(NANOS_PER_SECOND)
        .wrapping_add(u64::from(since_floor.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_fitting_value_is_found_exactly_in_at_most_65_probes() {
        for floor in [
            0,
            1,
            2,
            999,
            1_000_000_007,
            1_767_225_600_000_000_000,
            u64::MAX / 2,
            u64::MAX - 1,
        ] {
            let mut probes = 0;
            let found = largest_fitting(|n| {
                probes += 1;
                n <= floor
            });
            assert_eq!(found, Some(floor));
            assert!(probes <= 65, "{probes} probes for {floor}");
        }
        assert_eq!(largest_fitting(|_| true), None);
    }

    /// std's unix `Timespec` (WASI's `Instant`): signed seconds, nanoseconds below 10^9.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
    struct Timespec {
        secs: i64,
        nanos: u32,
    }

    impl Timespec {
        fn from_raw(raw: u64) -> Timespec {
            Timespec {
                secs: i64::try_from(raw / NANOS_PER_SECOND).unwrap(),
                nanos: u32::try_from(raw % NANOS_PER_SECOND).unwrap(),
            }
        }

        /// Like std: seconds first (may fail), then borrow one for the nanoseconds.
        fn checked_sub(self, d: Duration) -> Option<Timespec> {
            let mut secs = self.secs.checked_sub_unsigned(d.as_secs())?;
            let mut nanos = i64::from(self.nanos) - i64::from(d.subsec_nanos());
            if nanos < 0 {
                nanos += 1_000_000_000;
                secs = secs.checked_sub(1)?;
            }
            Some(Timespec {
                secs,
                nanos: u32::try_from(nanos).unwrap(),
            })
        }

        /// `self - earlier`; the seconds difference wraps like std's release build.
        fn since(self, earlier: Timespec) -> Duration {
            let (mut secs, mut nanos) = (
                self.secs.wrapping_sub(earlier.secs) as u64,
                i64::from(self.nanos) - i64::from(earlier.nanos),
            );
            if nanos < 0 {
                nanos += 1_000_000_000;
                secs -= 1;
            }
            Duration::new(secs, u32::try_from(nanos).unwrap())
        }
    }

    #[test]
    fn a_signed_timespec_reading_gives_back_the_raw_clock_from_its_floor() {
        for raw in [0, 1, 999_999_999, 3_601_234_000_000, 1 << 62, u64::MAX / 3] {
            let now = Timespec::from_raw(raw);
            let offset = floor_offset(|d| now.checked_sub(d).is_some()).unwrap();
            let floor = now.checked_sub(offset).unwrap();
            assert_eq!(
                floor,
                Timespec {
                    secs: i64::MIN,
                    nanos: 0
                },
                "raw {raw}"
            );
            for later in [raw, raw + 1, raw + 7_000_000_001] {
                let reading = Timespec::from_raw(later);
                assert_eq!(
                    raw_nanos(reading.since(floor)),
                    later,
                    "raw {raw} later {later}"
                );
            }
        }
    }

    #[test]
    fn an_unsigned_reading_gives_back_the_raw_clock_from_its_floor() {
        // std's earlier WASI `Instant`: a Duration since the clock's zero.
        for raw in [0, 5, 86_400_123_456_789, u64::MAX / 2] {
            let now = Duration::from_nanos(raw);
            let offset = floor_offset(|d| now.checked_sub(d).is_some()).unwrap();
            let floor = now - offset;
            assert_eq!(floor, Duration::ZERO);
            assert_eq!(raw_nanos(now - floor), raw);
        }
    }

    #[test]
    fn a_representation_without_a_floor_has_no_offset() {
        assert_eq!(floor_offset(|_| true), None);
    }
}
