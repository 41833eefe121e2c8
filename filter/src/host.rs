//! The only module that talks to the host. Every call goes through `proxy_wasm::hostcalls`
//! (or std for WASI's clock) and every `Err(Status)` is handled here (the SDK's `Context`
//! helpers unwrap them instead).
//!
//! Caveat: proxy-wasm 0.2.5's `hostcalls` functions themselves `panic!` on any status they do
//! not list (most list only `Ok`, some `NotFound`/`CasMismatch`), so an `Err` here is rare and
//! an unlisted status still traps. Envoy returns only listed statuses for these calls in the
//! phases we make them (request headers in `on_http_request_headers`, response headers in
//! `on_http_response_headers`, one local reply per stream); avoiding the SDK's panics entirely
//! would take our own `unsafe` FFI declarations, which the workspace forbids.

use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, GrpcStatusCode, LogLevel, MapType, MetricType, Status};

use crate::clock::{floor_offset, raw_nanos};
use crate::counts::Counts;
use crate::policy::COUNTERS;
use crate::shared::{SharedStore, Written};

/// The host's monotonic clock in nanoseconds (WASI `clock_time_get(MONOTONIC)`, one
/// process-wide steady clock in Envoy): what bucket timestamps in shared data are. See
/// `clock` for how it is read without `unsafe`. Falls back to the wall clock if this build's
/// `Instant` has no floor to find (then every VM of the module falls back alike).
#[inline(always)]
pub fn now_ns() -> u64 {
    let Some(floor) = monotonic_floor() else {
        return wall_ns();
    };
    match Instant::now().checked_duration_since(*floor) {
        Some(since) => raw_nanos(since),
        None => 0,
    }
}

/// The smallest `Instant` this build can hold, found once per VM.
fn monotonic_floor() -> Option<&'static Instant> {
    static FLOOR: OnceLock<Option<Instant>> = OnceLock::new();
    FLOOR
        .get_or_init(|| {
            let now = Instant::now();
            let offset = floor_offset(|d| now.checked_sub(d).is_some())?;
            now.checked_sub(offset)
        })
        .as_ref()
}

/// Host wall-clock time in nanoseconds since the epoch; 0 if the host cannot tell (the bucket
/// maths treats that as a clock going backwards: nothing is minted).
fn wall_ns() -> u64 {
    let Ok(time) = hostcalls::get_current_time() else {
        return 0;
    };
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => duration_ns(since.as_secs(), since.subsec_nanos()),
        Err(_) => 0,
    }
}

/// `secs * 10^9 + nanos`, saturating. Not `Duration::as_nanos` (u128) nor `saturating_mul`
/// (a 128-bit multiply call in wasm32): one compare instead.
#[inline(always)]
pub fn duration_ns(secs: u64, nanos: u32) -> u64 {
    const MAX_SECS: u64 = u64::MAX / 1_000_000_000;
    if secs > MAX_SECS {
        return u64::MAX;
    }
    // secs <= MAX_SECS: the product fits.
    secs.wrapping_mul(1_000_000_000)
        .saturating_add(u64::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_ns_is_the_saturating_nanosecond_count() {
        let reference = |secs: u64, nanos: u32| {
            secs.saturating_mul(1_000_000_000)
                .saturating_add(u64::from(nanos))
        };
        let max_secs = u64::MAX / 1_000_000_000;
        for secs in [
            0,
            1,
            1_700_000_000,
            max_secs - 1,
            max_secs,
            max_secs + 1,
            u64::MAX,
        ] {
            for nanos in [0, 1, 709_551_615, 709_551_616, 999_999_999] {
                assert_eq!(duration_ns(secs, nanos), reference(secs, nanos));
            }
        }
        assert_eq!(duration_ns(0, 0), 0);
        assert_eq!(duration_ns(max_secs, 709_551_615), u64::MAX);
        assert_eq!(duration_ns(u64::MAX, 999_999_999), u64::MAX);
        let d = std::time::Duration::from_nanos(u64::MAX - 3);
        assert_eq!(duration_ns(d.as_secs(), d.subsec_nanos()), u64::MAX - 3);
    }
}

/// The plugin configuration bytes (`pluginConfig` as JSON), empty if there are none.
pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// One log line; a host that refuses it is ignored.
pub fn log(level: LogLevel, message: &str) {
    let _ignored: Result<(), Status> = hostcalls::log(level, message);
}

/// Ask for `on_tick` every `period`; a host that refuses it is ignored (the SDK traps on a
/// refusal rather than return it, and Envoy accepts any period).
pub fn set_tick_period(period: Duration) {
    let _ignored: Result<(), Status> = hostcalls::set_tick_period(period);
}

/// A request header's value, if present.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

/// Starts a `ShouldRateLimit` call to the rate limit service at `upstream` (a serialized
/// `GrpcService`); its token, or `None` when the proxy refuses (no such cluster).
pub fn dispatch_rls(upstream: &str, message: &[u8], timeout: Duration) -> Option<u32> {
    hostcalls::dispatch_grpc_call(
        upstream,
        crate::rls::SERVICE,
        crate::rls::METHOD,
        Vec::new(),
        Some(message),
        timeout,
    )
    .ok()
}

/// The message of the gRPC answer being delivered, if any.
pub fn grpc_response(size: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
        .ok()
        .flatten()
}

/// Lets a paused request go on upstream.
pub fn resume_request() {
    let _ignored = hostcalls::resume_http_request();
}

/// The downstream address (`source.address` property, e.g. `10.0.0.1:5000`), if known.
pub fn source_address() -> Option<Vec<u8>> {
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
}

/// Remove a response header (absent is fine).
pub fn remove_response_header(name: &str) {
    let _ignored = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
}

/// Set (replace) a response header.
#[inline(always)]
pub fn set_response_header(name: &str, value: &str) {
    let _ignored = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
}

/// Add a response header as a field line of its own, keeping any there (Envoy's `addCopy`).
#[inline(always)]
pub fn add_response_header(name: &str, value: &str) {
    let _ignored = hostcalls::add_map_value(MapType::HttpResponseHeaders, name, value);
}

/// Send the local reply; false if the host refused (the caller then lets the request through).
pub fn send_local_reply(status: u32, headers: Vec<(&str, &str)>, body: &str) -> bool {
    hostcalls::send_http_response(status, headers, Some(body.as_bytes())).is_ok()
}

/// Answer a gRPC request with `RESOURCE_EXHAUSTED`, `message` as its `grpc-message` and
/// `headers` on the trailers-only reply; false if the host refused.
pub fn send_grpc_exhausted(headers: &[(&str, &str)], message: &str) -> bool {
    let metadata = headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    hostcalls::send_grpc_response(GrpcStatusCode::ResourceExhausted, Some(message), metadata)
        .is_ok()
}

/// Counts a configuration this filter refused, in `hrl.config_rejected` (not per policy: a
/// refused configuration may not name one). Straight to the host: there is no policy whose
/// tick would flush it.
pub fn count_rejected_config() {
    if let Ok(id) = hostcalls::define_metric(MetricType::Counter, CONFIG_REJECTED) {
        let _ignored = hostcalls::increment_metric(id, 1);
    }
}

/// The metric counting refused configurations.
pub const CONFIG_REJECTED: &str = "hrl.config_rejected";

/// The policy's counters: counted in the VM (`counts::Counts`), handed to the host by `flush`
/// (on a tick). A counter the host refused to define is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    ids: [Option<u32>; COUNTERS],
    /// Counted since the last flush.
    pub counts: Counts,
}

impl Metrics {
    /// Define every counter (the host returns the existing one for a known name).
    pub fn define(names: &[String; COUNTERS]) -> Metrics {
        Metrics {
            ids: names
                .each_ref()
                .map(|name| hostcalls::define_metric(MetricType::Counter, name).ok()),
            counts: Counts::default(),
        }
    }

    /// Hand what was counted since the last flush to the host: one call per counter that
    /// moved. A count the host refuses is dropped (it would refuse it again).
    pub fn flush(&self) {
        self.counts.drain(|index, count| {
            if let Some(Some(id)) = self.ids.get(index) {
                let offset = i64::try_from(count).unwrap_or(i64::MAX);
                let _ignored = hostcalls::increment_metric(*id, offset);
            }
        });
    }
}

/// Proxy shared data through host calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStore;

impl SharedStore for HostStore {
    #[inline(always)]
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            Ok((None, _)) | Err(_) => None,
        }
    }

    #[inline(always)]
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written {
        let cas = if cas == 0 { None } else { Some(cas) };
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Written::Stored,
            Err(_) => Written::Conflict,
        }
    }
}
