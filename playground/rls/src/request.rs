//! The request parsed once, and the answer built from counts: pure, time passed in.
//!
//! Mirrors envoyproxy/ratelimit: `src/config/config_impl.go` `GetLimit` (a descriptor's
//! `limit` override is the limit, for a configured domain only), `src/utils/utilities.go`
//! `UnitToDivider`, `CalculateReset` and `GetHitsAddends`, `src/limiter/cache_key.go`
//! `GenerateCacheKey` (windows aligned to the Unix epoch) and `src/limiter/base_limiter.go`
//! `GetResponseDescriptorStatus`.

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

use crate::Error;

/// One request: its domain and descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The domain (Limitador's namespace).
    pub domain: String,
    /// The descriptors, in request order.
    pub descriptors: Vec<Descriptor>,
}

/// One descriptor: what it counts and against which limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `(key, value)` entries: with the domain, the counter's identity.
    pub entries: Vec<(String, String)>,
    /// The limit, or none: then the answer is OK without counting.
    pub limit: Option<Limit>,
    /// Hits this request adds.
    pub hits: u64,
}

/// A limit from a descriptor's override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per window.
    pub requests_per_unit: u32,
    /// The unit, as answered in `current_limit`.
    pub unit: Unit,
}

impl Limit {
    /// The window length in seconds (`UnitToDivider`).
    pub fn window_seconds(&self) -> u64 {
        match self.unit {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 60 * 60,
            Unit::Day => 60 * 60 * 24,
            Unit::Week => 60 * 60 * 24 * 7,
            Unit::Month => 60 * 60 * 24 * 30,
            Unit::Year => 60 * 60 * 24 * 365,
            // Never built: `Check::parse` refuses it.
            Unit::Unknown => 1,
        }
    }

    /// The window holding `now` (Unix seconds).
    pub fn window(&self, now: u64) -> Window {
        let seconds = self.window_seconds();
        Window {
            start: now / seconds * seconds,
            until_reset: seconds - now % seconds,
        }
    }
}

/// A fixed window aligned to the Unix epoch, like envoyproxy/ratelimit's cache keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Unix second it started at: part of the counter's identity.
    pub start: u64,
    /// Whole seconds until it ends (`CalculateReset`), 1 at least.
    pub until_reset: u64,
}

/// How counting a descriptor went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// No limit applies: nothing was counted.
    Unlimited,
    /// Admitted; this many remain in the window.
    Within {
        /// Remaining after this request's hits.
        remaining: u64,
    },
    /// Over the limit.
    Over,
}

impl Check {
    /// Parses a request for a service configured with `domains`. A domain not among them has
    /// no limits: every descriptor answers OK, as envoyproxy/ratelimit answers an unknown
    /// domain (its overrides are not looked at either).
    pub fn parse(request: RateLimitRequest, domains: &[String]) -> Result<Self, Error> {
        if request.domain.is_empty() {
            return Err(Error::EmptyDomain);
        }
        if request.descriptors.is_empty() {
            return Err(Error::NoDescriptors);
        }
        let configured = domains.contains(&request.domain);
        // A zero request-level addend means "not set": 1 (`GetHitsAddends`).
        let request_hits = u64::from(request.hits_addend.max(1));
        let descriptors = request
            .descriptors
            .into_iter()
            .enumerate()
            .map(|(index, descriptor)| {
                let limit = match descriptor.limit {
                    Some(limit) if configured => Some(Limit {
                        requests_per_unit: limit.requests_per_unit,
                        // The override's envoy.type.v3.RateLimitUnit has the response unit's
                        // numbers (envoyproxy/ratelimit converts by number, too).
                        unit: match Unit::try_from(limit.unit) {
                            Ok(Unit::Unknown) | Err(_) => {
                                return Err(Error::UnknownUnit {
                                    index,
                                    unit: limit.unit,
                                });
                            }
                            Ok(unit) => unit,
                        },
                    }),
                    _ => None,
                };
                Ok(Descriptor {
                    entries: descriptor
                        .entries
                        .into_iter()
                        .map(|entry| (entry.key, entry.value))
                        .collect(),
                    limit,
                    // A set per-descriptor addend wins, zero included (check only).
                    hits: descriptor
                        .hits_addend
                        .map_or(request_hits, |addend| addend.value),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            domain: request.domain,
            descriptors,
        })
    }
}

/// The status of one descriptor (`GetResponseDescriptorStatus`).
pub fn descriptor_status(limit: Option<&Limit>, count: Count, now: u64) -> DescriptorStatus {
    let Some(limit) = limit.filter(|_| count != Count::Unlimited) else {
        return DescriptorStatus {
            code: Code::Ok.into(),
            ..DescriptorStatus::default()
        };
    };
    let (code, remaining) = match count {
        Count::Within { remaining } => (Code::Ok, remaining),
        Count::Over | Count::Unlimited => (Code::OverLimit, 0),
    };
    DescriptorStatus {
        code: code.into(),
        current_limit: Some(RateLimit {
            name: String::new(),
            requests_per_unit: limit.requests_per_unit,
            unit: limit.unit.into(),
        }),
        limit_remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        duration_until_reset: Some(ProtoDuration {
            seconds: i64::try_from(limit.window(now).until_reset).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        quota: None,
    }
}

/// The answer: OVER_LIMIT when any descriptor is over, else OK.
pub fn response(statuses: Vec<DescriptorStatus>) -> RateLimitResponse {
    let over = statuses
        .iter()
        .any(|status| status.code == i32::from(Code::OverLimit));
    RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok }.into(),
        statuses,
        ..RateLimitResponse::default()
    }
}

#[cfg(test)]
mod tests;
