//! The two wire forms of a rate: `tokensPerSecond` (contract 1, period 1 s) and `tokens` +
//! `periodSeconds` (contract 2). Read as either, exactly one; written as the first whenever the
//! period is 1 s so filters that predate `periodSeconds` keep reading those configurations.

use serde::{Deserialize, Serialize};

use crate::{
    Header, Invalid, Key, RateLimit, RateLimitHeaders, RateLimitService, default_body,
    default_enforce, default_max_keys, default_status_code,
};

/// Shortest period of a rate.
pub const MIN_PERIOD_SECONDS: u32 = 1;
/// Longest period of a rate as a HeaderRateLimit writes it (one day).
pub const MAX_PERIOD_SECONDS: u32 = 86_400;
/// Most proxies one `scope: Workload` rate is split across.
pub const MAX_SPLIT: u32 = 10_000;
/// Longest `periodSeconds` on the wire: a one-day rate split across [`MAX_SPLIT`] proxies (the
/// operator writes a proxy's share of `T` per `P` as `T` per `P * R`).
pub const MAX_WIRE_PERIOD_SECONDS: u32 = MAX_PERIOD_SECONDS * MAX_SPLIT;
/// Most `tokens` per period (`tokens / periodSeconds` is also at most `MAX_TOKENS_PER_SECOND`).
pub const MAX_TOKENS: u32 = 10_000_000;

/// [`RateLimit`] as it is on the wire.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period_seconds: Option<u32>,
    burst: u32,
    #[serde(default)]
    key: Key,
    #[serde(default = "default_max_keys")]
    max_keys: u32,
    #[serde(default = "default_status_code")]
    status_code: u16,
    #[serde(default = "default_body")]
    body: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<Header>,
    #[serde(default)]
    rate_limit_headers: RateLimitHeaders,
    #[serde(default = "default_enforce")]
    enforce: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<RateLimitService>,
}

impl TryFrom<Wire> for RateLimit {
    type Error = Invalid;

    fn try_from(wire: Wire) -> Result<Self, Invalid> {
        // One message for both, neither and half of the general form: one string less in the
        // filter module, which is at its size budget.
        let (tokens, period_seconds) =
            match (wire.tokens_per_second, wire.tokens, wire.period_seconds) {
                (Some(per_second), None, None) => (per_second, 1),
                (None, Some(tokens), Some(period)) => (tokens, period),
                _ => {
                    return Err(Invalid::new(
                        "rateLimit.tokensPerSecond",
                        "exactly one rate form must be set: rateLimit.tokensPerSecond, or \
                         rateLimit.tokens with rateLimit.periodSeconds",
                    ));
                }
            };
        Ok(RateLimit {
            tokens,
            period_seconds,
            burst: wire.burst,
            key: wire.key,
            max_keys: wire.max_keys,
            status_code: wire.status_code,
            body: wire.body,
            headers: wire.headers,
            rate_limit_headers: wire.rate_limit_headers,
            enforce: wire.enforce,
            service: wire.service,
        })
    }
}

impl From<RateLimit> for Wire {
    fn from(limit: RateLimit) -> Wire {
        let per_second = limit.period_seconds == 1;
        Wire {
            tokens_per_second: per_second.then_some(limit.tokens),
            tokens: (!per_second).then_some(limit.tokens),
            period_seconds: (!per_second).then_some(limit.period_seconds),
            burst: limit.burst,
            key: limit.key,
            max_keys: limit.max_keys,
            status_code: limit.status_code,
            body: limit.body,
            headers: limit.headers,
            rate_limit_headers: limit.rate_limit_headers,
            enforce: limit.enforce,
            service: limit.service,
        }
    }
}
