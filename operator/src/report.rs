//! PURE: what one reconciliation reports besides its conditions: the WasmPlugin that
//! `status.wasmPlugin` names, and what is worth a log line (changes only, never a no-op).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

use crate::conditions::{Outcome, READY};

/// What an apply did to the WasmPlugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Updated,
    /// It existed and the apply changed nothing (same resourceVersion).
    Unchanged,
}

/// Judges an apply from the cached object before it (`None`: not in the cache) and the
/// object the API server answered. Without a cached copy, a first generation means created.
pub fn applied(before: Option<&ObjectMeta>, after: &ObjectMeta) -> Applied {
    match before {
        Some(before)
            if before.resource_version.is_some()
                && before.resource_version == after.resource_version =>
        {
            Applied::Unchanged
        }
        Some(_) => Applied::Updated,
        None if after.generation == Some(1) => Applied::Created,
        None => Applied::Updated,
    }
}

/// The name `status.wasmPlugin` reports: the planned WasmPlugin when it is in place, or when
/// it exists and is ours (`owned_exists`, from the cache of our WasmPlugins: an invalid spec
/// leaves it with its last valid configuration); never one that does not exist or belongs to
/// someone else.
/// `owned_exists` is asked only when the outcome does not already decide.
pub fn status_wasm_plugin(
    outcome: &Outcome,
    name: &str,
    owned_exists: impl FnOnce() -> bool,
) -> Option<String> {
    match outcome {
        Outcome::Applied => Some(name.to_string()),
        Outcome::Conflict(_) => None,
        _ if owned_exists() => Some(name.to_string()),
        _ => None,
    }
}

/// One log line's worth of a status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The conditions whose status or reason changed, as `Type=Status (Reason)`, in order.
    pub changed: String,
    /// Whether Ready is True now.
    pub ready: bool,
    /// Ready's message (why, when not ready).
    pub message: String,
}

/// The change from `previous` to `next` conditions, or `None` when no condition changed its
/// status or reason (a new message alone, such as another API error text, is not a change).
pub fn status_change(previous: &[Condition], next: &[Condition]) -> Option<StatusChange> {
    let changed: Vec<String> = next
        .iter()
        .filter(|c| {
            previous
                .iter()
                .find(|p| p.type_ == c.type_)
                .is_none_or(|p| p.status != c.status || p.reason != c.reason)
        })
        .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
        .collect();
    if changed.is_empty() {
        return None;
    }
    let ready = next.iter().find(|c| c.type_ == READY);
    Some(StatusChange {
        changed: changed.join(", "),
        ready: ready.is_some_and(|c| c.status == "True"),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::{desired, merge};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn meta(version: Option<&str>, generation: Option<i64>) -> ObjectMeta {
        ObjectMeta {
            resource_version: version.map(str::to_string),
            generation,
            ..ObjectMeta::default()
        }
    }

    fn conditions(outcome: &Outcome, previous: &[Condition]) -> Vec<Condition> {
        merge(
            previous,
            &desired(outcome, "hrl-web"),
            Some(1),
            &Time(Timestamp::UNIX_EPOCH),
        )
    }

    #[test]
    fn an_apply_is_created_updated_or_unchanged() {
        let after = meta(Some("7"), Some(2));
        assert_eq!(applied(None, &meta(Some("1"), Some(1))), Applied::Created);
        assert_eq!(applied(None, &after), Applied::Updated);
        assert_eq!(
            applied(Some(&meta(Some("6"), Some(1))), &after),
            Applied::Updated
        );
        assert_eq!(
            applied(Some(&meta(Some("7"), Some(2))), &after),
            Applied::Unchanged
        );
    }

    #[test]
    fn the_status_names_only_a_wasm_plugin_that_exists_and_is_ours() {
        let invalid = Outcome::Invalid("spec: bad".into());
        assert_eq!(
            status_wasm_plugin(&Outcome::Applied, "w", || false).as_deref(),
            Some("w")
        );
        assert_eq!(status_wasm_plugin(&invalid, "w", || false), None);
        assert_eq!(
            status_wasm_plugin(&invalid, "w", || true).as_deref(),
            Some("w")
        );
        assert_eq!(
            status_wasm_plugin(&Outcome::Conflict("x".into()), "w", || false),
            None
        );
        assert_eq!(
            status_wasm_plugin(&Outcome::IstioNotInstalled, "w", || false),
            None
        );
    }

    #[test]
    fn a_status_change_lists_what_moved_and_a_repeat_is_none() {
        let failed = conditions(&Outcome::ApplyFailed("a".into()), &[]);
        let first = status_change(&[], &failed).expect("all new");
        assert_eq!(
            first.changed,
            "Accepted=True (Accepted), Programmed=False (ApplyFailed), Ready=False (ApplyFailed)"
        );
        assert!(!first.ready);
        assert!(first.message.ends_with(": a"), "{}", first.message);
        let again = conditions(&Outcome::ApplyFailed("b".into()), &failed);
        assert_eq!(status_change(&failed, &again), None, "a new message only");
        let ready = conditions(&Outcome::Applied, &again);
        let change = status_change(&again, &ready).expect("ready now");
        assert_eq!(
            change.changed,
            "Programmed=True (WasmPluginApplied), Ready=True (Ready)"
        );
        assert!(change.ready);
    }
}
