//! Condition types and reasons, and the one rule about `lastTransitionTime`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The spec is valid.
pub const ACCEPTED: &str = "Accepted";
/// The WasmPlugin is applied and matches the plan.
pub const PROGRAMMED: &str = "Programmed";
/// Accepted and Programmed.
pub const READY: &str = "Ready";

/// Reasons, PascalCase; also used as event reasons and bounded metric labels.
pub mod reason {
    /// Accepted=True.
    pub const ACCEPTED: &str = "Accepted";
    /// The spec breaks a rule; the message names the field.
    pub const INVALID: &str = "Invalid";
    /// A scope: Cluster policy, and the installation has no rate limit service configured.
    pub const RATE_LIMIT_SERVICE_NOT_CONFIGURED: &str = "RateLimitServiceNotConfigured";
    /// Programmed=True: the WasmPlugin is applied (created, updated or already matching).
    pub const WASM_PLUGIN_APPLIED: &str = "WasmPluginApplied";
    /// The API server refused or failed the apply.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The WasmPlugin CRD (extensions.istio.io) is not installed.
    pub const ISTIO_NOT_INSTALLED: &str = "IstioNotInstalled";
    /// A WasmPlugin of that name exists and was not made by the operator: left alone.
    pub const CONFLICT: &str = "Conflict";
    /// Ready=True.
    pub const READY: &str = "Ready";
}

/// What happened to the plan of one HeaderRateLimit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The WasmPlugin matches the plan (applied now or already in place).
    Applied,
    /// The spec is invalid (message names the field); nothing was applied.
    Invalid(String),
    /// The spec is valid but this installation cannot serve it (reason says what it lacks,
    /// message names the field and what to set); nothing was applied.
    NotAccepted {
        /// PascalCase reason, e.g. `RateLimitServiceNotConfigured`.
        reason: &'static str,
        /// `field: what to do`.
        message: String,
    },
    /// Istio's WasmPlugin CRD is missing.
    IstioNotInstalled,
    /// Applying failed (message from the API server).
    ApplyFailed(String),
    /// A WasmPlugin of the planned name exists and is not ours (message from the API server).
    Conflict(String),
}

impl Outcome {
    /// The bounded reason label of this outcome.
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Applied => reason::WASM_PLUGIN_APPLIED,
            Outcome::Invalid(_) => reason::INVALID,
            Outcome::NotAccepted { reason, .. } => reason,
            Outcome::IstioNotInstalled => reason::ISTIO_NOT_INSTALLED,
            Outcome::ApplyFailed(_) => reason::APPLY_FAILED,
            Outcome::Conflict(_) => reason::CONFLICT,
        }
    }
}

/// One desired condition, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// PascalCase reason.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// The Accepted, Programmed and Ready conditions for an outcome.
pub fn desired(outcome: &Outcome, wasm_plugin: &str) -> [Desired; 3] {
    desired_using(outcome, wasm_plugin, None)
}

/// [`desired`], where Programmed also names the rate limit service a Cluster policy uses.
pub fn desired_using(outcome: &Outcome, wasm_plugin: &str, service: Option<&str>) -> [Desired; 3] {
    let accepted = match outcome {
        Outcome::Invalid(message) => Desired {
            type_: ACCEPTED,
            status: false,
            reason: reason::INVALID,
            message: message.clone(),
        },
        Outcome::NotAccepted { reason, message } => Desired {
            type_: ACCEPTED,
            status: false,
            reason,
            message: message.clone(),
        },
        _ => Desired {
            type_: ACCEPTED,
            status: true,
            reason: reason::ACCEPTED,
            message: "the spec is valid".into(),
        },
    };
    let programmed = match outcome {
        Outcome::Applied => Desired {
            type_: PROGRAMMED,
            status: true,
            reason: reason::WASM_PLUGIN_APPLIED,
            message: match service {
                None => format!("WasmPlugin {wasm_plugin} is applied and matches the spec"),
                Some(service) => format!(
                    "WasmPlugin {wasm_plugin} is applied and matches the spec; the rate limit \
                     service {service} keeps the count"
                ),
            },
        },
        Outcome::Invalid(_) => Desired {
            type_: PROGRAMMED,
            status: false,
            reason: reason::INVALID,
            message: "not applied: the spec is invalid (an existing WasmPlugin keeps its last valid configuration)".into(),
        },
        Outcome::NotAccepted { reason, .. } => Desired {
            type_: PROGRAMMED,
            status: false,
            reason,
            message: "not applied: not accepted (an existing WasmPlugin keeps its last configuration)".into(),
        },
        Outcome::IstioNotInstalled => Desired {
            type_: PROGRAMMED,
            status: false,
            reason: reason::ISTIO_NOT_INSTALLED,
            message: "the WasmPlugin CRD (extensions.istio.io/v1alpha1) is not installed; retrying until Istio is installed".into(),
        },
        Outcome::ApplyFailed(message) => Desired {
            type_: PROGRAMMED,
            status: false,
            reason: reason::APPLY_FAILED,
            message: format!("applying WasmPlugin {wasm_plugin} failed: {message}"),
        },
        Outcome::Conflict(message) => Desired {
            type_: PROGRAMMED,
            status: false,
            reason: reason::CONFLICT,
            message: format!(
                "WasmPlugin {wasm_plugin} already exists and was not created by hrl-operator; \
                 it is left alone: delete or rename it, or rename this HeaderRateLimit ({message})"
            ),
        },
    };
    let ready = if programmed.status {
        Desired {
            type_: READY,
            status: true,
            reason: reason::READY,
            message: "the filter is configured for the selected workloads".into(),
        }
    } else {
        Desired {
            type_: READY,
            status: false,
            reason: programmed.reason,
            message: programmed.message.clone(),
        }
    };
    [accepted, programmed, ready]
}

/// Builds the new condition list: a condition whose status did not change keeps its
/// `lastTransitionTime`; conditions of other types (set by someone else) are kept.
pub fn merge(
    existing: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::with_capacity(existing.len().max(desired.len()));
    for d in desired {
        let status = if d.status { "True" } else { "False" };
        let previous = existing.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        out.push(Condition {
            type_: d.type_.to_string(),
            status: status.to_string(),
            reason: d.reason.to_string(),
            message: d.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    for c in existing {
        if !desired.iter().any(|d| d.type_ == c.type_) {
            out.push(c.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn find<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    #[test]
    fn last_transition_time_is_kept_while_the_status_does_not_change() {
        let first = merge(
            &[],
            &desired(&Outcome::ApplyFailed("a".into()), "wp"),
            Some(1),
            &at(10),
        );
        let second = merge(
            &first,
            &desired(&Outcome::ApplyFailed("b".into()), "wp"),
            Some(2),
            &at(20),
        );
        let ready = find(&second, READY);
        assert_eq!(ready.last_transition_time, at(10));
        assert_eq!(ready.observed_generation, Some(2));
        assert!(ready.message.ends_with(": b"), "{}", ready.message);
    }

    #[test]
    fn last_transition_time_moves_when_the_status_changes() {
        let failed = merge(
            &[],
            &desired(&Outcome::IstioNotInstalled, "wp"),
            Some(1),
            &at(10),
        );
        let applied = merge(&failed, &desired(&Outcome::Applied, "wp"), Some(1), &at(20));
        assert_eq!(find(&applied, READY).last_transition_time, at(20));
        assert_eq!(find(&applied, ACCEPTED).last_transition_time, at(10));
    }

    #[test]
    fn conditions_of_other_types_are_kept() {
        let foreign = Condition {
            type_: "Audited".into(),
            status: "True".into(),
            reason: "Fine".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(1),
        };
        let merged = merge(
            std::slice::from_ref(&foreign),
            &desired(&Outcome::Applied, "wp"),
            None,
            &at(2),
        );
        assert_eq!(merged.len(), 4);
        assert_eq!(find(&merged, "Audited"), &foreign);
    }

    #[test]
    fn ready_carries_the_programmed_reason_when_not_ready() {
        let [_, programmed, ready] = desired(&Outcome::IstioNotInstalled, "wp");
        assert_eq!(
            (ready.status, ready.reason),
            (false, reason::ISTIO_NOT_INSTALLED)
        );
        assert_eq!(ready.message, programmed.message);
    }
}
