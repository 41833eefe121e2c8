//! From a bucket outcome to what the filter does: the verdict, the counters to bump and the
//! headers to set. Pure.

use std::borrow::Cow;

use crate::headers::{HeaderSink, Level, RETRY_AFTER, Scratch, retry_after, retry_after_seconds};
use crate::policy::{Counter, Limit, Policy};
use crate::shared::Outcome;

/// What happens to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Continue upstream.
    Allowed,
    /// Answer with the local reply.
    Limited,
    /// Would be limited, but the policy is a dry run: continue upstream.
    DryRunLimited,
}

/// A rate-limited request's decision, kept by the HTTP context until its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What happens to the request.
    pub verdict: Verdict,
    /// What is left after this request (`r` and `t`).
    pub level: Level,
    /// The shared-data update gave up; the request was allowed.
    pub exhausted: bool,
    /// The request used the overflow bucket.
    pub overflow: bool,
}

/// A header to set: a name and a value, borrowed from the policy where possible.
pub type HeaderPair<'a> = (&'a str, Cow<'a, str>);

/// Turn the bucket outcome into a decision under the policy's `enforce`.
#[inline(always)]
pub fn decide(limit: &Limit, outcome: &Outcome) -> Decision {
    Decision {
        verdict: verdict(outcome.allowed, limit.enforce),
        level: Level::of(&limit.rate, &outcome.bucket),
        exhausted: outcome.exhausted,
        overflow: outcome.overflow,
    }
}

impl Decision {
    /// The decision on a rate limit service's answer (or a failure standing in for one):
    /// `allowed`, else limited under the policy's `enforce`.
    pub fn of_service(limit: &Limit, allowed: bool, level: Level) -> Decision {
        Decision {
            verdict: verdict(allowed, limit.enforce),
            level,
            exhausted: false,
            overflow: false,
        }
    }
}

fn verdict(allowed: bool, enforce: bool) -> Verdict {
    match (allowed, enforce) {
        (true, _) => Verdict::Allowed,
        (false, true) => Verdict::Limited,
        (false, false) => Verdict::DryRunLimited,
    }
}

/// The counters a request bumps besides `requests` (headers-only requests: `allowed`).
pub fn counters(decision: Option<&Decision>) -> impl Iterator<Item = Counter> {
    counter_set(decision).into_iter().flatten()
}

/// `counters` as a fixed array, `None` for a counter not bumped: the request path loops over
/// it directly (iterator adapter chains cost hundreds of instructions at `opt-level = "z"`).
#[inline(always)]
pub fn counter_set(decision: Option<&Decision>) -> [Option<Counter>; 3] {
    let verdict = decision.map_or(Counter::Allowed, |d| match d.verdict {
        Verdict::Allowed => Counter::Allowed,
        Verdict::Limited => Counter::Limited,
        Verdict::DryRunLimited => Counter::DryRunLimited,
    });
    let exhausted = decision.is_some_and(|d| d.exhausted);
    let overflow = decision.is_some_and(|d| d.overflow);
    [
        Some(verdict),
        exhausted.then_some(Counter::CasExhausted),
        overflow.then_some(Counter::Overflow),
    ]
}

/// Headers to SET on a response, in order: `responseHeaders`, the rate-limit headers, and for
/// the local reply the limited response's `headers` and `retry-after`. Later entries win.
pub fn response_headers<'a>(
    policy: &'a Policy,
    decision: Option<&Decision>,
) -> Vec<HeaderPair<'a>> {
    // Plain loops and one allocation sized up front: adapter chains and regrowth are not free
    // at `opt-level = "z"` (this runs for every local reply).
    let extra = policy
        .limit
        .as_ref()
        .map_or(0, |limit| limit.headers.len().saturating_add(4));
    let mut out: Vec<HeaderPair<'a>> =
        Vec::with_capacity(policy.response_headers.len().saturating_add(extra));
    for (name, value) in &policy.response_headers {
        out.push((name.as_str(), Cow::Borrowed(value.as_str())));
    }
    let (Some(limit), Some(decision)) = (&policy.limit, decision) else {
        return out;
    };
    limit.style.render_into(&decision.level, &mut out);
    if decision.verdict == Verdict::Limited {
        for (name, value) in &limit.headers {
            out.push((name.as_str(), Cow::Borrowed(value.as_str())));
        }
        out.push((RETRY_AFTER, Cow::Owned(retry_after(&decision.level))));
    }
    out
}

/// `response_headers` without allocating, for the response path: each header is handed to
/// `sink` in the same order (the IETF ones as list members); per-request values come from
/// `scratch` (see `HeaderStyle::render_each`). On the local reply (a `Limited` decision: the
/// response is the reply this policy sent, re-entering its response callback) the IETF list
/// members are left out: the reply carries them already, and adding a member again would list
/// the policy twice.
#[inline(always)]
pub fn each_response_header(
    policy: &Policy,
    decision: Option<&Decision>,
    scratch: &mut Scratch,
    sink: impl HeaderSink,
) {
    let mut sink = Members {
        sink,
        add: decision.is_none_or(|d| d.verdict != Verdict::Limited),
    };
    for (name, value) in &policy.response_headers {
        sink.set(name, value);
    }
    let (Some(limit), Some(decision)) = (&policy.limit, decision) else {
        return;
    };
    limit.style.render_each(&decision.level, scratch, &mut sink);
    if decision.verdict == Verdict::Limited {
        for (name, value) in &limit.headers {
            sink.set(name, value);
        }
        let seconds = retry_after_seconds(&decision.level);
        sink.set(RETRY_AFTER, scratch.retry_after.decimal(seconds));
    }
}

/// A sink that adds list members only when `add` (a flag, not a second sink type: one copy
/// of the rendering code in the module).
struct Members<S> {
    sink: S,
    add: bool,
}

impl<S: HeaderSink> HeaderSink for Members<S> {
    #[inline(always)]
    fn set(&mut self, name: &str, value: &str) {
        self.sink.set(name, value);
    }

    #[inline(always)]
    fn add_list_member(&mut self, name: &str, item: &str) {
        if self.add {
            self.sink.add_list_member(name, item);
        }
    }
}

/// The local reply's headers: `response_headers` with one entry per name (the last wins), as
/// `send_http_response` adds rather than replaces.
pub fn local_reply_headers<'a>(policy: &'a Policy, decision: &Decision) -> Vec<HeaderPair<'a>> {
    let all = response_headers(policy, Some(decision));
    let mut out: Vec<HeaderPair<'a>> = Vec::with_capacity(all.len());
    for (name, value) in all {
        out.retain(|(seen, _)| !seen.eq_ignore_ascii_case(name));
        out.push((name, value));
    }
    out
}

/// Where a local reply header's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `policy.response_headers[i]`.
    Response(usize),
    /// The i-th rate-limit header (`HeaderStyle::names`).
    Style(usize),
    /// `limit.headers[i]`.
    Limit(usize),
    /// `retry-after`.
    RetryAfter,
}

/// `local_reply_headers` resolved once per configuration: which headers a local reply sends,
/// and in what order, depends only on the policy (a limited request's header names are fixed),
/// so per request only the values are filled in: no merging, no `Cow`s, no number formatting
/// when `r` and `t` repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    sources: Vec<Source>,
}

impl LocalReply {
    /// The plan for `policy` (empty without a rate limit: there is no local reply).
    pub fn plan(policy: &Policy) -> LocalReply {
        let Some(limit) = &policy.limit else {
            return LocalReply {
                sources: Vec::new(),
            };
        };
        // `response_headers`' names for a limited request, then `local_reply_headers`' merge.
        let mut all: Vec<(&str, Source)> = Vec::new();
        for (i, (name, _)) in policy.response_headers.iter().enumerate() {
            all.push((name, Source::Response(i)));
        }
        for (i, name) in limit.style.names().iter().enumerate() {
            all.push((name, Source::Style(i)));
        }
        for (i, (name, _)) in limit.headers.iter().enumerate() {
            all.push((name, Source::Limit(i)));
        }
        all.push((RETRY_AFTER, Source::RetryAfter));
        let mut merged: Vec<(&str, Source)> = Vec::with_capacity(all.len());
        for (name, source) in all {
            merged.retain(|(seen, _)| !seen.eq_ignore_ascii_case(name));
            merged.push((name, source));
        }
        LocalReply {
            sources: merged.into_iter().map(|(_, source)| source).collect(),
        }
    }

    /// `local_reply_headers(policy, decision)` for a limited `decision`, with the per-request
    /// values taken from `scratch`. `policy` must be the one the plan was made for.
    pub fn headers<'a>(
        &self,
        policy: &'a Policy,
        decision: &Decision,
        scratch: &'a mut Scratch,
    ) -> Vec<(&'a str, &'a str)> {
        let mut out = Vec::with_capacity(self.sources.len());
        let Some(limit) = &policy.limit else {
            return out;
        };
        let Scratch {
            ratelimit,
            reset,
            retry_after,
        } = scratch;
        let names = limit.style.names();
        let values = limit.style.values(&decision.level, ratelimit, reset);
        let retry = retry_after.decimal(retry_after_seconds(&decision.level));
        for source in &self.sources {
            let pair = match *source {
                Source::Response(i) => policy
                    .response_headers
                    .get(i)
                    .map(|(n, v)| (n.as_str(), v.as_str())),
                Source::Style(i) => names.get(i).copied().zip(values.get(i).copied()),
                Source::Limit(i) => limit.headers.get(i).map(|(n, v)| (n.as_str(), v.as_str())),
                Source::RetryAfter => Some((RETRY_AFTER, retry)),
            };
            if let Some(pair) = pair {
                out.push(pair);
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
