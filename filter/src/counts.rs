//! A policy's counters as counted in the VM between flushes to the host. Pure.
//!
//! Each counter increment used to be a host call per request (two per request on the common
//! path). Counting in the VM and handing the sums to the host on a tick (`host::Metrics`,
//! `FilterRoot::on_tick`) makes it a few host calls per tick period instead, whatever the
//! request rate. What a VM counted since its last flush is lost if the VM dies (a trap, a
//! proxy crash): at most one tick period of counts.

use std::cell::Cell;

use crate::policy::{COUNTERS, Counter};

/// Counts since the last drain, one per `Counter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts([Cell<u64>; COUNTERS]);

impl Counts {
    /// Adds one to `counter`.
    #[inline(always)]
    pub fn bump(&self, counter: Counter) {
        if let Some(count) = self.0.get(counter as usize) {
            count.set(count.get().wrapping_add(1));
        }
    }

    /// Adds one to each counter that is `Some`.
    #[inline(always)]
    pub fn bump_each(&self, counters: &[Option<Counter>]) {
        for counter in counters.iter().flatten() {
            self.bump(*counter);
        }
    }

    /// Calls `each(index, count)` for every counter counted since the last drain (index in
    /// `Counter` order), and starts them all from zero again.
    pub fn drain(&self, mut each: impl FnMut(usize, u64)) {
        for (index, count) in self.0.iter().enumerate() {
            let count = count.replace(0);
            if count > 0 {
                each(index, count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(counts: &Counts) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        counts.drain(|index, count| out.push((index, count)));
        out
    }

    #[test]
    fn a_drain_hands_over_each_moved_counter_once_and_starts_again_from_zero() {
        let counts = Counts::default();
        assert_eq!(drained(&counts), vec![]);
        counts.bump(Counter::Requests);
        counts.bump_each(&[Some(Counter::Allowed), None, Some(Counter::Overflow)]);
        counts.bump(Counter::Requests);
        assert_eq!(
            drained(&counts),
            vec![
                (Counter::Requests as usize, 2),
                (Counter::Allowed as usize, 1),
                (Counter::Overflow as usize, 1),
            ]
        );
        assert_eq!(drained(&counts), vec![], "nothing twice");
        counts.bump(Counter::Limited);
        assert_eq!(drained(&counts), vec![(Counter::Limited as usize, 1)]);
    }
}
