//! PURE: how often a replica change may update one policy's WasmPlugin.
//!
//! Each WasmPlugin update is an xDS push to every proxy the policy covers, and an autoscaler
//! moving pods one at a time would push on every step. So an update caused by a new replica
//! count alone waits until [`SCALE_WINDOW`] has passed since that object's last apply (the
//! reconcile is requeued for the rest of the window, and then applies the count of that
//! moment: a burst of pod changes becomes one update). Spec edits (a new generation), drift
//! repair and the first apply after a start are never delayed.
//!
//! Not kube's `Controller::debounce`: that delays every trigger of every object, spec edits
//! included, and restarts its delay on each new trigger, so under constant pod churn an object
//! is not reconciled at all until the churn stops.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest time between two WasmPlugin updates of one policy that only a replica change
/// caused.
pub const SCALE_WINDOW: Duration = Duration::from_secs(5);

/// The last WasmPlugin apply of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastApply {
    /// When it was applied.
    pub at: Instant,
    /// The policy's metadata.generation then.
    pub generation: Option<i64>,
    /// The replica count it was planned with.
    pub replicas: Option<u32>,
}

/// What to do with a WasmPlugin that differs from the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Apply now.
    Apply,
    /// Only the replica count changed, within the window: try again after this long.
    Wait(Duration),
}

/// Whether a plan for `generation` at `replicas` may be applied at `now`, after `last`.
pub fn decide(
    last: Option<&LastApply>,
    generation: Option<i64>,
    replicas: Option<u32>,
    now: Instant,
) -> Decision {
    let Some(last) = last else {
        return Decision::Apply;
    };
    if last.generation != generation || last.replicas == replicas {
        return Decision::Apply;
    }
    let elapsed = now.saturating_duration_since(last.at);
    match SCALE_WINDOW.checked_sub(elapsed) {
        Some(rest) if !rest.is_zero() => Decision::Wait(rest),
        _ => Decision::Apply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(at: Instant) -> LastApply {
        LastApply {
            at,
            generation: Some(3),
            replicas: Some(4),
        }
    }

    #[test]
    fn a_replica_change_within_the_window_waits_for_the_rest_of_it() {
        let t0 = Instant::now();
        let seen = last(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(
            decide(Some(&seen), Some(3), Some(5), at(0)),
            Decision::Wait(SCALE_WINDOW)
        );
        assert_eq!(
            decide(Some(&seen), Some(3), Some(6), at(1_500)),
            Decision::Wait(Duration::from_millis(3_500))
        );
        assert_eq!(
            decide(Some(&seen), Some(3), Some(6), at(5_000)),
            Decision::Apply
        );
        assert_eq!(
            decide(Some(&seen), Some(3), Some(6), at(60_000)),
            Decision::Apply
        );
    }

    #[test]
    fn spec_edits_drift_repair_and_first_applies_are_never_delayed() {
        let t0 = Instant::now();
        let seen = last(t0);
        assert_eq!(decide(None, Some(3), Some(5), t0), Decision::Apply, "first");
        assert_eq!(
            decide(Some(&seen), Some(4), Some(5), t0),
            Decision::Apply,
            "a new generation, even with a new count"
        );
        assert_eq!(
            decide(Some(&seen), Some(3), Some(4), t0),
            Decision::Apply,
            "same count: a WasmPlugin edited by hand is repaired at once"
        );
    }
}
