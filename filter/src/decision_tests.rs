use hrl_plugin_config::{Header, PluginConfig, RateLimit, RateLimitHeaders};

use super::*;
use crate::limiter::Bucket;

fn policy(rate_limit: Option<RateLimit>) -> Policy {
    Policy::compile(&PluginConfig {
        policy: "default/httpbin".into(),
        response_headers: vec![
            Header::new("who-am-i", "wasm"),
            Header::new("powered-by", "x"),
        ],
        remove_response_headers: vec![],
        rate_limit,
        matches: None,
    })
}

fn limited(rate_limit: RateLimit) -> RateLimit {
    RateLimit {
        headers: vec![Header::new("powered-by", "hrl-filter")],
        ..rate_limit
    }
}

/// Decision for the n-th request (1-based) at one instant on a fresh bucket.
fn nth(policy: &Policy, n: u32) -> Decision {
    let limit = policy.limit.as_ref().unwrap();
    let mut bucket = Bucket::full(&limit.rate, 0);
    let mut take = bucket.take(&limit.rate, 0);
    for _ in 1..n {
        bucket = take.bucket;
        take = bucket.take(&limit.rate, 0);
    }
    decide(
        limit,
        &Outcome {
            allowed: take.allowed,
            bucket: take.bucket,
            exhausted: false,
            overflow: false,
        },
    )
}

fn owned(headers: Vec<HeaderPair<'_>>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.into_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn allowed_response_gets_configured_and_ietf_headers() {
    let policy = policy(Some(RateLimit::new(2, 2)));
    let decision = nth(&policy, 1);
    assert_eq!(decision.verdict, Verdict::Allowed);
    assert_eq!(
        owned(response_headers(&policy, Some(&decision))),
        pairs(&[
            ("who-am-i", "wasm"),
            ("powered-by", "x"),
            ("ratelimit-policy", r#""httpbin";q=2;w=1"#),
            ("ratelimit", r#""httpbin";r=1;t=1"#),
        ])
    );
}

#[test]
fn limited_local_reply_has_each_header_once_with_retry_after() {
    let policy = policy(Some(limited(RateLimit::new(2, 2))));
    let decision = nth(&policy, 3);
    assert_eq!(decision.verdict, Verdict::Limited);
    assert_eq!(
        owned(local_reply_headers(&policy, &decision)),
        pairs(&[
            ("who-am-i", "wasm"),
            ("ratelimit-policy", r#""httpbin";q=2;w=1"#),
            ("ratelimit", r#""httpbin";r=0;t=1"#),
            ("powered-by", "hrl-filter"),
            ("retry-after", "1"),
        ])
    );
}

#[test]
fn draft03_responses_carry_envoy_style_values_and_retry_after_when_limited() {
    let rl = RateLimit {
        rate_limit_headers: RateLimitHeaders::Draft03,
        ..RateLimit::new(1, 3)
    };
    let policy = policy(Some(rl));
    let allowed = owned(response_headers(&policy, Some(&nth(&policy, 1))));
    assert_eq!(
        allowed[2..],
        pairs(&[
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "2"),
            ("x-ratelimit-reset", "0"),
        ])[..]
    );
    let limited = owned(response_headers(&policy, Some(&nth(&policy, 4))));
    assert_eq!(
        limited[2..],
        pairs(&[
            ("x-ratelimit-limit", "3"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1"),
            ("retry-after", "1"),
        ])[..]
    );
}

#[test]
fn dry_run_lets_the_request_through_with_limited_values_and_no_retry_after() {
    let rl = RateLimit {
        enforce: false,
        ..RateLimit::new(1, 1)
    };
    let policy = policy(Some(rl));
    let decision = nth(&policy, 2);
    assert_eq!(decision.verdict, Verdict::DryRunLimited);
    assert_eq!(
        counters(Some(&decision)).collect::<Vec<_>>(),
        vec![Counter::DryRunLimited]
    );
    let headers = owned(response_headers(&policy, Some(&decision)));
    assert!(headers.contains(&("ratelimit".into(), r#""httpbin";r=0;t=1"#.into())));
    assert!(!headers.iter().any(|(n, _)| n == "retry-after"));
}

#[test]
fn headers_only_policy_sets_only_configured_headers_and_counts_allowed() {
    let policy = policy(None);
    assert_eq!(
        owned(response_headers(&policy, None)),
        pairs(&[("who-am-i", "wasm"), ("powered-by", "x")])
    );
    assert_eq!(counters(None).collect::<Vec<_>>(), vec![Counter::Allowed]);
}

#[test]
fn counters_record_limited_exhausted_and_overflow() {
    let policy = policy(Some(RateLimit::new(1, 1)));
    assert_eq!(
        counters(Some(&nth(&policy, 2))).collect::<Vec<_>>(),
        vec![Counter::Limited]
    );
    let odd = Decision {
        exhausted: true,
        overflow: true,
        ..nth(&policy, 1)
    };
    assert_eq!(
        counters(Some(&odd)).collect::<Vec<_>>(),
        vec![Counter::Allowed, Counter::CasExhausted, Counter::Overflow]
    );
}

#[test]
fn retry_after_is_never_below_t() {
    for (tps, burst) in [(1, 1), (1, 10), (3, 7), (1000, 1), (u32::MAX, 1)] {
        let policy = policy(Some(RateLimit::new(tps, burst)));
        let decision = nth(&policy, burst + 1);
        assert_eq!(decision.verdict, Verdict::Limited);
        let t = decision.level.reset_seconds;
        let retry: u64 = crate::headers::retry_after(&decision.level)
            .parse()
            .unwrap();
        assert!(
            retry >= 1 && retry >= t,
            "tps {tps} burst {burst}: {retry} < {t}"
        );
    }
}

#[test]
fn the_allocation_free_response_path_sets_exactly_the_headers_of_response_headers() {
    let cases = [
        policy(None),
        policy(Some(limited(RateLimit::new(2, 2)))),
        policy(Some(limited(RateLimit {
            rate_limit_headers: RateLimitHeaders::Draft03,
            ..RateLimit::new(1, 3)
        }))),
        policy(Some(limited(RateLimit {
            rate_limit_headers: RateLimitHeaders::None,
            ..RateLimit::new(1, 1)
        }))),
        policy(Some(limited(RateLimit {
            enforce: false,
            ..RateLimit::new(1, 2)
        }))),
    ];
    let mut scratch = crate::headers::Scratch::default();
    for policy in &cases {
        let decisions: Vec<Option<Decision>> = match policy.limit {
            None => vec![None],
            Some(_) => (1..=4).map(|n| Some(nth(policy, n))).collect(),
        };
        for decision in decisions {
            let mut seen = Vec::new();
            each_response_header(
                policy,
                decision.as_ref(),
                &mut scratch,
                |n: &str, v: &str| {
                    seen.push((n.to_string(), v.to_string()));
                },
            );
            let mut expected = owned(response_headers(policy, decision.as_ref()));
            if decision.is_some_and(|d| d.verdict == Verdict::Limited) {
                // The local reply carries the list members already (see the next test).
                expected.retain(|(n, _)| n != "ratelimit" && n != "ratelimit-policy");
            }
            assert_eq!(seen, expected);
        }
    }
}

/// Records `set` and `add_list_member` apart, as the host adapter tells them apart.
#[derive(Default)]
struct Recorder {
    set: Vec<(String, String)>,
    added: Vec<(String, String)>,
}

impl crate::headers::HeaderSink for &mut Recorder {
    fn set(&mut self, name: &str, value: &str) {
        self.set.push((name.to_string(), value.to_string()));
    }

    fn add_list_member(&mut self, name: &str, item: &str) {
        self.added.push((name.to_string(), item.to_string()));
    }
}

#[test]
fn the_ietf_members_are_added_once_on_upstream_responses_and_not_again_on_the_local_reply() {
    let policy = policy(Some(limited(RateLimit::new(2, 2))));
    let mut scratch = crate::headers::Scratch::default();
    let allowed = nth(&policy, 1);
    let mut upstream = Recorder::default();
    each_response_header(&policy, Some(&allowed), &mut scratch, &mut upstream);
    assert_eq!(
        upstream.added,
        pairs(&[
            ("ratelimit-policy", r#""httpbin";q=2;w=1"#),
            ("ratelimit", r#""httpbin";r=1;t=1"#),
        ])
    );
    assert!(!upstream.set.iter().any(|(n, _)| n.starts_with("ratelimit")));

    // The reply is sent with the members; its re-entry adds none, so each is there once.
    let limited = nth(&policy, 3);
    let reply = owned(local_reply_headers(&policy, &limited));
    let mut reentry = Recorder::default();
    each_response_header(&policy, Some(&limited), &mut scratch, &mut reentry);
    assert!(reentry.added.is_empty(), "{:?}", reentry.added);
    for name in ["ratelimit", "ratelimit-policy"] {
        let on_reply = reply.iter().filter(|(n, _)| n == name).count();
        assert_eq!(on_reply, 1, "{name} on {reply:?}");
    }
    assert!(reentry.set.contains(&("retry-after".into(), "1".into())));
}

#[test]
fn the_planned_local_reply_is_local_reply_headers() {
    let with_headers = |rate_limit: RateLimit, headers: &[(&str, &str)]| RateLimit {
        headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
        ..rate_limit
    };
    let cases = [
        policy(Some(limited(RateLimit::new(2, 2)))),
        policy(Some(RateLimit::new(1, 1))),
        policy(Some(limited(RateLimit {
            rate_limit_headers: RateLimitHeaders::Draft03,
            ..RateLimit::new(1, 3)
        }))),
        policy(Some(limited(RateLimit {
            rate_limit_headers: RateLimitHeaders::None,
            ..RateLimit::new(1, 1)
        }))),
        // Names repeated across lists and in other cases: the last one wins, in its place.
        policy(Some(with_headers(
            RateLimit::new(3, 2),
            &[
                ("Who-Am-I", "limited"),
                ("RateLimit", "mine"),
                ("retry-after", "99"),
                ("x-extra", "1"),
                ("X-Extra", "2"),
            ],
        ))),
        policy(Some(with_headers(
            RateLimit {
                rate_limit_headers: RateLimitHeaders::Draft03,
                ..RateLimit::new(1, 5)
            },
            &[("x-ratelimit-reset", "never")],
        ))),
    ];
    let mut scratch = crate::headers::Scratch::default();
    for policy in &cases {
        let plan = LocalReply::plan(policy);
        let burst = policy.limit.as_ref().unwrap().rate.burst() as u32;
        for n in [burst + 1, burst + 2, burst + 1] {
            let decision = nth(policy, n);
            assert_eq!(decision.verdict, Verdict::Limited);
            let planned: Vec<(String, String)> = plan
                .headers(policy, &decision, &mut scratch)
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(planned, owned(local_reply_headers(policy, &decision)));
        }
    }
    assert_eq!(LocalReply::plan(&policy(None)).sources, vec![]);
}
