#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code as PbCode, DescriptorStatus,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use prost::Message;

use super::*;

fn service(mode: FailureMode) -> RateLimitService {
    RateLimitService {
        failure_mode: mode,
        ..RateLimitService::new(
            "outbound|8081||rls.hrl-system.svc.cluster.local",
            "rls.hrl-system.svc.cluster.local",
            "hrl",
        )
    }
}

fn remote(tokens: u32, period: u32) -> Remote {
    Remote::compile(&service(FailureMode::Allow), tokens, period).expect("an RLS period")
}

fn answer(code: PbCode, remaining: u32, reset: Option<(i64, i32)>) -> Vec<u8> {
    RateLimitResponse {
        overall_code: code as i32,
        statuses: vec![DescriptorStatus {
            code: code as i32,
            limit_remaining: remaining,
            duration_until_reset: reset.map(|(seconds, nanos)| PbDuration { seconds, nanos }),
            ..DescriptorStatus::default()
        }],
        ..RateLimitResponse::default()
    }
    .encode_to_vec()
}

#[test]
fn only_the_fixed_windows_of_rls_compile() {
    for (period, window) in [(1, 1), (60, 60), (3_600, 3_600), (86_400, 86_400)] {
        assert_eq!(remote(5, period).window_seconds, window);
    }
    for period in [2, 30, 90, 7_200] {
        assert_eq!(
            Remote::compile(&service(FailureMode::Allow), 5, period),
            None
        );
    }
    let r = remote(5, 60);
    assert_eq!(r.timeout, Duration::from_millis(100));
    assert_eq!(r.domain, "hrl");
}

#[test]
fn a_request_names_the_policy_and_overrides_the_limit() {
    let mut bytes = Vec::new();
    remote(5, 60).request("shop/login", &BucketKey::Single, &mut bytes);
    let request = RateLimitRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(request.domain, "hrl");
    assert_eq!(request.hits_addend, 0, "one hit, left out");
    let [descriptor] = request.descriptors.as_slice() else {
        panic!("one descriptor: {request:?}");
    };
    let entries: Vec<(&str, &str)> = descriptor
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(entries, [("hrl_policy", "shop/login")]);
    let limit = descriptor.limit.as_ref().unwrap();
    assert_eq!(limit.requests_per_unit, 5);
    assert_eq!(limit.unit, 2, "MINUTE");
}

#[test]
fn a_keyed_request_carries_its_key_as_hex_and_a_keyless_one_shares_the_policy_descriptor() {
    let r = remote(100, 1);
    let entries = |key: &BucketKey| {
        let mut bytes = Vec::new();
        r.request("shop/api", key, &mut bytes);
        let request = RateLimitRequest::decode(bytes.as_slice()).unwrap();
        request.descriptors[0]
            .entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect::<Vec<_>>()
    };
    // A header value with bytes that are not UTF-8 still makes a valid protobuf string.
    let alice = BucketKey::from_header(Some(b"alice\xff"));
    let bob = BucketKey::from_header(Some(b"bob"));
    let a = entries(&alice);
    assert_eq!(a[0], ("hrl_policy".into(), "shop/api".into()));
    assert_eq!(a[1].0, "hrl_key");
    assert_eq!(a[1].1, "68616c696365ff", "tag 'h' + the raw bytes, in hex");
    assert_ne!(a, entries(&bob));
    assert_eq!(
        entries(&BucketKey::Missing),
        [("hrl_policy".to_string(), "shop/api".to_string())]
    );
}

#[test]
fn ok_and_over_limit_answers_carry_what_is_left_and_when_it_resets() {
    let r = remote(5, 60);
    assert_eq!(
        r.judge(
            0,
            Duration::ZERO,
            Some(&answer(PbCode::Ok, 3, Some((41, 0))))
        ),
        Answer::Allowed(Level {
            remaining: 3,
            reset_seconds: 41
        })
    );
    assert_eq!(
        r.judge(
            0,
            Duration::ZERO,
            Some(&answer(PbCode::OverLimit, 0, Some((11, 1))))
        ),
        Answer::Limited(Level {
            remaining: 0,
            reset_seconds: 12
        }),
        "a part second rounds up"
    );
    assert_eq!(
        r.judge(0, Duration::ZERO, Some(&answer(PbCode::OverLimit, 0, None))),
        Answer::Limited(Level {
            remaining: 0,
            reset_seconds: 60
        }),
        "no reset given: the window"
    );
    let bare = RateLimitResponse {
        overall_code: PbCode::Ok as i32,
        ..RateLimitResponse::default()
    }
    .encode_to_vec();
    assert_eq!(
        r.judge(0, Duration::ZERO, Some(&bare)),
        Answer::Allowed(Level {
            remaining: 0,
            reset_seconds: 60
        })
    );
}

#[test]
fn timeouts_errors_unknown_and_malformed_answers_are_failures() {
    let r = remote(5, 60);
    let (early, deadline) = (Duration::from_millis(3), Duration::from_millis(100));
    assert_eq!(r.judge(4, early, None), Answer::Failed(Failure::Timeout));
    // Envoy: UNAVAILABLE at the deadline is its timeout, before it a refused connection.
    assert_eq!(
        r.judge(14, deadline, None),
        Answer::Failed(Failure::Timeout)
    );
    assert_eq!(r.judge(14, early, None), Answer::Failed(Failure::Error));
    for status in [1, 2, 8, 13, 14, 16] {
        let judged = r.judge(status, early, None);
        assert_eq!(judged, Answer::Failed(Failure::Error), "{status}");
    }
    assert_eq!(r.judge(0, early, None), Answer::Failed(Failure::Error));
    assert_eq!(
        r.judge(0, Duration::ZERO, Some(&answer(PbCode::Unknown, 0, None))),
        Answer::Failed(Failure::Error)
    );
    assert_eq!(
        r.judge(0, Duration::ZERO, Some(&[0x08])),
        Answer::Failed(Failure::Error),
        "truncated"
    );
}

#[test]
fn the_failure_mode_decides_what_a_failure_stands_for() {
    assert_eq!(remote(5, 60).on_failure(), None);
    let deny = Remote::compile(&service(FailureMode::Deny), 5, 60).unwrap();
    assert_eq!(
        deny.on_failure(),
        Some(Level {
            remaining: 0,
            reset_seconds: 1
        })
    );
}
