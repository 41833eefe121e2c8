//! The codec against the prost types `envoy-types` generates from Envoy's protos.

use super::*;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{GrpcService, HeaderValue};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::quota::ExpirationSpecifier;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as PbUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code as PbCode, DescriptorStatus, Quota, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::envoy::r#type::v3::RateLimitUnit;
use envoy_types::pb::google::protobuf::{self as pb, value::Kind};
use prost::Message;

/// Deterministic xorshift64*: the same messages on every run, no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Empty, short, non-ASCII, or long enough for a two-byte length.
    fn text(&mut self) -> String {
        let len = match self.below(4) {
            0 => 0,
            1 => self.below(8),
            2 => self.below(130),
            _ => 120 + self.below(300),
        };
        (0..len)
            .map(|_| match self.below(10) {
                0 => 'é',
                1 => '→',
                _ => char::from(b'a' + self.below(26) as u8),
            })
            .collect()
    }

    /// Small, around the 7-bit boundaries, or anything.
    fn number(&mut self) -> u64 {
        match self.below(3) {
            0 => self.below(3),
            1 => (1 << (7 * self.below(10))) - self.below(2),
            _ => self.next(),
        }
    }
}

const UNITS: [Unit; 7] = [
    Unit::Second,
    Unit::Minute,
    Unit::Hour,
    Unit::Day,
    Unit::Week,
    Unit::Month,
    Unit::Year,
];

fn pb_unit(unit: Unit) -> RateLimitUnit {
    match unit {
        Unit::Second => RateLimitUnit::Second,
        Unit::Minute => RateLimitUnit::Minute,
        Unit::Hour => RateLimitUnit::Hour,
        Unit::Day => RateLimitUnit::Day,
        Unit::Month => RateLimitUnit::Month,
        Unit::Year => RateLimitUnit::Year,
        Unit::Week => unreachable!("no override unit"),
    }
}

/// A descriptor the tests own: entries and an optional (requests per unit, unit).
type OwnedDescriptor = (Vec<(String, String)>, Option<(u32, Unit)>);

/// What prost makes of `encode_request`'s arguments.
fn expected_request(
    domain: &str,
    descriptors: &[OwnedDescriptor],
    hits_addend: u32,
) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_owned(),
        descriptors: descriptors
            .iter()
            .map(|(entries, limit)| RateLimitDescriptor {
                entries: entries
                    .iter()
                    .map(|(key, value)| Entry {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
                    requests_per_unit,
                    unit: pb_unit(unit) as i32,
                }),
                ..RateLimitDescriptor::default()
            })
            .collect(),
        hits_addend: if hits_addend > 1 { hits_addend } else { 0 },
    }
}

fn encode(domain: &str, descriptors: &[OwnedDescriptor], hits_addend: u32) -> Vec<u8> {
    let entries: Vec<Vec<(&str, &str)>> = descriptors
        .iter()
        .map(|(entries, _)| entries.iter().map(|(k, v)| (&**k, &**v)).collect())
        .collect();
    let descriptors: Vec<Descriptor<'_>> = descriptors
        .iter()
        .zip(&entries)
        .map(|((_, limit), entries)| Descriptor {
            entries,
            limit: limit.and_then(|(requests, unit)| Override::new(requests, unit)),
        })
        .collect();
    let mut out = Vec::new();
    encode_request(domain, &descriptors, hits_addend, &mut out);
    out
}

#[test]
fn requests_encoded_here_decode_with_prost_and_match_its_encoding_byte_for_byte() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3_000 {
        let domain = rng.text();
        let descriptors: Vec<_> = (0..rng.below(4))
            .map(|_| {
                let entries = (0..rng.below(5))
                    .map(|_| (rng.text(), rng.text()))
                    .collect();
                let unit = UNITS[rng.below(7) as usize];
                let limit =
                    (rng.below(2) == 0 && unit != Unit::Week).then(|| (rng.number() as u32, unit));
                (entries, limit)
            })
            .collect();
        let hits_addend = rng.number() as u32;
        let ours = encode(&domain, &descriptors, hits_addend);
        let expected = expected_request(&domain, &descriptors, hits_addend);
        assert_eq!(
            RateLimitRequest::decode(&*ours).ok(),
            Some(expected.clone())
        );
        assert_eq!(ours, expected.encode_to_vec());
    }
}

#[test]
fn a_one_entry_request_with_an_override_is_these_bytes() {
    let limit = Override::new(10, Unit::Minute);
    let descriptor = Descriptor {
        entries: &[("hrl", "api")],
        limit,
    };
    let mut out = Vec::new();
    encode_request("hrl", &[descriptor], 1, &mut out);
    #[rustfmt::skip]
    let expected = [
        0x0A, 3, b'h', b'r', b'l',              // domain
        0x12, 18,                               // descriptors[0]
        0x0A, 10, 0x0A, 3, b'h', b'r', b'l', 0x12, 3, b'a', b'p', b'i', // entries[0]
        0x12, 4, 0x08, 10, 0x10, 2,             // limit: 10 per MINUTE
    ];
    assert_eq!(out, expected);
}

#[test]
fn hits_addend_zero_and_one_are_left_out_because_both_mean_one_hit() {
    for hits in [0, 1] {
        let mut out = Vec::new();
        encode_request("d", &[], hits, &mut out);
        assert_eq!(out, [0x0A, 1, b'd']);
    }
    let mut out = Vec::new();
    encode_request("d", &[], 300, &mut out);
    assert_eq!(out, [0x0A, 1, b'd', 0x18, 0xAC, 0x02]);
}

#[test]
fn an_override_cannot_be_weekly_because_the_request_enum_has_no_week() {
    assert_eq!(Override::new(5, Unit::Week), None);
    for unit in UNITS.into_iter().filter(|unit| *unit != Unit::Week) {
        assert!(Override::new(5, unit).is_some(), "{unit:?}");
    }
}

#[test]
fn the_grpc_service_decodes_with_prost_to_envoy_grpc_with_cluster_and_authority() {
    for (cluster, authority) in [
        ("outbound|8081||ratelimit.ratelimit.svc.cluster.local", ""),
        ("rls", "ratelimit.example"),
        ("c", &*"a".repeat(120)),
    ] {
        let Some(service) = grpc_service(cluster, authority) else {
            panic!("{cluster} {authority} was refused");
        };
        let decoded = GrpcService::decode(service.as_bytes()).ok();
        let expected = GrpcService {
            target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                cluster_name: cluster.to_owned(),
                authority: authority.to_owned(),
                ..EnvoyGrpc::default()
            })),
            ..GrpcService::default()
        };
        assert_eq!(decoded.as_ref(), Some(&expected));
        assert_eq!(service.as_bytes(), expected.encode_to_vec());
    }
}

#[test]
fn a_grpc_service_without_cluster_or_of_128_bytes_or_more_is_refused() {
    assert_eq!(grpc_service("", "authority"), None);
    // envoy_grpc of 1 + 1 + 125 = 127 bytes: one-byte lengths, all ASCII.
    assert!(grpc_service(&"c".repeat(125), "").is_some());
    // 128 bytes: a two-byte length, not UTF-8.
    assert_eq!(grpc_service(&"c".repeat(126), ""), None);
    assert_eq!(grpc_service(&"c".repeat(60), &"a".repeat(70)), None);
}

/// A response with every field set, the unused ones included.
fn random_response(rng: &mut Rng) -> RateLimitResponse {
    let code = |rng: &mut Rng| rng.below(4) as i32; // 3: not a Code
    let statuses = (0..rng.below(4))
        .map(|_| DescriptorStatus {
            code: code(rng),
            current_limit: (rng.below(3) > 0).then(|| RateLimit {
                name: rng.text(),
                requests_per_unit: rng.number() as u32,
                unit: rng.below(9) as i32, // 8: not a Unit
            }),
            limit_remaining: rng.number() as u32,
            duration_until_reset: (rng.below(3) > 0).then(|| pb::Duration {
                seconds: rng.number() as i64,
                nanos: rng.number() as i32,
            }),
            quota: (rng.below(2) == 0).then(|| Quota {
                requests: rng.number() as u32,
                id: rng.text(),
                expiration_specifier: Some(ExpirationSpecifier::ValidUntil(pb::Timestamp {
                    seconds: rng.number() as i64,
                    nanos: rng.number() as i32,
                })),
            }),
        })
        .collect();
    let header = |rng: &mut Rng| HeaderValue {
        key: rng.text(),
        value: rng.text(),
        raw_value: rng.text().into_bytes(),
    };
    let value = |rng: &mut Rng| pb::Value {
        kind: Some(match rng.below(3) {
            0 => Kind::NumberValue(rng.next() as f64),
            1 => Kind::StringValue(rng.text()),
            _ => Kind::BoolValue(true),
        }),
    };
    RateLimitResponse {
        overall_code: code(rng),
        statuses,
        response_headers_to_add: (0..rng.below(3)).map(|_| header(rng)).collect(),
        request_headers_to_add: (0..rng.below(3)).map(|_| header(rng)).collect(),
        raw_body: rng.text().into_bytes(),
        dynamic_metadata: (rng.below(2) == 0).then(|| pb::Struct {
            fields: (0..rng.below(3))
                .map(|_| (rng.text(), value(rng)))
                .collect(),
        }),
        quota: (rng.below(2) == 0).then(|| Quota {
            requests: 1,
            id: rng.text(),
            expiration_specifier: None,
        }),
    }
}

fn code_of(value: i32) -> Code {
    match PbCode::try_from(value) {
        Ok(PbCode::Ok) => Code::Ok,
        Ok(PbCode::OverLimit) => Code::OverLimit,
        _ => Code::Unknown,
    }
}

/// What `decode_response` should make of a response prost decoded.
fn expected_response(response: &RateLimitResponse) -> Response {
    let chosen = response
        .statuses
        .iter()
        .find(|status| code_of(status.code) == Code::OverLimit)
        .or(response.statuses.first());
    Response {
        overall: code_of(response.overall_code),
        status: chosen.map(|status| Status {
            code: code_of(status.code),
            limit: status.current_limit.as_ref().map(|limit| Limit {
                requests_per_unit: limit.requests_per_unit,
                unit: match PbUnit::try_from(limit.unit) {
                    Ok(PbUnit::Second) => Some(Unit::Second),
                    Ok(PbUnit::Minute) => Some(Unit::Minute),
                    Ok(PbUnit::Hour) => Some(Unit::Hour),
                    Ok(PbUnit::Day) => Some(Unit::Day),
                    Ok(PbUnit::Week) => Some(Unit::Week),
                    Ok(PbUnit::Month) => Some(Unit::Month),
                    Ok(PbUnit::Year) => Some(Unit::Year),
                    Ok(PbUnit::Unknown) | Err(_) => None,
                },
            }),
            limit_remaining: status.limit_remaining,
            reset: status.duration_until_reset.map(|reset| {
                Duration::from_secs(reset.seconds.max(0) as u64)
                    + Duration::from_nanos(reset.nanos.max(0) as u64)
            }),
        }),
    }
}

#[test]
fn responses_prost_encodes_with_every_field_decode_to_the_chosen_status() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..3_000 {
        let response = random_response(&mut rng);
        let bytes = response.encode_to_vec();
        assert_eq!(decode_response(&bytes), Ok(expected_response(&response)));
    }
}

#[test]
fn response_units_decode_by_their_response_enum_numbers_week_being_seven() {
    for (number, unit) in [
        (1, Unit::Second),
        (5, Unit::Month),
        (6, Unit::Year),
        (7, Unit::Week),
    ] {
        let status = DescriptorStatus {
            current_limit: Some(RateLimit {
                unit: number,
                ..RateLimit::default()
            }),
            ..DescriptorStatus::default()
        };
        let bytes = RateLimitResponse {
            statuses: vec![status],
            ..RateLimitResponse::default()
        }
        .encode_to_vec();
        let limit = decode_response(&bytes).ok().and_then(|r| r.status?.limit);
        assert_eq!(limit.and_then(|limit| limit.unit), Some(unit));
    }
}

#[test]
fn every_truncation_of_a_response_fails_or_parses_exactly_as_prost_does() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for _ in 0..300 {
        let bytes = random_response(&mut rng).encode_to_vec();
        for end in 0..=bytes.len() {
            let prefix = &bytes[..end];
            let ours = decode_response(prefix);
            let theirs = RateLimitResponse::decode(prefix);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "prefix of {end} bytes");
            if let Ok(theirs) = theirs {
                assert_eq!(ours, Ok(expected_response(&theirs)));
            }
        }
    }
}

#[test]
fn random_bytes_never_panic_and_agree_with_prost_when_both_parse() {
    let mut rng = Rng(0xFEED_FACE_CAFE_BEEF);
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        if let (Ok(ours), Ok(theirs)) =
            (decode_response(&bytes), RateLimitResponse::decode(&*bytes))
        {
            assert_eq!(ours, expected_response(&theirs), "{bytes:02x?}");
        }
    }
}

fn rule_of(bytes: &[u8]) -> Option<(&'static str, Rule)> {
    decode_response(bytes)
        .err()
        .map(|malformed| (malformed.message, malformed.rule))
}

#[test]
fn malformed_responses_name_the_message_and_the_rule_they_break() {
    const TOP: &str = "RateLimitResponse";
    const STATUS: &str = "RateLimitResponse.DescriptorStatus";
    let long = [
        0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
    ];
    let over_64_bits = [
        0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02,
    ];
    let cases: &[(&[u8], (&str, Rule))] = &[
        (&[0x08], (TOP, Rule::Truncated)),
        (&[0x08, 0x80], (TOP, Rule::Truncated)),
        (&[0x80], (TOP, Rule::Truncated)),
        (&[0x12, 0x05, 0x08], (TOP, Rule::Truncated)),
        (
            &[0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
            (TOP, Rule::Truncated),
        ),
        (&[0x09, 1, 2, 3, 4, 5, 6, 7], (TOP, Rule::Truncated)),
        (&[0x0D, 1, 2, 3], (TOP, Rule::Truncated)),
        (&long, (TOP, Rule::LongVarint)),
        (&over_64_bits, (TOP, Rule::LongVarint)),
        (&[0x00, 0x00], (TOP, Rule::FieldNumber)),
        (
            &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
            (TOP, Rule::FieldNumber),
        ),
        (&[0x0B], (TOP, Rule::WireType)),
        (&[0x0C], (TOP, Rule::WireType)),
        (&[0x0E], (TOP, Rule::WireType)),
        (&[0x0F], (TOP, Rule::WireType)),
        (&[0x12, 0x02, 0x08, 0x80], (STATUS, Rule::Truncated)),
        (&[0x12, 0x01, 0x0F], (STATUS, Rule::WireType)),
        (
            &[0x12, 0x04, 0x12, 0x02, 0x08, 0x80],
            ("RateLimitResponse.RateLimit", Rule::Truncated),
        ),
        (
            &[0x12, 0x03, 0x22, 0x01, 0x0B],
            ("google.protobuf.Duration", Rule::WireType),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(rule_of(bytes), Some(*expected), "{bytes:02x?}");
    }
}

#[test]
fn ten_byte_varints_are_read_whole_negative_enums_and_padded_numbers_alike() {
    // overall_code -1: an int32 enum's negative value takes ten bytes; it is no Code.
    let negative = RateLimitResponse {
        overall_code: -1,
        ..RateLimitResponse::default()
    }
    .encode_to_vec();
    assert_eq!(negative.len(), 11);
    assert_eq!(
        decode_response(&negative).map(|r| r.overall),
        Ok(Code::Unknown)
    );
    // OVER_LIMIT padded to ten bytes with zero groups, which the wire format allows.
    let padded = [
        0x08, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
    ];
    assert_eq!(
        decode_response(&padded).map(|r| r.overall),
        Ok(Code::OverLimit)
    );
    // Only the low 32 bits of an enum count, as in prost.
    let high = [0x08, 0x82, 0x80, 0x80, 0x80, 0x10];
    assert_eq!(
        decode_response(&high).map(|r| r.overall),
        Ok(Code::OverLimit)
    );
    assert_eq!(
        RateLimitResponse::decode(&high[..])
            .map(|r| r.overall_code)
            .ok(),
        Some(2)
    );
}

#[test]
fn a_known_field_with_another_wire_type_is_skipped_like_an_unknown_field() {
    // overall_code as a string, then as a varint: only the varint counts.
    let bytes = [0x0A, 0x01, b'x', 0x08, 0x02];
    assert_eq!(
        decode_response(&bytes).map(|r| r.overall),
        Ok(Code::OverLimit)
    );
}

#[test]
fn a_negative_reset_reads_as_zero_and_a_status_seen_in_parts_merges() {
    // duration_until_reset { seconds: -5 } then a second duration_until_reset { nanos: 7 }.
    let mut status = vec![0x22, 11, 0x08];
    status.extend_from_slice(&[0xFB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    status.extend_from_slice(&[0x22, 2, 0x10, 7]);
    let mut bytes = vec![0x12, status.len() as u8];
    bytes.extend_from_slice(&status);
    let theirs = RateLimitResponse::decode(&*bytes).ok();
    let reset = theirs
        .as_ref()
        .and_then(|r| r.statuses[0].duration_until_reset);
    assert_eq!(
        reset,
        Some(pb::Duration {
            seconds: -5,
            nanos: 7
        })
    );
    let ours = decode_response(&bytes).ok().and_then(|r| r.status?.reset);
    assert_eq!(ours, Some(Duration::from_nanos(7)));
}

#[test]
fn the_over_limit_status_is_chosen_over_earlier_ones() {
    let status = |code: PbCode, remaining| DescriptorStatus {
        code: code as i32,
        limit_remaining: remaining,
        ..DescriptorStatus::default()
    };
    let bytes = RateLimitResponse {
        overall_code: PbCode::OverLimit as i32,
        statuses: vec![
            status(PbCode::Ok, 4),
            status(PbCode::OverLimit, 0),
            status(PbCode::OverLimit, 9),
        ],
        ..RateLimitResponse::default()
    }
    .encode_to_vec();
    let chosen = decode_response(&bytes).ok().and_then(|r| r.status);
    assert_eq!(
        chosen.map(|s| (s.code, s.limit_remaining)),
        Some((Code::OverLimit, 0))
    );
}

#[test]
fn unit_lengths_are_those_envoyproxy_ratelimit_divides_by() {
    let seconds: Vec<u64> = UNITS.into_iter().map(Unit::seconds).collect();
    assert_eq!(
        seconds,
        [1, 60, 3_600, 86_400, 604_800, 2_592_000, 31_536_000]
    );
}

#[test]
fn malformed_displays_the_message_and_the_rule() {
    let error = decode_response(&[0x0B]).err().map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some("malformed RateLimitResponse: unsupported wire type")
    );
}
