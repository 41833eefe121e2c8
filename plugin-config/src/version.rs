//! The contract version on the wire: an optional top-level `version` (absent = 1), read before
//! anything else so a configuration from a newer operator is refused for what it is.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Header, Invalid, Match, PluginConfig, RateLimit};

/// The pluginConfig contract version this crate reads. A filter built with it accepts
/// configurations of this version and older, and refuses newer ones with
/// [`ConfigError::NewerVersion`]. Bump it with any change an older filter cannot read (a new
/// field: unknown fields are refused), and write `version` from then on.
///
/// 1: the first contract. 2: `rateLimit.tokens` + `rateLimit.periodSeconds`, `match` and
/// `rateLimit.service`.
pub const CONTRACT_VERSION: u32 = 2;

/// The version a configuration without `version` has. Written as absent, so filters older
/// than the `version` field itself (which refuse unknown fields) still read it.
pub(crate) const FIRST_VERSION: u32 = 1;
/// The version that reads `rateLimit.tokens` + `rateLimit.periodSeconds`, `match` and
/// `rateLimit.service`.
pub(crate) const SECOND_VERSION: u32 = 2;

/// [`PluginConfig`] as it is written: `version` first, and only when it is not the first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Out<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    policy: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    response_headers: &'a [Header],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    remove_response_headers: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: &'a Option<RateLimit>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    matches: &'a Option<Match>,
}

impl Serialize for PluginConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let version = self.version();
        Out {
            version: (version != FIRST_VERSION).then_some(version),
            policy: &self.policy,
            response_headers: &self.response_headers,
            remove_response_headers: &self.remove_response_headers,
            rate_limit: &self.rate_limit,
            matches: &self.matches,
        }
        .serialize(serializer)
    }
}

/// [`PluginConfig`] as it is read: the same fields plus `version`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Wire {
    #[serde(default)]
    version: Option<u32>,
    policy: String,
    #[serde(default)]
    response_headers: Vec<Header>,
    #[serde(default)]
    remove_response_headers: Vec<String>,
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    #[serde(rename = "match", default)]
    matches: Option<Match>,
}

impl Wire {
    /// The configuration, if a reader of contract `supported` reads its version.
    fn into_config(self, supported: u32) -> Result<PluginConfig, ConfigError> {
        let declared = self.version.unwrap_or(FIRST_VERSION);
        if declared == 0 {
            return Err(Invalid::new("version", "must be at least 1").into());
        }
        if declared > supported {
            return Err(newer(declared, supported, None));
        }
        let config = PluginConfig {
            policy: self.policy,
            response_headers: self.response_headers,
            remove_response_headers: self.remove_response_headers,
            rate_limit: self.rate_limit,
            matches: self.matches,
        };
        // A configuration must declare what it uses: a reader of the declared version would
        // refuse it, so its writer is wrong.
        if declared < config.version() {
            return Err(Invalid::new(
                "version",
                "must be 2 or more: rateLimit.periodSeconds, rateLimit.service and match are \
                 contract 2 fields",
            )
            .into());
        }
        Ok(config)
    }
}

impl TryFrom<Wire> for PluginConfig {
    type Error = ConfigError;

    fn try_from(wire: Wire) -> Result<Self, ConfigError> {
        wire.into_config(CONTRACT_VERSION)
    }
}

/// What else is wrong with a newer configuration, read as `supported`: ` (read as version 1:
/// ...)`, or nothing.
pub(crate) struct Detail<'a>(pub Option<&'a str>, pub u32);

impl core::fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(detail) => write!(f, " (read as version {}: {detail})", self.1),
            None => Ok(()),
        }
    }
}

fn newer(found: u32, supported: u32, detail: Option<String>) -> ConfigError {
    ConfigError::NewerVersion {
        found,
        supported,
        detail,
    }
}

/// Parses the JSON; a version newer than [`CONTRACT_VERSION`] is reported first, with what
/// else failed as its detail (a newer contract's fields are what this reader calls unknown).
pub(crate) fn parse(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
    parse_as(bytes, CONTRACT_VERSION)
}

/// [`parse`] as a reader of contract `supported` decides on the version (the tests use it to
/// show what an older filter does with a newer configuration).
pub(crate) fn parse_as(bytes: &[u8], supported: u32) -> Result<PluginConfig, ConfigError> {
    match serde_json::from_slice::<Wire>(bytes) {
        Ok(wire) => wire.into_config(supported),
        Err(error) => match top_level_version(bytes) {
            Some(found) if found > supported => {
                Err(newer(found, supported, Some(error.to_string())))
            }
            _ => Err(error.into()),
        },
    }
}

/// The integer value of the top-level `"version"` key of a JSON object that may not parse as
/// any version this crate knows; `None` if there is none (or it is not a plain integer that
/// fits). A scan rather than a second serde parse: that would add ~5 KB to the filter module.
pub(crate) fn top_level_version(json: &[u8]) -> Option<u32> {
    const KEY: &[u8] = b"\"version\"";
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    let mut string_start = 0;
    for (at, &byte) in json.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    let string = json.get(string_start..=at)?;
                    if depth == 1 && string == KEY {
                        let rest = json.get(at.checked_add(1)?..)?.trim_ascii_start();
                        if let Some(value) = rest.strip_prefix(b":") {
                            return leading_u32(value.trim_ascii_start());
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                string_start = at;
            }
            b'{' | b'[' => depth = depth.saturating_add(1),
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The decimal digits at the start of `bytes` as a u32, if they are followed by a JSON value
/// end (not a fraction or exponent) and fit.
fn leading_u32(bytes: &[u8]) -> Option<u32> {
    let mut value: Option<u32> = None;
    for &byte in bytes {
        if !byte.is_ascii_digit() {
            if matches!(byte, b'.' | b'e' | b'E') {
                return None;
            }
            break;
        }
        let digit = u32::from(byte - b'0');
        value = Some(value.unwrap_or(0).checked_mul(10)?.checked_add(digit)?);
    }
    value
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_contract_one_reader_refuses_a_period_config_and_reads_a_per_second_one() {
        let per_minute = PluginConfig {
            policy: "default/login".into(),
            response_headers: Vec::new(),
            remove_response_headers: Vec::new(),
            rate_limit: Some(RateLimit::per_period(5, 60, 5)),
            matches: None,
        };
        let json = per_minute.to_json().unwrap();
        let error = parse_as(json.as_bytes(), FIRST_VERSION).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::NewerVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with(
                "pluginConfig is contract version 2, newer than version 1 that this filter \
                 reads: upgrade the filter image"
            ),
            "{error}"
        );
        let per_second = PluginConfig {
            rate_limit: Some(RateLimit::new(5, 5)),
            ..per_minute
        };
        let json = per_second.to_json().unwrap();
        assert_eq!(
            parse_as(json.as_bytes(), FIRST_VERSION).unwrap(),
            per_second
        );
    }
}
