//! `rateLimit.service`: a rate limit service speaking Envoy's RLS v3 protocol keeps the count
//! for every proxy (`scope: Cluster`) instead of the proxy's own bucket, and its rules.

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// Time a request waits for the service when `timeoutMs` is not set.
pub const DEFAULT_TIMEOUT_MS: u32 = 100;
/// Longest `timeoutMs`.
pub const MAX_TIMEOUT_MS: u32 = 10_000;
/// Longest `domain`, in bytes.
pub const MAX_SERVICE_NAME_BYTES: usize = 512;
/// Most bytes of `cluster` and `authority` together: the filter hands both to the proxy as one
/// small protobuf message that has to be valid UTF-8 (the SDK takes it as a `&str`), which
/// holds while every length in it is a one-byte varint.
pub const MAX_UPSTREAM_BYTES: usize = 120;
/// The periods RLS counts in (its fixed windows: a second, a minute, an hour, a day).
pub const SERVICE_PERIODS: [u32; 4] = [1, 60, 3_600, 86_400];

/// Where and how the filter asks the rate limit service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitService {
    /// The proxy's cluster for the service, as Istio names it
    /// (`outbound|8081||ratelimit.hrl-system.svc.cluster.local`).
    pub cluster: String,
    /// `:authority` of the calls: the service's host name, which the receiving sidecar routes
    /// on (a cluster name there would be rejected).
    pub authority: String,
    /// The RLS domain the limits live in.
    pub domain: String,
    /// How long a request waits for the answer, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// What a request gets when the service fails or does not answer in time.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

impl RateLimitService {
    /// A service with the default timeout and failure mode.
    pub fn new(
        cluster: impl Into<String>,
        authority: impl Into<String>,
        domain: impl Into<String>,
    ) -> Self {
        Self {
            cluster: cluster.into(),
            authority: authority.into(),
            domain: domain.into(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            failure_mode: FailureMode::Allow,
        }
    }
}

/// The answer when the service cannot give one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Let the request through (counted in `rls_errors` / `rls_timeouts`).
    #[default]
    Allow,
    /// Answer as if limited.
    Deny,
}

fn default_timeout_ms() -> u32 {
    DEFAULT_TIMEOUT_MS
}

pub(crate) fn check_service(
    service: &RateLimitService,
    period_seconds: u32,
) -> Result<(), Invalid> {
    if !SERVICE_PERIODS.contains(&period_seconds) {
        return Err(Invalid::new(
            "rateLimit.periodSeconds",
            "must be 1, 60, 3600 or 86400 with a rate limit service (RLS counts in fixed \
             windows of a second, minute, hour or day)",
        ));
    }
    let visible = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_SERVICE_NAME_BYTES
            && s.bytes().all(|b| b.is_ascii_graphic())
    };
    for (field, value) in [
        ("rateLimit.service.cluster", &service.cluster),
        ("rateLimit.service.authority", &service.authority),
        ("rateLimit.service.domain", &service.domain),
    ] {
        if !visible(value) {
            return Err(Invalid::new(
                field,
                "must be 1 to 512 visible ASCII characters",
            ));
        }
    }
    if service
        .cluster
        .len()
        .saturating_add(service.authority.len())
        > MAX_UPSTREAM_BYTES
    {
        return Err(Invalid::new(
            "rateLimit.service.cluster",
            "cluster and authority together must be at most 120 bytes",
        ));
    }
    if !(1..=MAX_TIMEOUT_MS).contains(&service.timeout_ms) {
        return Err(Invalid::new(
            "rateLimit.service.timeoutMs",
            "must be between 1 and 10000",
        ));
    }
    Ok(())
}
