//! The clocks the module sees: wall time (`proxy_get_current_time_nanoseconds`, WASI
//! `clock_time_get(REALTIME)`) and monotonic time (WASI `clock_time_get(MONOTONIC)`), as
//! Envoy serves them (`Context::getCurrentTimeNanoseconds` / `getMonotonicTimeNanoseconds`:
//! the system clock and one process-wide steady clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z, the start of every manual clock unless told otherwise.
pub const MANUAL_EPOCH_NANOS: u64 = 1_767_225_600_000_000_000;
/// Where a manual clock's monotonic time starts (an hour after an imaginary boot): far from
/// the wall time, so a module that mixes the two up shows it.
pub const MANUAL_MONOTONIC_START_NANOS: u64 = 3_600_000_000_000;

/// A clock: either the system clocks or a manual one that only moves when a test says so.
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    wall: AtomicU64,
    monotonic: AtomicU64,
}

impl Clock {
    /// A manual clock at [`MANUAL_EPOCH_NANOS`], monotonic time at
    /// [`MANUAL_MONOTONIC_START_NANOS`].
    pub fn manual() -> Clock {
        Clock::manual_at(MANUAL_EPOCH_NANOS)
    }

    /// A manual clock at the given Unix time in nanoseconds.
    pub fn manual_at(unix_nanos: u64) -> Clock {
        Clock {
            manual: Some(Arc::new(Manual {
                wall: AtomicU64::new(unix_nanos),
                monotonic: AtomicU64::new(MANUAL_MONOTONIC_START_NANOS),
            })),
        }
    }

    /// The system clocks (for the local proxy).
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// Moves a manual clock forward, wall and monotonic time alike; the system clock ignores
    /// this.
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            manual.wall.fetch_add(nanos, Ordering::SeqCst);
            manual.monotonic.fetch_add(nanos, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock's wall time (it may go backwards, as real clocks are stepped);
    /// monotonic time does not move. The system clock ignores this.
    pub fn set(&self, unix_nanos: u64) {
        if let Some(manual) = &self.manual {
            manual.wall.store(unix_nanos, Ordering::SeqCst);
        }
    }

    /// The current Unix time in nanoseconds.
    pub fn now_nanos(&self) -> u64 {
        match &self.manual {
            Some(manual) => manual.wall.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }

    /// Monotonic time in nanoseconds: one clock for every worker VM of the process (the
    /// system clock's counts from the first reading in this process), so values are
    /// comparable across VMs, as Envoy's steady clock is.
    pub fn monotonic_nanos(&self) -> u64 {
        match &self.manual {
            Some(manual) => manual.monotonic.load(Ordering::SeqCst),
            None => {
                static BASE: OnceLock<Instant> = OnceLock::new();
                let since = BASE.get_or_init(Instant::now).elapsed();
                // Not zero at the first reading, like a real uptime.
                u64::try_from(since.as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_add(MANUAL_MONOTONIC_START_NANOS)
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::manual()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_both_clocks_and_setting_steps_only_the_wall_clock() {
        let clock = Clock::manual();
        let copy = clock.clone();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(copy.now_nanos(), MANUAL_EPOCH_NANOS + 1_500_000_000);
        assert_eq!(
            copy.monotonic_nanos(),
            MANUAL_MONOTONIC_START_NANOS + 1_500_000_000
        );
        clock.set(MANUAL_EPOCH_NANOS - 3_600_000_000_000);
        assert_eq!(copy.now_nanos(), MANUAL_EPOCH_NANOS - 3_600_000_000_000);
        assert_eq!(
            copy.monotonic_nanos(),
            MANUAL_MONOTONIC_START_NANOS + 1_500_000_000
        );
    }

    #[test]
    fn the_system_monotonic_clock_never_goes_back_and_is_shared_by_every_clock() {
        let (one, two) = (Clock::system(), Clock::system());
        let first = one.monotonic_nanos();
        let second = two.monotonic_nanos();
        assert!(first >= MANUAL_MONOTONIC_START_NANOS && second >= first);
    }
}
