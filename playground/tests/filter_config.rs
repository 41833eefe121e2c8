//! ABI tests of the real module: configurations it refuses, the contract version, and the
//! counter that makes a refusal visible.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use hrl_playground::{Error, Host, LogLevel, MetricKind, Plugin};

/// Starts the filter with this pluginConfig on `workers` VMs; the refusal's log lines and
/// metrics.
fn refused(json: &str) -> (Vec<String>, Vec<(String, MetricKind, u64)>) {
    let error = Host::builder(common::filter())
        .log_level(LogLevel::Debug)
        .plugin(Plugin::new("default.skew", json.as_bytes().to_vec()))
        .build()
        .expect_err("the filter refuses this config");
    match error {
        Error::Configure { logs, metrics, .. } => (logs, metrics),
        other => panic!("expected Configure, got {other}"),
    }
}

fn rejected(metrics: &[(String, MetricKind, u64)]) -> Option<u64> {
    metrics
        .iter()
        .find(|(name, kind, _)| name == "hrl.config_rejected" && *kind == MetricKind::Counter)
        .map(|(_, _, value)| *value)
}

const MINIMAL: &str = r#""policy":"default/skew","rateLimit":{"tokensPerSecond":1,"burst":1}"#;

#[test]
fn a_config_from_a_newer_operator_is_refused_with_one_line_naming_both_versions() {
    let (logs, metrics) = refused(&format!(r#"{{"version":3,{MINIMAL}}}"#));
    assert_eq!(
        logs,
        vec![
            "error: hrl-filter: pluginConfig is contract version 3, newer than version 2 that this \
             filter reads: upgrade the filter image to the operator's release"
                .to_string()
        ]
    );
    assert_eq!(rejected(&metrics), Some(1));
}

#[test]
fn a_newer_config_with_fields_this_filter_does_not_know_leads_with_the_version() {
    let (logs, metrics) = refused(&format!(
        r#"{{{MINIMAL},"failureMode":"open","version":3}}"#
    ));
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].starts_with(
            "error: hrl-filter: pluginConfig is contract version 3, newer than version 2"
        ),
        "{logs:?}"
    );
    assert!(logs[0].contains("unknown field `failureMode`"), "{logs:?}");
    assert_eq!(rejected(&metrics), Some(1));
}

#[test]
fn every_refused_config_is_counted() {
    for json in [
        format!(r#"{{{MINIMAL},"failureMode":"open"}}"#),
        r#"{"policy":"default/skew","rateLimit":{"tokensPerSecond":1,"burst":0}}"#.to_string(),
        format!(r#"{{"version":0,{MINIMAL}}}"#),
        String::new(),
    ] {
        let (logs, metrics) = refused(&json);
        assert_eq!(logs.len(), 1, "{json}: {logs:?}");
        assert!(!logs[0].contains("contract version"), "{json}: {logs:?}");
        assert_eq!(rejected(&metrics), Some(1), "{json}");
    }
}

#[test]
fn a_config_of_the_current_version_is_accepted_with_or_without_version() {
    for json in [
        format!(r#"{{{MINIMAL}}}"#),
        format!(r#"{{"version":1,{MINIMAL}}}"#),
    ] {
        let host = Host::builder(common::filter())
            .plugin(Plugin::new("default.skew", json.into_bytes()))
            .build()
            .unwrap();
        assert_eq!(host.metric("hrl.config_rejected"), None, "nothing refused");
    }
}
