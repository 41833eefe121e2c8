//! How `reconcile` tells people what changed: one log line per status transition, one
//! Kubernetes event per change.

use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};

use super::Context;
use crate::conditions::{self, Outcome};
use crate::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use crate::report;

/// One line per status transition: INFO when Ready, WARN (with why) when not.
pub(super) fn log_status_change(
    namespace: &str,
    name: &str,
    previous: &HeaderRateLimitStatus,
    status: &HeaderRateLimitStatus,
) {
    let Some(change) = report::status_change(&previous.conditions, &status.conditions) else {
        return;
    };
    // Debug formatting quotes the values: they contain spaces.
    let conditions = change.changed;
    if change.ready {
        tracing::info!(%namespace, %name, ?conditions, "status changed: ready");
    } else {
        let detail = change.message;
        tracing::warn!(%namespace, %name, ?conditions, ?detail, "status changed: not ready");
    }
}

/// One event per change, not per reconciliation: an apply that did something, or a new
/// reason/message on Programmed.
pub(super) async fn publish_event(
    ctx: &Context,
    hrl: &HeaderRateLimit,
    previous: &HeaderRateLimitStatus,
    outcome: &Outcome,
    applied: bool,
    desired: &[conditions::Desired; 3],
) {
    let programmed = &desired[1];
    let accepted = &desired[0];
    let shown = if outcome == &Outcome::Applied {
        programmed
    } else {
        &desired[2]
    };
    let before = previous
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::PROGRAMMED);
    let changed = before
        .is_none_or(|c| c.reason != programmed.reason || c.message != programmed.message)
        || previous
            .conditions
            .iter()
            .find(|c| c.type_ == conditions::ACCEPTED)
            .is_none_or(|c| c.message != accepted.message);
    if !applied && !changed {
        return;
    }
    let (type_, note) = match outcome {
        Outcome::Applied => (EventType::Normal, programmed.message.clone()),
        Outcome::Invalid(message) | Outcome::NotAccepted { message, .. } => {
            (EventType::Warning, message.clone())
        }
        _ => (EventType::Warning, shown.message.clone()),
    };
    let event = Event {
        type_,
        reason: outcome.reason().to_string(),
        note: Some(note),
        action: if outcome == &Outcome::Applied {
            "ApplyWasmPlugin"
        } else {
            "Reconcile"
        }
        .into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &hrl.object_ref(&())).await {
        tracing::warn!(namespace = %hrl.namespace().unwrap_or_default(), name = %hrl.name_any(), %error, "event not recorded");
    }
}
