//! hrl-filter: a proxy-wasm HTTP filter that sets response headers and enforces a token-bucket
//! rate limit shared by all worker threads, driven only by `pluginConfig`.
//!
//! Pure core (`limiter`, `key`, `shared`, `headers`, `policy`, `decision`, `matching`, `remote`,
//! `rls`) with time and host data passed in; `host` is the thin adapter; this file wires the
//! proxy-wasm contexts.
//!
//! Small helpers on the per-request path are `#[inline(always)]`: the module is built at
//! `opt-level = "z"`, where LLVM inlines almost nothing, and each call then costs a frame and
//! argument shuffling (measured: ~165 wasm instructions per rate-limited request).

// The module must never trap: no indexing or unchecked arithmetic outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

pub mod clock;
pub mod counts;
pub mod decision;
pub mod grpc;
pub mod headers;
pub mod host;
pub mod key;
pub mod limiter;
pub mod matching;
pub mod policy;
pub mod remote;
pub mod rls;
pub mod shared;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use hrl_plugin_config::PluginConfig;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::decision::{Decision, LocalReply, Verdict, counter_set, decide, each_response_header};
use crate::headers::{HeaderSink, Scratch};
use crate::host::{HostStore, Metrics};
use crate::key::{BucketKey, KeySource};
use crate::policy::{Counter, Limit, Policy};
use crate::remote::{Answer, Failure};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FilterRoot::default()) });
}}

/// How often each VM hands what it counted to the host (see `counts`): at most this much of
/// the counts is lost when a VM dies.
pub const FLUSH_PERIOD: Duration = Duration::from_secs(1);

/// A compiled policy and its counters, shared by the root and its HTTP contexts.
#[derive(Debug)]
struct Configured {
    policy: Policy,
    metrics: Metrics,
    /// The local reply's headers, resolved from `policy` once.
    local_reply: LocalReply,
    /// Per-request header values, kept between responses (see `headers::Memo`): the response
    /// path neither allocates nor, mostly, formats a number.
    scratch: RefCell<Scratch>,
}

/// One per plugin configuration per worker VM.
#[derive(Debug, Default)]
struct FilterRoot {
    configured: Option<Rc<Configured>>,
}

impl Context for FilterRoot {
    /// The plugin is going away: hand over what was counted since the last tick.
    fn on_done(&mut self) -> bool {
        if let Some(configured) = &self.configured {
            configured.metrics.flush();
        }
        true
    }
}

impl RootContext for FilterRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        // What the previous configuration counted goes to the host before it is replaced.
        if let Some(previous) = self.configured.take() {
            previous.metrics.flush();
        }
        match PluginConfig::from_json(&host::plugin_configuration()) {
            Ok(config) => {
                let policy = Policy::compile(&config);
                let metrics = Metrics::define(&policy.metric_names);
                if let Some(limit) = &policy.limit {
                    shared::prepare(
                        &mut HostStore,
                        &limit.named_buckets(),
                        &limit.rate,
                        host::now_ns(),
                    );
                }
                host::set_tick_period(FLUSH_PERIOD);
                self.configured = Some(Rc::new(Configured {
                    local_reply: LocalReply::plan(&policy),
                    policy,
                    metrics,
                    scratch: RefCell::new(Scratch::default()),
                }));
                true
            }
            Err(error) => {
                host::log(
                    LogLevel::Error,
                    &["hrl-filter: ", &error.to_string()].concat(),
                );
                host::count_rejected_config();
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(configured) = &self.configured {
            configured.metrics.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FilterHttp {
            configured: self.configured.clone(),
            decision: None,
            skipped: false,
            decided: false,
            pending: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One per HTTP stream.
#[derive(Debug)]
struct FilterHttp {
    configured: Option<Rc<Configured>>,
    decision: Option<Decision>,
    /// The policy's `match` left this request alone: its response is not touched either.
    skipped: bool,
    /// The request-headers callback ran. It does not when a filter before this one answered
    /// (an authorization denial): the proxy then has no request headers for this filter
    /// (Envoy `Context::getMap`: `request_headers_` is set by its own `decodeHeaders`), so a
    /// policy with a `match` cannot tell whether the reply is its business and leaves it alone.
    decided: bool,
    /// The rate limit service call the request waits for: its token, and when it started.
    pending: Option<(u32, u64)>,
}

impl Context for FilterHttp {
    /// The rate limit service answered (`status_code` 0 and the message), or the call failed.
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some((_, since_ns)) = self.pending.filter(|(token, _)| *token == token_id) else {
            return;
        };
        self.pending = None;
        let Some(configured) = self.configured.as_deref() else {
            host::resume_request();
            return;
        };
        let Some((limit, remote)) = configured
            .policy
            .limit
            .as_ref()
            .and_then(|limit| Some((limit, limit.remote.as_ref()?)))
        else {
            host::resume_request();
            return;
        };
        let counts = &configured.metrics.counts;
        let body = (status_code == 0).then(|| host::grpc_response(response_size));
        let waited = Duration::from_nanos(host::now_ns().saturating_sub(since_ns));
        let judged = remote.judge(status_code, waited, body.flatten().as_deref());
        let decision = match judged {
            Answer::Allowed(level) => Some(Decision::of_service(limit, true, level)),
            Answer::Limited(level) => Some(Decision::of_service(limit, false, level)),
            Answer::Failed(failure) => {
                counts.bump(match failure {
                    Failure::Timeout => Counter::RlsTimeouts,
                    Failure::Error => Counter::RlsErrors,
                });
                remote
                    .on_failure()
                    .map(|level| Decision::of_service(limit, false, level))
            }
        };
        let goes_on = match decision {
            Some(decision) => {
                let (decision, goes_on) = settle(configured, limit, decision);
                self.decision = Some(decision);
                goes_on
            }
            // failureMode Allow: through, without rate-limit headers (nothing is known).
            None => {
                counts.bump_each(&counter_set(None));
                true
            }
        };
        if goes_on {
            host::resume_request();
        }
    }
}

/// Counts `decision` and, when it limits, sends the local reply. Returns the decision to keep
/// for the response and whether the request goes on upstream (false: the reply was sent).
fn settle(configured: &Configured, limit: &Limit, decision: Decision) -> (Decision, bool) {
    configured
        .metrics
        .counts
        .bump_each(&counter_set(Some(&decision)));
    if decision.verdict != Verdict::Limited {
        return (decision, true);
    }
    // Read only on this path: an allowed request costs no extra host call.
    let grpc = grpc::is_grpc(host::request_header("content-type").as_deref());
    let policy = &configured.policy;
    let send = |scratch: &mut Scratch| {
        let headers = configured.local_reply.headers(policy, &decision, scratch);
        if grpc {
            host::send_grpc_exhausted(&headers, grpc::status_message(&limit.body))
        } else {
            host::send_local_reply(limit.status_code, headers, &limit.body)
        }
    };
    // Never re-entered; a fresh scratch if it ever were, rather than a trap.
    let sent = match configured.scratch.try_borrow_mut() {
        Ok(mut scratch) => send(&mut scratch),
        Err(_) => send(&mut Scratch::default()),
    };
    if sent {
        return (decision, false);
    }
    // The host refused the local reply: let the request through rather than stall it.
    let allowed = Decision {
        verdict: Verdict::Allowed,
        ..decision
    };
    (allowed, true)
}

impl HttpContext for FilterHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Borrowed, not cloned: `self.decision` is a disjoint field.
        let Some(configured) = self.configured.as_deref() else {
            return Action::Continue;
        };
        self.decided = true;
        let (policy, counts) = (&configured.policy, &configured.metrics.counts);
        if let Some(matcher) = &policy.matcher
            && !matcher.matches(host::request_header)
        {
            counts.bump(Counter::Skipped);
            self.skipped = true;
            return Action::Continue;
        }
        counts.bump(Counter::Requests);
        let Some(limit) = &policy.limit else {
            counts.bump_each(&counter_set(None));
            return Action::Continue;
        };
        let key = match &limit.key {
            KeySource::None => BucketKey::Single,
            KeySource::Header(name) => {
                BucketKey::from_header(host::request_header(name).as_deref())
            }
            KeySource::ClientAddress => BucketKey::from_address(host::source_address().as_deref()),
        };
        if let Some(remote) = &limit.remote {
            let mut message = Vec::new();
            remote.request(&policy.id, &key, &mut message);
            let started = host::now_ns();
            if let Some(token) = host::dispatch_rls(&remote.upstream, &message, remote.timeout) {
                self.pending = Some((token, started));
                return Action::Pause;
            }
            // The proxy would not start the call (no such cluster): a failure like any other.
            counts.bump(Counter::RlsErrors);
            let Some(level) = remote.on_failure() else {
                counts.bump_each(&counter_set(None));
                return Action::Continue;
            };
            let (decision, goes_on) =
                settle(configured, limit, Decision::of_service(limit, false, level));
            self.decision = Some(decision);
            return if goes_on {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        let now = host::now_ns();
        let outcome = shared::take(
            &mut HostStore,
            &limit.keys,
            &limit.rate,
            limit.max_keys,
            &key,
            now,
        );
        let (decision, goes_on) = settle(configured, limit, decide(limit, &outcome));
        self.decision = Some(decision);
        if goes_on {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(configured) = self.configured.as_deref() else {
            return Action::Continue;
        };
        let undecidable = !self.decided && configured.policy.matcher.is_some();
        if self.skipped || undecidable {
            return Action::Continue;
        }
        for name in &configured.policy.remove_headers {
            host::remove_response_header(name);
        }
        let (policy, decision) = (&configured.policy, self.decision.as_ref());
        let sink = ResponseHeaders;
        // Never re-entered (the host does not call back while we set headers); a fresh scratch
        // if it ever were, rather than a trap.
        match configured.scratch.try_borrow_mut() {
            Ok(mut scratch) => each_response_header(policy, decision, &mut scratch, sink),
            Err(_) => each_response_header(policy, decision, &mut Scratch::default(), sink),
        }
        Action::Continue
    }
}

/// The response's headers, written through the host.
struct ResponseHeaders;

impl HeaderSink for ResponseHeaders {
    fn set(&mut self, name: &str, value: &str) {
        host::set_response_header(name, value);
    }

    /// One `add`, no read: whatever is there (another policy's members on the same workload,
    /// or the upstream's) stays, and this policy's member joins the list as its own field line.
    fn add_list_member(&mut self, name: &str, item: &str) {
        host::add_response_header(name, item);
    }
}
