//! The clock the module sees through `proxy_get_current_time_nanoseconds` and WASI.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z, the start of every manual clock unless told otherwise.
pub const MANUAL_EPOCH_NANOS: u64 = 1_767_225_600_000_000_000;

/// A clock: either the system clock or a manual one that only moves when a test says so.
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// A manual clock at [`MANUAL_EPOCH_NANOS`].
    pub fn manual() -> Clock {
        Clock::manual_at(MANUAL_EPOCH_NANOS)
    }

    /// A manual clock at the given Unix time in nanoseconds.
    pub fn manual_at(unix_nanos: u64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(unix_nanos))),
        }
    }

    /// The system clock (for the local proxy).
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// Moves a manual clock forward; the system clock ignores this.
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            now.fetch_add(nanos, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock (it may go backwards, as real clocks do); the system clock ignores this.
    pub fn set(&self, unix_nanos: u64) {
        if let Some(now) = &self.manual {
            now.store(unix_nanos, Ordering::SeqCst);
        }
    }

    /// The current Unix time in nanoseconds.
    pub fn now_nanos(&self) -> u64 {
        match &self.manual {
            Some(now) => now.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::manual()
    }
}
