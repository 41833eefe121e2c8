//! The contract version: optional on the wire (absent = 1), never written while it is 1, and a
//! newer one refused first, naming both versions and the fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hrl_plugin_config::{CONTRACT_VERSION, ConfigError, PluginConfig, RateLimit};

const MINIMAL: &str = r#""policy":"default/minimal","rateLimit":{"tokensPerSecond":5,"burst":10}"#;

fn parse(json: &str) -> Result<PluginConfig, ConfigError> {
    PluginConfig::from_json(json.as_bytes())
}

#[test]
fn the_current_contract_is_version_two() {
    assert_eq!(CONTRACT_VERSION, 2);
}

#[test]
fn an_absent_version_and_version_one_read_the_same() {
    let absent = parse(&format!("{{{MINIMAL}}}")).unwrap();
    let explicit = parse(&format!(r#"{{"version":1,{MINIMAL}}}"#)).unwrap();
    assert_eq!(absent, explicit);
    assert_eq!(absent.version(), 1);
    let last = parse(&format!(r#"{{{MINIMAL},"version":1}}"#)).unwrap();
    assert_eq!(last, absent, "the position of version does not matter");
}

#[test]
fn version_one_is_not_written_so_filters_without_the_field_still_read_it() {
    let config = PluginConfig {
        policy: "default/httpbin".into(),
        response_headers: Vec::new(),
        remove_response_headers: Vec::new(),
        rate_limit: Some(RateLimit::new(2, 2)),
        matches: None,
    };
    let value: serde_json::Value = serde_json::from_str(&config.to_json().unwrap()).unwrap();
    assert!(value.get("version").is_none(), "{value}");
    assert_eq!(parse(&config.to_json().unwrap()).unwrap(), config);
}

#[test]
fn a_newer_version_is_refused_naming_both_versions_and_the_upgrade() {
    let error = parse(&format!(r#"{{"version":3,{MINIMAL}}}"#)).unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::NewerVersion {
                found: 3,
                supported: 2,
                detail: None
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "pluginConfig is contract version 3, newer than version 2 that this filter reads: \
         upgrade the filter image to the operator's release"
    );
}

#[test]
fn a_newer_version_with_fields_this_reader_does_not_know_leads_with_the_version() {
    let json = format!(r#"{{{MINIMAL},"rateLimits":[],"version":7}}"#);
    let error = parse(&json).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "pluginConfig is contract version 7, newer than version 2 that this filter reads: \
             upgrade the filter image"
        ),
        "{message}"
    );
    assert!(
        message.contains("unknown field `rateLimits`"),
        "the detail names the field: {message}"
    );
}

#[test]
fn unknown_fields_without_a_newer_version_are_still_refused_by_name() {
    for json in [
        format!(r#"{{{MINIMAL},"rateLimits":[]}}"#),
        format!(r#"{{"version":1,{MINIMAL},"rateLimits":[]}}"#),
    ] {
        let error = parse(&json).unwrap_err();
        assert!(matches!(error, ConfigError::Json(_)), "{error:?}");
        assert!(error.to_string().contains("rateLimits"), "{error}");
    }
}

#[test]
fn version_zero_and_versions_that_are_not_unsigned_integers_are_refused() {
    let zero = parse(&format!(r#"{{"version":0,{MINIMAL}}}"#)).unwrap_err();
    assert_eq!(
        zero.to_string(),
        "pluginConfig is not valid: version: must be at least 1"
    );
    for bad in [r#""2""#, "-1", "1.5", "4294967296"] {
        let error = parse(&format!(r#"{{"version":{bad},{MINIMAL}}}"#));
        let message = match error {
            Err(ConfigError::Json(error)) => error.to_string(),
            other => panic!("version {bad}: {other:?}"),
        };
        assert!(message.contains("expected u32"), "version {bad}: {message}");
    }
    let null = parse(&format!(r#"{{"version":null,{MINIMAL}}}"#)).unwrap();
    assert_eq!(null.version(), 1, "null is absent");
}

#[test]
fn plain_serde_reads_through_the_same_version_check() {
    let newer: Result<PluginConfig, _> =
        serde_json::from_str(&format!(r#"{{"version":3,{MINIMAL}}}"#));
    let message = newer.unwrap_err().to_string();
    assert!(message.contains("contract version 3"), "{message}");
}
