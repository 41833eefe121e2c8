//! `scope: Cluster`: a rate limit service (Envoy RLS v3) counts for every proxy. Pure: what to
//! ask (the request bytes and where they go, compiled once per configuration) and what its
//! answer, or its failure, means for the request. The host calls are in `lib.rs`/`host.rs`.

use std::time::Duration;

use hrl_plugin_config::{FailureMode, RateLimitService};

use crate::headers::Level;
use crate::key::BucketKey;
use crate::rls::{self, Code, Descriptor, Override, Unit};

/// Descriptor entry naming the policy (`namespace/name`).
pub const POLICY_ENTRY: &str = "hrl_policy";
/// Descriptor entry carrying a keyed policy's key (hex of the key material).
pub const KEY_ENTRY: &str = "hrl_key";

/// A compiled `rateLimit.service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The serialized `GrpcService` (cluster and authority) `proxy_grpc_call` is given.
    pub upstream: String,
    /// RLS domain.
    pub domain: String,
    /// The policy's limit, sent as the descriptor's override.
    pub limit: Override,
    /// The window's length in seconds (for `t` when the service does not say).
    pub window_seconds: u64,
    /// How long the request waits.
    pub timeout: Duration,
    /// What a request gets when the service fails.
    pub failure_mode: FailureMode,
}

impl Remote {
    /// The compiled service for `tokens` per `period_seconds`; `None` when the period is not
    /// an RLS unit or the upstream cannot be written (validation refuses both first).
    pub fn compile(service: &RateLimitService, tokens: u32, period_seconds: u32) -> Option<Remote> {
        let unit = match period_seconds {
            1 => Unit::Second,
            60 => Unit::Minute,
            3_600 => Unit::Hour,
            86_400 => Unit::Day,
            _ => return None,
        };
        Some(Remote {
            upstream: rls::grpc_service(&service.cluster, &service.authority)?,
            domain: service.domain.clone(),
            limit: Override::new(tokens, unit)?,
            window_seconds: unit.seconds(),
            timeout: Duration::from_millis(u64::from(service.timeout_ms)),
            failure_mode: service.failure_mode,
        })
    }

    /// The `RateLimitRequest` for one request of `policy` (`namespace/name`) with `key`:
    /// one descriptor, the policy and, for a keyed request, its key, with the override.
    pub fn request(&self, policy: &str, key: &BucketKey, out: &mut Vec<u8>) {
        let mut hex = String::new();
        let entries_keyed;
        let entries_single = [(POLICY_ENTRY, policy)];
        let entries: &[(&str, &str)] = match key {
            BucketKey::Keyed(material) => {
                push_hex(&mut hex, material);
                entries_keyed = [(POLICY_ENTRY, policy), (KEY_ENTRY, hex.as_str())];
                &entries_keyed
            }
            // Keyless requests of a keyed policy share the policy-only descriptor, as they
            // share the "missing" bucket locally.
            BucketKey::Single | BucketKey::Missing => &entries_single,
        };
        let descriptor = Descriptor {
            entries,
            limit: Some(self.limit),
        };
        rls::encode_request(&self.domain, &[descriptor], 1, out);
    }

    /// What the service's answer means. `status` is the gRPC status of the call (0 = OK),
    /// `waited` the time since the call started, `body` the response message.
    pub fn judge(&self, status: u32, waited: Duration, body: Option<&[u8]>) -> Answer {
        if self.is_timeout(status, waited) {
            return Answer::Failed(Failure::Timeout);
        }
        if status != 0 {
            return Answer::Failed(Failure::Error);
        }
        let Some(Ok(response)) = body.map(rls::decode_response) else {
            return Answer::Failed(Failure::Error);
        };
        let level = |status: Option<rls::Status>| {
            let Some(status) = status else {
                return Level {
                    remaining: 0,
                    reset_seconds: self.window_seconds,
                };
            };
            let reset = status.reset.map_or(self.window_seconds, |reset| {
                // Whole seconds, rounded up: `t` and `Retry-After` never promise too early.
                reset
                    .as_secs()
                    .saturating_add(u64::from(reset.subsec_nanos() > 0))
            });
            Level {
                remaining: u64::from(status.limit_remaining),
                reset_seconds: reset,
            }
        };
        match response.overall {
            Code::Ok => Answer::Allowed(level(response.status)),
            Code::OverLimit => Answer::Limited(level(response.status)),
            Code::Unknown => Answer::Failed(Failure::Error),
        }
    }

    /// The answer a failure stands in for, under `failureMode`.
    pub fn on_failure(&self) -> Option<Level> {
        match self.failure_mode {
            FailureMode::Allow => None,
            // A second, as an unavailable service may be back soon.
            FailureMode::Deny => Some(Level {
                remaining: 0,
                reset_seconds: 1,
            }),
        }
    }
}

/// gRPC `DEADLINE_EXCEEDED`.
pub const DEADLINE_EXCEEDED: u32 = 4;
/// gRPC `UNAVAILABLE`.
pub const UNAVAILABLE: u32 = 14;

impl Remote {
    /// The call ran out of time. Envoy closes a timed-out call `UNAVAILABLE`, like a refused
    /// connection (`router.cc` `onUpstreamTimeoutAbort` answers `504 upstream request
    /// timeout`, which its async gRPC client maps to 14); what tells them apart is that a
    /// timeout comes no earlier than the deadline. (The message would too, but the SDK's
    /// `get_grpc_status` panics on a message that is not UTF-8.)
    fn is_timeout(&self, status: u32, waited: Duration) -> bool {
        status == DEADLINE_EXCEEDED || (status == UNAVAILABLE && waited >= self.timeout)
    }
}

/// What the service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Under the limit: what is left.
    Allowed(Level),
    /// Over the limit: when it resets.
    Limited(Level),
    /// No usable answer.
    Failed(Failure),
}

/// Why there is no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The call timed out.
    Timeout,
    /// Transport error, a gRPC error status, `UNKNOWN` or a malformed answer.
    Error,
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len().saturating_mul(2));
    for &byte in bytes {
        for nibble in [byte >> 4, byte & 0x0f] {
            if let Some(&digit) = DIGITS.get(usize::from(nibble)) {
                out.push(char::from(digit));
            }
        }
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
