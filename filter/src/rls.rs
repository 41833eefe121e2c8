//! Envoy's rate limit service (RLS v3) on the wire, written by hand: prost would cost the module
//! more than its size budget allows. Pure; encodes `RateLimitRequest` and the `GrpcService` the
//! call goes to, decodes the part of `RateLimitResponse` the filter uses and skips the rest.
//!
//! Field numbers and types are those of envoyproxy/envoy `api/envoy/service/ratelimit/v3/rls.proto`,
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto`, `api/envoy/type/v3/ratelimit_unit.proto`
//! and `api/envoy/config/core/v3/grpc_service.proto`; the tests check them against the prost
//! types the `envoy-types` crate generates from the same files.

use std::fmt;
use std::time::Duration;

/// The gRPC service of `ShouldRateLimit`.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// The one method the filter calls.
pub const METHOD: &str = "ShouldRateLimit";

/// A limit's time unit: `RateLimitResponse.RateLimit.Unit` (the override's
/// `envoy.type.v3.RateLimitUnit` has all but `Week`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// The unit's length as envoyproxy/ratelimit counts it (`utils.UnitToDivider`: a month is
    /// 30 days, a year 365).
    pub fn seconds(self) -> u64 {
        const DAY: u64 = 86_400;
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => DAY,
            Unit::Week => 7 * DAY,
            Unit::Month => 30 * DAY,
            Unit::Year => 365 * DAY,
        }
    }

    /// The response enum's number (WEEK was added last, as 7).
    fn from_response(value: i32) -> Option<Unit> {
        Some(match value {
            1 => Unit::Second,
            2 => Unit::Minute,
            3 => Unit::Hour,
            4 => Unit::Day,
            5 => Unit::Month,
            6 => Unit::Year,
            7 => Unit::Week,
            _ => return None,
        })
    }
}

/// A descriptor's own limit (`RateLimitDescriptor.RateLimitOverride`), used by the service
/// instead of its configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    requests_per_unit: u32,
    /// `envoy.type.v3.RateLimitUnit`'s number, 1 to 6.
    unit: u8,
}

impl Override {
    /// `None` for `Week`: the override's enum has no week (`defined_only` in Envoy's schema).
    pub fn new(requests_per_unit: u32, unit: Unit) -> Option<Override> {
        let unit = match unit {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => return None,
        };
        Some(Override {
            requests_per_unit,
            unit,
        })
    }
}

/// One `RateLimitDescriptor`: its entries (key, value) in order, and an optional override.
#[derive(Debug, Clone, Copy)]
pub struct Descriptor<'a> {
    pub entries: &'a [(&'a str, &'a str)],
    pub limit: Option<Override>,
}

/// Appends a serialized `RateLimitRequest` to `out` (no gRPC frame: the host adds it).
/// `hits_addend` 0 and 1 are left out: both mean one hit (rls.proto; envoyproxy/ratelimit
/// `utils.GetHitsAddends` takes `max(1, hits_addend)`).
pub fn encode_request(
    domain: &str,
    descriptors: &[Descriptor<'_>],
    hits_addend: u32,
    out: &mut Vec<u8>,
) {
    put_bytes(out, 1, domain.as_bytes());
    for descriptor in descriptors {
        put_len(out, 2, descriptor_len(descriptor));
        for (key, value) in descriptor.entries {
            put_len(out, 1, entry_len(key, value));
            put_bytes(out, 1, key.as_bytes());
            put_bytes(out, 2, value.as_bytes());
        }
        if let Some(limit) = descriptor.limit {
            put_len(out, 2, override_len(limit));
            put_varint_field(out, 1, limit.requests_per_unit.into());
            put_varint_field(out, 2, limit.unit.into());
        }
    }
    if hits_addend > 1 {
        put_varint_field(out, 3, hits_addend.into());
    }
}

/// The `upstream` argument of `dispatch_grpc_call`: a serialized `GrpcService` with
/// `envoy_grpc { cluster_name, authority }` (an empty `authority` means the cluster name,
/// `Grpc::AsyncStreamImpl::initialize`).
///
/// `None` when `cluster_name` is empty, or when the bytes are not UTF-8, which the SDK's `&str`
/// argument needs: they are exactly when `envoy_grpc` is under 128 bytes (a longer one has a
/// two-byte length, never UTF-8), so cluster name and authority stay under about 124 bytes. No `timeout`: Envoy's `Context::grpcCall` times the call with
/// the call's own timeout argument and never reads this one.
pub fn grpc_service(cluster_name: &str, authority: &str) -> Option<String> {
    if cluster_name.is_empty() {
        return None;
    }
    let envoy_grpc = field_len(cluster_name.len()).saturating_add(field_len(authority.len()));
    let mut out = Vec::with_capacity(field_len(envoy_grpc));
    put_len(&mut out, 1, envoy_grpc);
    put_bytes(&mut out, 1, cluster_name.as_bytes());
    put_bytes(&mut out, 2, authority.as_bytes());
    String::from_utf8(out).ok()
}

/// `RateLimitResponse.Code`; a number it does not define reads as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Code {
    #[default]
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn from_wire(value: i32) -> Code {
        match value {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// What the filter uses of a `RateLimitResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Response {
    pub overall: Code,
    /// The first `OVER_LIMIT` status, else the first status; `None` without statuses.
    pub status: Option<Status>,
}

/// One `DescriptorStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    pub code: Code,
    /// `current_limit`, when the service sent one.
    pub limit: Option<Limit>,
    pub limit_remaining: u32,
    /// `duration_until_reset`, negative parts read as zero.
    pub reset: Option<Duration>,
}

/// `RateLimitResponse.RateLimit` without its `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limit {
    pub requests_per_unit: u32,
    /// `None` for `UNKNOWN` or a number this code does not know.
    pub unit: Option<Unit>,
}

/// Bytes that are not a `RateLimitResponse`: which message, and which wire rule failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub message: &'static str,
    pub rule: Rule,
}

/// The wire format rule a [`Malformed`] input breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A varint, a length or a fixed-size value runs past the end.
    Truncated,
    /// A varint of more than 10 bytes or 64 bits.
    LongVarint,
    /// Field number 0 or over 2^29 - 1.
    FieldNumber,
    /// Wire type 3 or 4 (groups, not in proto3) or 6, 7 (undefined).
    WireType,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = match self.rule {
            Rule::Truncated => "truncated",
            Rule::LongVarint => "varint over 64 bits",
            Rule::FieldNumber => "field number out of range",
            Rule::WireType => "unsupported wire type",
        };
        write!(f, "malformed {}: {rule}", self.message)
    }
}

impl std::error::Error for Malformed {}

/// Decodes a serialized `RateLimitResponse` (no gRPC frame). Fields it does not use are skipped
/// by wire type; a known field with another wire type is skipped too, as Envoy's C++ and the Go
/// protobuf runtimes treat it as an unknown field.
pub fn decode_response(bytes: &[u8]) -> Result<Response, Malformed> {
    let mut response = Response::default();
    let mut first_over_limit = false;
    each_field(bytes, "RateLimitResponse", &mut |number, value| {
        match (number, value) {
            (1, Value::Varint(code)) => response.overall = Code::from_wire(code as i32),
            (2, Value::Bytes(status)) => {
                let status = decode_status(status)?;
                // Keep the first status until the first OVER_LIMIT one replaces it.
                if response.status.is_none()
                    || (!first_over_limit && status.code == Code::OverLimit)
                {
                    first_over_limit = status.code == Code::OverLimit;
                    response.status = Some(status);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(response)
}

fn decode_status(bytes: &[u8]) -> Result<Status, Malformed> {
    let mut status = Status::default();
    // A message field seen twice merges field by field, so seconds and nanos are kept apart.
    let mut reset: Option<(i64, i32)> = None;
    each_field(
        bytes,
        "RateLimitResponse.DescriptorStatus",
        &mut |number, value| {
            match (number, value) {
                (1, Value::Varint(code)) => status.code = Code::from_wire(code as i32),
                (2, Value::Bytes(limit)) => {
                    decode_limit(limit, status.limit.get_or_insert_with(Limit::default))?;
                }
                // Narrower integers and enums are the varint's low bits, in every protobuf runtime.
                (3, Value::Varint(remaining)) => status.limit_remaining = remaining as u32,
                (4, Value::Bytes(duration)) => {
                    decode_duration(duration, reset.get_or_insert((0, 0)))?;
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    status.reset = reset.map(|(seconds, nanos)| {
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
            .saturating_add(Duration::from_nanos(u64::try_from(nanos).unwrap_or(0)))
    });
    Ok(status)
}

fn decode_duration(bytes: &[u8], (seconds, nanos): &mut (i64, i32)) -> Result<(), Malformed> {
    each_field(bytes, "google.protobuf.Duration", &mut |number, value| {
        match (number, value) {
            (1, Value::Varint(value)) => *seconds = value as i64,
            (2, Value::Varint(value)) => *nanos = value as i32,
            _ => {}
        }
        Ok(())
    })
}

fn decode_limit(bytes: &[u8], limit: &mut Limit) -> Result<(), Malformed> {
    each_field(
        bytes,
        "RateLimitResponse.RateLimit",
        &mut |number, value| {
            match (number, value) {
                (1, Value::Varint(requests)) => limit.requests_per_unit = requests as u32,
                (2, Value::Varint(unit)) => limit.unit = Unit::from_response(unit as i32),
                _ => {}
            }
            Ok(())
        },
    )
}

/// A field's value: varints and length-delimited bytes are read, fixed-size ones only skipped.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Calls `field` with each field of one message, in order.
fn each_field<'a>(
    mut rest: &'a [u8],
    message: &'static str,
    field: &mut dyn FnMut(u64, Value<'a>) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let malformed = |rule| Malformed { message, rule };
    while !rest.is_empty() {
        let key = varint(&mut rest).map_err(malformed)?;
        let number = key >> 3;
        if number == 0 || number > 0x1FFF_FFFF {
            return Err(malformed(Rule::FieldNumber));
        }
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut rest).map_err(malformed)?),
            1 => take(&mut rest, 8)
                .map(|_| Value::Fixed)
                .map_err(malformed)?,
            2 => {
                let len = varint(&mut rest).map_err(malformed)?;
                let len = usize::try_from(len).map_err(|_| malformed(Rule::Truncated))?;
                Value::Bytes(take(&mut rest, len).map_err(malformed)?)
            }
            5 => take(&mut rest, 4)
                .map(|_| Value::Fixed)
                .map_err(malformed)?,
            _ => return Err(malformed(Rule::WireType)),
        };
        field(number, value)?;
    }
    Ok(())
}

/// Reads one varint off the front of `rest`. The tenth byte may add only the 64th bit
/// (as prost and Go's protowire decide).
fn varint(rest: &mut &[u8]) -> Result<u64, Rule> {
    let mut value = 0u64;
    for (index, (&byte, shift)) in rest.iter().zip((0..64).step_by(7)).enumerate() {
        if shift == 63 && byte > 1 {
            return Err(Rule::LongVarint);
        }
        value |= u64::from(byte & 0x7F).checked_shl(shift).unwrap_or(0);
        if byte < 0x80 {
            *rest = rest.get(index.saturating_add(1)..).unwrap_or_default();
            return Ok(value);
        }
    }
    // Ten bytes end the loop by returning: fewer ran out.
    Err(Rule::Truncated)
}

fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], Rule> {
    let (taken, after) = rest.split_at_checked(len).ok_or(Rule::Truncated)?;
    *rest = after;
    Ok(taken)
}

/// Bytes a varint of `value` takes.
fn varint_len(value: u64) -> usize {
    let bits = u64::BITS.saturating_sub((value | 1).leading_zeros());
    bits.div_ceil(7) as usize
}

/// Bytes a length-delimited field of `len` bytes takes with its one-byte key, if not empty
/// (proto3 leaves empty strings out).
fn field_len(len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    varint_len(len as u64).saturating_add(len).saturating_add(1)
}

/// Like `field_len`, for a sub-message, which is written even when empty.
fn message_len(len: usize) -> usize {
    varint_len(len as u64).saturating_add(len).saturating_add(1)
}

fn entry_len(key: &str, value: &str) -> usize {
    field_len(key.len()).saturating_add(field_len(value.len()))
}

fn override_len(limit: Override) -> usize {
    let requests = match limit.requests_per_unit {
        0 => 0,
        requests => varint_len(requests.into()).saturating_add(1),
    };
    // The unit is 1 to 6: key and value take a byte each.
    requests.saturating_add(2)
}

fn descriptor_len(descriptor: &Descriptor<'_>) -> usize {
    let entries = descriptor
        .entries
        .iter()
        .map(|(key, value)| message_len(entry_len(key, value)))
        .fold(0usize, usize::saturating_add);
    let limit = descriptor
        .limit
        .map_or(0, |limit| message_len(override_len(limit)));
    entries.saturating_add(limit)
}

/// Writes a key; `number` is below 16 here, so the key is one byte.
fn put_key(out: &mut Vec<u8>, number: u8, wire_type: u8) {
    out.push(number << 3 | wire_type);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A varint field, left out when zero (proto3).
fn put_varint_field(out: &mut Vec<u8>, number: u8, value: u64) {
    if value != 0 {
        put_key(out, number, 0);
        put_varint(out, value);
    }
}

/// A string or bytes field, left out when empty (proto3).
fn put_bytes(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len(out, number, bytes.len());
        out.extend_from_slice(bytes);
    }
}

/// A length-delimited field's key and length; its bytes follow.
fn put_len(out: &mut Vec<u8>, number: u8, len: usize) {
    put_key(out, number, 2);
    put_varint(out, len as u64);
}

#[cfg(test)]
#[path = "rls_tests.rs"]
mod tests;
