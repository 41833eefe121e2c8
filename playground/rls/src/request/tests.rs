#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::google::protobuf::UInt64Value;

use super::*;

const MINUTE: i32 = 2;

fn domains() -> Vec<String> {
    vec!["hrl".to_owned()]
}

fn descriptor(limit: Option<(u32, i32)>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: vec![Entry {
            key: "hrl_policy".to_owned(),
            value: "default/api".to_owned(),
        }],
        limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
            requests_per_unit,
            unit,
        }),
        ..RateLimitDescriptor::default()
    }
}

fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_owned(),
        descriptors,
        hits_addend: 0,
    }
}

#[test]
fn the_override_is_the_limit_of_a_configured_domain() {
    let check = Check::parse(
        request("hrl", vec![descriptor(Some((5, MINUTE)))]),
        &domains(),
    )
    .unwrap();
    assert_eq!(
        check,
        Check {
            domain: "hrl".to_owned(),
            descriptors: vec![Descriptor {
                entries: vec![("hrl_policy".to_owned(), "default/api".to_owned())],
                limit: Some(Limit {
                    requests_per_unit: 5,
                    unit: Unit::Minute,
                }),
                hits: 1,
            }],
        }
    );
}

#[test]
fn a_domain_not_configured_has_no_limits_whatever_its_overrides_say() {
    for unit in [MINUTE, 0, 99] {
        let check = Check::parse(
            request("other", vec![descriptor(Some((5, unit)))]),
            &domains(),
        )
        .unwrap();
        assert_eq!(check.descriptors[0].limit, None, "unit {unit}");
    }
}

#[test]
fn a_descriptor_without_override_has_no_limit() {
    let check = Check::parse(request("hrl", vec![descriptor(None)]), &domains()).unwrap();
    assert_eq!(check.descriptors[0].limit, None);
}

#[test]
fn an_unknown_unit_is_refused_naming_the_descriptor() {
    for unit in [0, 8, -1] {
        let error = Check::parse(
            request(
                "hrl",
                vec![descriptor(Some((5, MINUTE))), descriptor(Some((5, unit)))],
            ),
            &domains(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "descriptors[1].limit.unit: {unit} is not SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR"
            )
        );
    }
}

#[test]
fn an_empty_domain_or_descriptor_list_is_refused() {
    let error = Check::parse(request("", vec![descriptor(None)]), &domains()).unwrap_err();
    assert_eq!(error.to_string(), "domain: must not be empty");
    let error = Check::parse(request("hrl", vec![]), &domains()).unwrap_err();
    assert_eq!(error.to_string(), "descriptors: must not be empty");
}

#[test]
fn hits_come_from_the_descriptor_then_the_request_then_one() {
    // (request hits_addend, descriptor hits_addend, hits)
    let cases = [(0, None, 1), (3, None, 3), (3, Some(7), 7), (3, Some(0), 0)];
    for (request_hits, descriptor_hits, hits) in cases {
        let mut with_hits = descriptor(Some((5, MINUTE)));
        with_hits.hits_addend = descriptor_hits.map(|value| UInt64Value { value });
        let mut rate_limit_request = request("hrl", vec![with_hits]);
        rate_limit_request.hits_addend = request_hits;
        let check = Check::parse(rate_limit_request, &domains()).unwrap();
        assert_eq!(
            check.descriptors[0].hits, hits,
            "{request_hits} {descriptor_hits:?}"
        );
    }
}

#[test]
fn windows_are_aligned_to_the_epoch_and_reset_in_whole_seconds() {
    let limit = |unit| Limit {
        requests_per_unit: 1,
        unit,
    };
    // (unit, now, start, until_reset)
    let cases = [
        (Unit::Second, 1_000, 1_000, 1),
        (Unit::Minute, 125, 120, 55),
        (Unit::Minute, 120, 120, 60),
        (Unit::Hour, 7_199, 3_600, 1),
        (Unit::Day, 86_401, 86_400, 86_399),
        (Unit::Week, 0, 0, 604_800),
        (Unit::Month, 2_592_001, 2_592_000, 2_591_999),
        (Unit::Year, 31_536_000, 31_536_000, 31_536_000),
    ];
    for (unit, now, start, until_reset) in cases {
        assert_eq!(
            limit(unit).window(now),
            Window { start, until_reset },
            "{unit:?} at {now}"
        );
    }
}

#[test]
fn statuses_carry_the_limit_the_remaining_and_the_reset() {
    let limit = Limit {
        requests_per_unit: 3,
        unit: Unit::Minute,
    };
    let current = Some(RateLimit {
        name: String::new(),
        requests_per_unit: 3,
        unit: Unit::Minute.into(),
    });
    let reset = Some(ProtoDuration {
        seconds: 55,
        nanos: 0,
    });
    assert_eq!(
        descriptor_status(Some(&limit), Count::Within { remaining: 2 }, 125),
        DescriptorStatus {
            code: Code::Ok.into(),
            current_limit: current.clone(),
            limit_remaining: 2,
            duration_until_reset: reset,
            quota: None,
        }
    );
    assert_eq!(
        descriptor_status(Some(&limit), Count::Over, 125),
        DescriptorStatus {
            code: Code::OverLimit.into(),
            current_limit: current,
            limit_remaining: 0,
            duration_until_reset: reset,
            quota: None,
        }
    );
    let unlimited = DescriptorStatus {
        code: Code::Ok.into(),
        ..DescriptorStatus::default()
    };
    assert_eq!(descriptor_status(None, Count::Unlimited, 125), unlimited);
    assert_eq!(
        descriptor_status(Some(&limit), Count::Unlimited, 125),
        unlimited
    );
}

#[test]
fn the_answer_is_over_limit_when_any_descriptor_is() {
    let status = |code: Code| DescriptorStatus {
        code: code.into(),
        ..DescriptorStatus::default()
    };
    assert_eq!(
        response(vec![status(Code::Ok), status(Code::Ok)]).overall_code,
        i32::from(Code::Ok)
    );
    assert_eq!(
        response(vec![status(Code::Ok), status(Code::OverLimit)]).overall_code,
        i32::from(Code::OverLimit)
    );
}
