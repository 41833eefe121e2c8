//! A validated `PluginConfig` compiled, once per `on_configure`, into what the request path
//! needs: header lists, pre-rendered rate-limit header parts, metric names, shared-data keys.

use hrl_plugin_config::{Key, PluginConfig, RateLimitHeaders};

use crate::headers::{Family, HeaderStyle, policy_name};
use crate::key::KeySource;
use crate::limiter::Rate;
use crate::matching::RequestMatch;
use crate::remote::Remote;

/// Everything the filter does for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `namespace/name` of the HeaderRateLimit.
    pub id: String,
    /// Set (replace) on every response.
    pub response_headers: Vec<(String, String)>,
    /// Removed from every response (before `response_headers` are set).
    pub remove_headers: Vec<String>,
    /// The rate limit, if any.
    pub limit: Option<Limit>,
    /// The requests the policy applies to; `None` = every request.
    pub matcher: Option<RequestMatch>,
    /// Counter names, in `Counter` order.
    pub metric_names: [String; COUNTERS],
}

/// A compiled `rateLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Refill rate and capacity.
    pub rate: Rate,
    /// What buckets are keyed on.
    pub key: KeySource,
    /// Slots for keyed buckets.
    pub max_keys: u32,
    /// Local reply status.
    pub status_code: u32,
    /// Local reply body.
    pub body: String,
    /// Extra headers on the local reply.
    pub headers: Vec<(String, String)>,
    /// Rate-limit headers, fixed parts rendered.
    pub style: HeaderStyle,
    /// false = dry run.
    pub enforce: bool,
    /// Shared-data keys.
    pub keys: StoreKeys,
    /// The rate limit service that counts instead of the local bucket (`scope: Cluster`).
    pub remote: Option<Remote>,
}

impl Limit {
    /// The buckets with fixed names this policy uses, created by `shared::prepare` in
    /// `on_configure`: the single bucket, or the missing-key and overflow buckets when keyed.
    pub fn named_buckets(&self) -> Vec<&str> {
        match self.key {
            KeySource::None => vec![self.keys.single.as_str()],
            KeySource::Header(_) | KeySource::ClientAddress => {
                vec![self.keys.missing.as_str(), self.keys.overflow.as_str()]
            }
        }
    }
}

/// Shared-data keys of one policy (see README: `hrl/v1/<namespace>/<name>/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreKeys {
    /// `key: none`.
    pub single: String,
    /// Keyed policy, request without a key.
    pub missing: String,
    /// Keyed policy, no free slot.
    pub overflow: String,
    /// Keyed slots: this prefix + the slot number.
    pub slot_prefix: String,
}

impl StoreKeys {
    /// The keys of the policy `namespace/name`.
    pub fn new(policy: &str) -> StoreKeys {
        let base = ["hrl/v1/", policy, "/"].concat();
        StoreKeys {
            single: [&base, "b"].concat(),
            missing: [&base, "m"].concat(),
            overflow: [&base, "o"].concat(),
            slot_prefix: [&base, "s/"].concat(),
        }
    }

    /// The key of a keyed slot.
    pub fn slot(&self, slot: u32) -> String {
        // One allocation, no `core::fmt`: this runs for every probe of a keyed request.
        let mut key = String::with_capacity(self.slot_prefix.len().saturating_add(10));
        key.push_str(&self.slot_prefix);
        crate::headers::push_decimal(&mut key, u64::from(slot));
        key
    }
}

/// The counters every policy defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Requests seen.
    Requests = 0,
    /// Requests let through (token taken, headers-only policy, or store gave up).
    Allowed = 1,
    /// Requests answered with the local reply.
    Limited = 2,
    /// Requests that would have been limited in dry run.
    DryRunLimited = 3,
    /// Shared-data updates that ran out of attempts.
    CasExhausted = 4,
    /// Keyed requests that used the overflow bucket.
    Overflow = 5,
    /// Requests the policy's `match` left alone (not counted in `requests`).
    Skipped = 6,
    /// Rate limit service calls that failed (transport, gRPC status, `UNKNOWN`, malformed).
    RlsErrors = 7,
    /// Rate limit service calls that timed out.
    RlsTimeouts = 8,
}

/// Number of counters.
pub const COUNTERS: usize = 9;
const COUNTER_SUFFIXES: [&str; COUNTERS] = [
    "requests",
    "allowed",
    "limited",
    "dry_run_limited",
    "cas_exhausted",
    "overflow",
    "skipped",
    "rls_errors",
    "rls_timeouts",
];

/// `hrl.<namespace>.<name>.<counter>` for every counter.
pub fn metric_names(policy: &str) -> [String; COUNTERS] {
    let base = ["hrl.", &policy.replace('/', "."), "."].concat();
    COUNTER_SUFFIXES.map(|suffix| [base.as_str(), suffix].concat())
}

impl Policy {
    /// Compile a validated configuration.
    pub fn compile(config: &PluginConfig) -> Policy {
        let pairs = |headers: &[hrl_plugin_config::Header]| {
            headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect::<Vec<_>>()
        };
        let limit = config.rate_limit.as_ref().map(|rl| {
            let rate = Rate::per_period(rl.tokens, rl.period_seconds, rl.burst);
            let remote = rl
                .service
                .as_ref()
                .and_then(|service| Remote::compile(service, rl.tokens, rl.period_seconds));
            // A service counts `tokens` per fixed window: the headers say so (q = tokens,
            // w = the window), not the unused local burst.
            let shown = match &remote {
                Some(_) => Rate::per_period(rl.tokens, rl.period_seconds, rl.tokens),
                None => rate,
            };
            let family = match rl.rate_limit_headers {
                RateLimitHeaders::Ietf => Family::Ietf,
                RateLimitHeaders::Draft03 => Family::Draft03,
                RateLimitHeaders::None => Family::None,
            };
            Limit {
                rate,
                key: match &rl.key {
                    Key::None => KeySource::None,
                    Key::Header(name) => KeySource::Header(name.to_ascii_lowercase()),
                    Key::ClientAddress => KeySource::ClientAddress,
                },
                max_keys: rl.max_keys.max(1),
                status_code: u32::from(rl.status_code),
                body: rl.body.clone(),
                headers: pairs(&rl.headers),
                style: HeaderStyle::compile(family, policy_name(&config.policy), &shown),
                enforce: rl.enforce,
                keys: StoreKeys::new(&config.policy),
                remote,
            }
        });
        Policy {
            id: config.policy.clone(),
            response_headers: pairs(&config.response_headers),
            remove_headers: config.remove_response_headers.clone(),
            limit,
            matcher: config.matches.as_ref().and_then(RequestMatch::compile),
            metric_names: metric_names(&config.policy),
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
