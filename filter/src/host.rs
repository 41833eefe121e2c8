//! The only module that talks to the host. Every call goes through `proxy_wasm::hostcalls` and
//! every `Err(Status)` is handled here (the SDK's `Context` helpers unwrap them instead).
//!
//! Caveat: proxy-wasm 0.2.5's `hostcalls` functions themselves `panic!` on any status they do
//! not list (most list only `Ok`, some `NotFound`/`CasMismatch`), so an `Err` here is rare and
//! an unlisted status still traps. Envoy returns only listed statuses for these calls in the
//! phases we make them (request headers in `on_http_request_headers`, response headers in
//! `on_http_response_headers`, one local reply per stream); avoiding the SDK's panics entirely
//! would take our own `unsafe` FFI declarations, which the workspace forbids.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};

use crate::headers::merge_list_item;
use crate::policy::{COUNTERS, Counter};
use crate::shared::{SharedStore, Written};

/// Host time in nanoseconds since the epoch; 0 if the host cannot tell (the bucket maths
/// treats that as a clock going backwards: nothing is minted).
#[inline(always)]
pub fn now_ns() -> u64 {
    // Plain matches: the `Option` combinators' closures are not inlined at opt-level z.
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

/// A request header's value, if present.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
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

/// Sets a list header (`RateLimit`, `RateLimit-Policy`) so that it carries `item` once and
/// keeps its other members: another policy's on the same workload, or the upstream's.
/// `buffer` holds the merged value.
pub fn set_response_list_member(name: &str, item: &str, buffer: &mut String) {
    match hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name) {
        // Already exactly this member (a local reply of this policy): nothing to change.
        Ok(Some(existing)) if existing == item.as_bytes() => {}
        Ok(Some(existing)) if !existing.is_empty() => {
            merge_list_item(&existing, item, buffer);
            set_response_header(name, buffer);
        }
        _ => set_response_header(name, item),
    }
}

/// Send the local reply; false if the host refused (the caller then lets the request through).
pub fn send_local_reply(status: u32, headers: Vec<(&str, &str)>, body: &str) -> bool {
    hostcalls::send_http_response(status, headers, Some(body.as_bytes())).is_ok()
}

/// The policy's counters; a counter the host refused to define is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    ids: [Option<u32>; COUNTERS],
}

impl Metrics {
    /// Define every counter (the host returns the existing one for a known name).
    pub fn define(names: &[String; COUNTERS]) -> Metrics {
        Metrics {
            ids: names
                .each_ref()
                .map(|name| hostcalls::define_metric(MetricType::Counter, name).ok()),
        }
    }

    /// Add one to each counter that is `Some`.
    #[inline(always)]
    pub fn bump_each(&self, counters: &[Option<Counter>]) {
        for counter in counters {
            let Some(counter) = counter else {
                continue;
            };
            self.bump(*counter);
        }
    }

    /// Add one to a counter.
    #[inline(always)]
    pub fn bump(&self, counter: Counter) {
        if let Some(Some(id)) = self.ids.get(counter as usize) {
            let _ignored = hostcalls::increment_metric(*id, 1);
        }
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
