//! The contract between `hrl-operator` and the `hrl-filter` proxy-wasm module.
//!
//! [`PluginConfig`] is the JSON the operator writes into `WasmPlugin.spec.pluginConfig` and the
//! filter reads once in `on_configure`. It is camelCase, rejects unknown fields (a typo must not
//! silently drop a limit), and is checked by [`PluginConfig::validate`], whose errors name the
//! field and the rule. It carries a contract version ([`CONTRACT_VERSION`], an optional
//! top-level `version`, absent = 1): a filter refuses a configuration newer than it reads with
//! [`ConfigError::NewerVersion`], which tells to upgrade the filter. This crate has no kube, tokio or proxy-wasm dependency and builds for
//! native targets and for `wasm32-wasip1`.
#![forbid(unsafe_code)]

mod matching;
mod rate;
mod rules;
mod service;
mod version;

use serde::{Deserialize, Serialize};

pub use matching::{
    HeaderMatch, MAX_HOST_BYTES, MAX_MATCH_ENTRIES, MAX_METHOD_BYTES, MAX_PATH_BYTES, Match,
    PathMatch,
};
pub use rate::{
    MAX_PERIOD_SECONDS, MAX_SPLIT, MAX_TOKENS, MAX_WIRE_PERIOD_SECONDS, MIN_PERIOD_SECONDS,
};
pub use rules::{
    MAX_BODY_BYTES, MAX_BURST, MAX_HEADER_VALUE_BYTES, MAX_HEADERS, MAX_MAX_KEYS, MAX_POLICY_BYTES,
    MAX_TOKENS_PER_SECOND, MIN_MAX_KEYS, check_header_name, check_header_value, check_policy,
};
pub use service::{
    DEFAULT_TIMEOUT_MS, FailureMode, MAX_SERVICE_NAME_BYTES, MAX_TIMEOUT_MS, MAX_UPSTREAM_BYTES,
    RateLimitService, SERVICE_PERIODS,
};
pub use version::CONTRACT_VERSION;

/// Keyed buckets tracked per policy per proxy when `maxKeys` is not set.
pub const DEFAULT_MAX_KEYS: u32 = 10_000;
/// Status code of a limited response when `statusCode` is not set.
pub const DEFAULT_STATUS_CODE: u16 = 429;
/// Body of a limited response when `body` is not set.
pub const DEFAULT_BODY: &str = "rate limited\n";

/// The whole filter configuration for one HeaderRateLimit. Read through the wire form (the
/// same fields plus `version`, unknown fields refused); written with `version` only when
/// [`PluginConfig::version`] is above 1, so filters older than the `version` field read every
/// configuration they can.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "version::Wire")]
pub struct PluginConfig {
    /// The owning HeaderRateLimit as `namespace/name`; scopes shared data, metrics and logs.
    pub policy: String,
    /// Headers set (replacing any existing value) on every response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<Header>,
    /// Header names removed from every response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_response_headers: Vec<String>,
    /// The token bucket; absent means headers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Which requests the policy (headers and limit) applies to; absent = every request.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Match>,
}

/// One response header: a lowercase name and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Lowercase RFC 9110 field name.
    pub name: String,
    /// Field value, without control characters.
    pub value: String,
}

impl Header {
    /// A header from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A token bucket: `burst` tokens of capacity, refilled continuously at `tokens` per
/// `period_seconds`. On the wire a 1 s period is `"tokensPerSecond": N` (contract 1) and any
/// other is `"tokens": N, "periodSeconds": P` (contract 2); exactly one form is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "rate::Wire", into = "rate::Wire")]
pub struct RateLimit {
    /// Tokens added per period (at least 1).
    pub tokens: u32,
    /// The period `tokens` refill over, in seconds (1..=864,000,000: a day split across
    /// `MAX_SPLIT` proxies).
    pub period_seconds: u32,
    /// Bucket capacity: the largest burst admitted at once (at least 1).
    pub burst: u32,
    /// What separates one bucket from another.
    #[serde(default)]
    pub key: Key,
    /// Keyed buckets kept per proxy; further keys share one overflow bucket.
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// Status code of a limited response (400..=599).
    #[serde(default = "default_status_code")]
    pub status_code: u16,
    /// Body of a limited response.
    #[serde(default = "default_body")]
    pub body: String,
    /// Extra headers on limited responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// Which rate-limit headers every response carries.
    #[serde(default)]
    pub rate_limit_headers: RateLimitHeaders,
    /// `false` is a dry run: count and send headers, never reject.
    #[serde(default = "default_enforce")]
    pub enforce: bool,
    /// A rate limit service that counts for every proxy (fixed windows of `period_seconds`,
    /// `tokens` per window; `burst` unused); absent = this proxy's own bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<RateLimitService>,
}

impl RateLimit {
    /// A bucket refilled at `tokens_per_second` (a 1 s period) with this burst and every other
    /// field at its default.
    pub fn new(tokens_per_second: u32, burst: u32) -> Self {
        Self::per_period(tokens_per_second, 1, burst)
    }

    /// A bucket refilled at `tokens` per `period_seconds` with this burst and every other field
    /// at its default.
    pub fn per_period(tokens: u32, period_seconds: u32, burst: u32) -> Self {
        Self {
            tokens,
            period_seconds,
            burst,
            key: Key::None,
            max_keys: DEFAULT_MAX_KEYS,
            status_code: DEFAULT_STATUS_CODE,
            body: DEFAULT_BODY.to_owned(),
            headers: Vec::new(),
            rate_limit_headers: RateLimitHeaders::Ietf,
            enforce: true,
            service: None,
        }
    }
}

/// How requests are split into buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Key {
    /// One bucket per proxy for the policy.
    #[default]
    None,
    /// One bucket per value of this request header; requests without it share one bucket.
    Header(String),
    /// One bucket per downstream IP address (`source.address`, port stripped).
    ClientAddress,
}

/// The rate-limit response header format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RateLimitHeaders {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
    #[default]
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`, as Envoy emits them.
    Draft03,
    /// No rate-limit headers.
    None,
}

fn default_max_keys() -> u32 {
    DEFAULT_MAX_KEYS
}
fn default_status_code() -> u16 {
    DEFAULT_STATUS_CODE
}
fn default_body() -> String {
    DEFAULT_BODY.to_owned()
}
fn default_enforce() -> bool {
    true
}

/// A rule a configuration breaks: the field (JSON path) and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// Path of the offending field, e.g. `rateLimit.headers[1].name`.
    pub field: String,
    /// The rule, e.g. `must be at least 1`.
    pub rule: String,
}

impl Invalid {
    /// A violation of `rule` by `field`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// Why a pluginConfig could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON of the expected shape (serde names the field and position).
    #[error("pluginConfig is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// Well-formed, but a field breaks a rule.
    #[error("pluginConfig is not valid: {0}")]
    Invalid(#[from] Invalid),
    /// Written for a newer contract than this crate reads (an operator ahead of the filter).
    #[error(
        "pluginConfig is contract version {found}, newer than version {supported} that this \
         filter reads: upgrade the filter image to the operator's release{}",
        version::Detail(detail.as_deref(), *supported)
    )]
    NewerVersion {
        /// The configuration's `version`.
        found: u32,
        /// [`CONTRACT_VERSION`] of this build.
        supported: u32,
        /// Why it does not parse as the supported version either, if it does not.
        detail: Option<String>,
    },
}

impl PluginConfig {
    /// Parses and validates the JSON the proxy hands the filter. A `version` newer than
    /// [`CONTRACT_VERSION`] is [`ConfigError::NewerVersion`], before any other error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = version::parse(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// The contract version of this configuration: the oldest that reads every field it uses
    /// (2 for a period other than 1 s, a `match` or a rate limit service, else 1).
    pub fn version(&self) -> u32 {
        let second = match &self.rate_limit {
            Some(limit) => limit.period_seconds != 1 || limit.service.is_some(),
            None => false,
        };
        if second || self.matches.is_some() {
            version::SECOND_VERSION
        } else {
            version::FIRST_VERSION
        }
    }

    /// Validates, then renders the JSON the operator writes into `pluginConfig` (`version` is
    /// absent while it is the first one).
    pub fn to_json(&self) -> Result<String, ConfigError> {
        self.validate()?;
        Ok(serde_json::to_string(self)?)
    }

    /// Checks every rule; the first violation names its field and rule.
    pub fn validate(&self) -> Result<(), Invalid> {
        rules::validate(self)
    }
}
