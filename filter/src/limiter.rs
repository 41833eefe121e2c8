//! Token bucket maths and the bucket's shared-data encoding. Pure: time is passed in.
//!
//! Tokens are kept in nano-tokens (one token = 10^9 units): at `T` tokens per `P` seconds the
//! bucket gains exactly `T` units per `P` nanoseconds (a quantum). Refill credits whole quanta
//! and moves the bucket's timestamp by exactly the quanta credited, so the sub-quantum remainder
//! (under `P` ns, at most 86.4 us) carries over to the next refill: exact integer maths however
//! small the steps between requests are, with no drift. For `P` = 1 a quantum is 1 ns.

use core::num::NonZeroU64;

/// Units in one token.
pub const NANOS_PER_TOKEN: u64 = 1_000_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// First byte of an encoded bucket; bump when the layout changes.
const VERSION: u8 = 1;
/// A clock up to this far behind a bucket's timestamp is a worker that read the time just before
/// another worker wrote: nothing is credited and the later timestamp is kept. Further behind, the
/// clock was stepped back (NTP, VM resume): the bucket re-anchors to it, or it would not refill
/// until the clock caught up again, which may be hours.
pub const MAX_CLOCK_LAG_NS: u64 = NANOS_PER_SECOND;
/// Length of a bucket's level as stored (`Bucket::level_bytes`).
pub const LEVEL_LEN: usize = 16;
/// Length of an encoded bucket without its owner key: `VERSION` and the level.
pub const ENCODED_LEN: usize = 1 + LEVEL_LEN;

/// Refill rate and capacity of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units (nano-tokens) added per quantum: the configured `tokens`.
    per_quantum: u64,
    /// Nanoseconds per quantum: the configured `periodSeconds`.
    quantum_ns: NonZeroU64,
    burst: u64,
    /// `burst * NANOS_PER_TOKEN`, computed once (it is needed several times per request).
    capacity: u64,
    /// Quanta after which an empty bucket is full again: `ceil(capacity / per_quantum)`.
    /// Refill below this needs no overflow check (`quanta * per_quantum < capacity`).
    fill_quanta: u64,
}

impl Rate {
    /// A rate of `tokens_per_second` with capacity `burst`; zeros (rejected by validation) become 1.
    pub fn new(tokens_per_second: u32, burst: u32) -> Rate {
        Rate::per_period(tokens_per_second, 1, burst)
    }

    /// A rate of `tokens` per `period_seconds` with capacity `burst`; zeros (rejected by
    /// validation) become 1.
    pub fn per_period(tokens: u32, period_seconds: u32, burst: u32) -> Rate {
        let per_quantum = u64::from(tokens.max(1));
        let burst = u64::from(burst.max(1));
        // `u32::MAX * 10^9` fits in u64.
        let capacity = burst.saturating_mul(NANOS_PER_TOKEN);
        Rate {
            per_quantum,
            quantum_ns: NonZeroU64::new(u64::from(period_seconds)).unwrap_or(NonZeroU64::MIN),
            burst,
            capacity,
            fill_quanta: capacity.div_ceil(per_quantum),
        }
    }

    /// Capacity in whole tokens (`q`).
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Capacity in nano-tokens. `u32::MAX * 10^9` fits in u64.
    #[inline(always)]
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Seconds an empty bucket needs to refill completely, at least 1 (`w`):
    /// `ceil(burst * period / tokens)`, the period itself when `burst == tokens`.
    pub fn window_seconds(&self) -> u64 {
        // burst <= u32::MAX and period <= u32::MAX: the product fits in u64.
        self.burst
            .saturating_mul(self.quantum_ns.get())
            .div_ceil(self.per_quantum)
            .max(1)
    }
}

/// A bucket's level at a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Level in nano-tokens.
    pub tokens: u64,
    /// Host time (ns) the level was computed for; never moves backwards.
    pub updated_ns: u64,
}

/// The outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// A token was available and was taken.
    pub allowed: bool,
    /// The bucket after the take (refilled to `now`, minus the token if allowed).
    pub bucket: Bucket,
}

impl Bucket {
    /// A full bucket, as every bucket starts.
    #[inline(always)]
    pub fn full(rate: &Rate, now_ns: u64) -> Bucket {
        Bucket {
            tokens: rate.capacity(),
            updated_ns: now_ns,
        }
    }

    /// The bucket refilled up to `now_ns`. A clock that went backwards adds nothing; within
    /// `MAX_CLOCK_LAG_NS` it keeps the later timestamp, so the same interval is never credited
    /// twice; further back it re-anchors to `now_ns` (see `is_reanchored`).
    #[inline(always)]
    pub fn refilled(self, rate: &Rate, now_ns: u64) -> Bucket {
        let capacity = rate.capacity();
        let Some(elapsed) = now_ns.checked_sub(self.updated_ns) else {
            let stepped_back = self.updated_ns.abs_diff(now_ns) > MAX_CLOCK_LAG_NS;
            return Bucket {
                tokens: self.tokens.min(capacity),
                updated_ns: if stepped_back {
                    now_ns
                } else {
                    self.updated_ns
                },
            };
        };
        // Whole quanta only; the timestamp advances by exactly the time credited, so the rest
        // (under one quantum) is credited by a later refill and nothing is lost to rounding.
        let quanta = elapsed / rate.quantum_ns;
        // `quanta * per_quantum`, saturating, is at least `capacity` from `fill_quanta` on, and
        // the level is capped at `capacity` anyway: the same result without a 64x64-bit
        // overflow check (a 128-bit multiply call in wasm32). A full bucket has no remainder
        // worth keeping: it is anchored to `now_ns`.
        if quanta >= rate.fill_quanta {
            return Bucket {
                tokens: capacity,
                updated_ns: now_ns,
            };
        }
        // quanta < ceil(capacity / per_quantum), so quanta * per_quantum < capacity: no wrap;
        // quanta * quantum_ns <= elapsed, so the new timestamp is at most `now_ns`.
        let added = quanta.wrapping_mul(rate.per_quantum);
        let tokens = self.tokens.saturating_add(added);
        if tokens >= capacity {
            return Bucket {
                tokens: capacity,
                updated_ns: now_ns,
            };
        }
        Bucket {
            tokens,
            updated_ns: self
                .updated_ns
                .wrapping_add(quanta.wrapping_mul(rate.quantum_ns.get())),
        }
    }

    /// Whether `later`, computed from this bucket, moved its timestamp back (a stepped-back
    /// clock): time will not recompute that, so it must be stored even when nothing was taken.
    #[inline(always)]
    pub fn is_reanchored(self, later: &Bucket) -> bool {
        later.updated_ns < self.updated_ns
    }

    /// Whether the bucket is back at capacity at `now_ns` (its owner is idle).
    pub fn is_full_at(self, rate: &Rate, now_ns: u64) -> bool {
        self.refilled(rate, now_ns).tokens >= rate.capacity()
    }

    /// Refill to `now_ns`, then take one token if there is one.
    #[inline(always)]
    pub fn take(self, rate: &Rate, now_ns: u64) -> Take {
        let bucket = self.refilled(rate, now_ns);
        match bucket.tokens.checked_sub(NANOS_PER_TOKEN) {
            Some(tokens) => Take {
                allowed: true,
                bucket: Bucket { tokens, ..bucket },
            },
            None => Take {
                allowed: false,
                bucket,
            },
        }
    }

    /// Whole tokens left (`r`).
    #[inline(always)]
    pub fn remaining(&self) -> u64 {
        self.tokens / NANOS_PER_TOKEN
    }

    /// Whole seconds until the next whole token accrues, 0 when full (`t`).
    #[inline(always)]
    pub fn reset_seconds(&self, rate: &Rate) -> u64 {
        if self.tokens >= rate.capacity() {
            return 0;
        }
        let missing = NANOS_PER_TOKEN.saturating_sub(self.tokens % NANOS_PER_TOKEN);
        // Whole quanta until `missing` units accrue, counted from the bucket's timestamp, which
        // is less than one quantum before the time the bucket was computed for (see
        // `refilled`). At most 10^9 quanta of at most u32::MAX ns: the product fits in u64, so
        // no overflow check (a 128-bit multiply call in wasm32, per request).
        let nanos = missing
            .div_ceil(rate.per_quantum)
            .wrapping_mul(rate.quantum_ns.get());
        nanos.div_ceil(NANOS_PER_SECOND)
    }

    /// The bucket's level as stored: tokens, then timestamp (little endian). A bucket with a
    /// fixed name stores it after `VERSION` (`encode_named`), a keyed one in its group's
    /// record (`group.rs`).
    #[inline(always)]
    pub fn level_bytes(&self) -> [u8; LEVEL_LEN] {
        // Destructured, not an iterator chain: this runs per request and is ~20 instructions.
        let [t0, t1, t2, t3, t4, t5, t6, t7] = self.tokens.to_le_bytes();
        let [u0, u1, u2, u3, u4, u5, u6, u7] = self.updated_ns.to_le_bytes();
        [
            t0, t1, t2, t3, t4, t5, t6, t7, u0, u1, u2, u3, u4, u5, u6, u7,
        ]
    }

    /// The shared-data value of a bucket with a fixed name: version, then `level_bytes`,
    /// without an allocation.
    #[inline(always)]
    pub fn encode_named(&self) -> [u8; ENCODED_LEN] {
        let mut out = [VERSION; ENCODED_LEN];
        if let Some(level) = out.last_chunk_mut::<LEVEL_LEN>() {
            *level = self.level_bytes();
        }
        out
    }

    /// Decode a shared-data value into the bucket and its owner key; None if it is not ours.
    #[inline(always)]
    pub fn decode(bytes: &[u8]) -> Option<(Bucket, &[u8])> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION {
            return None;
        }
        let (tokens, rest) = split_u64(rest)?;
        let (updated_ns, owner) = split_u64(rest)?;
        Some((Bucket { tokens, updated_ns }, owner))
    }
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), rest))
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "limiter_period_tests.rs"]
mod period_tests;
