//! Numbers and encodings of the proxy-wasm ABI 0.2.1 (as the Rust SDK 0.2.5 and Envoy use them).

use crate::header_map::HeaderMap;

/// `proxy_result_t` values returned by host functions.
pub(crate) mod status {
    pub const OK: u32 = 0;
    pub const NOT_FOUND: u32 = 1;
    pub const BAD_ARGUMENT: u32 = 2;
    pub const SERIALIZATION_FAILURE: u32 = 3;
    pub const PARSE_FAILURE: u32 = 4;
    pub const INVALID_MEMORY_ACCESS: u32 = 6;
    pub const CAS_MISMATCH: u32 = 8;
    pub const INTERNAL_FAILURE: u32 = 10;
    pub const UNIMPLEMENTED: u32 = 12;
}

/// `proxy_map_type_t`.
pub(crate) mod map_type {
    pub const HTTP_REQUEST_HEADERS: u32 = 0;
    pub const HTTP_RESPONSE_HEADERS: u32 = 2;
    /// The largest map type of ABI 0.2.1 (`HttpCallResponseTrailers`).
    pub const MAX: u32 = 7;
}

/// `proxy_buffer_type_t`.
pub(crate) mod buffer_type {
    pub const HTTP_REQUEST_BODY: u32 = 0;
    pub const HTTP_RESPONSE_BODY: u32 = 1;
    pub const GRPC_RECEIVE_BUFFER: u32 = 5;
    pub const VM_CONFIGURATION: u32 = 6;
    pub const PLUGIN_CONFIGURATION: u32 = 7;
    /// The largest buffer type of ABI 0.2.1 (`CallData`).
    pub const MAX: u32 = 8;
}

/// `proxy_action_t` returned by header/body callbacks.
pub(crate) const ACTION_CONTINUE: u32 = 0;

/// `proxy_stream_type_t` of `proxy_continue_stream`.
pub(crate) mod stream_type {
    pub const HTTP_REQUEST: u32 = 0;
    pub const HTTP_RESPONSE: u32 = 1;
    pub const DOWNSTREAM: u32 = 2;
    pub const UPSTREAM: u32 = 3;
}

/// Log levels of `proxy_log`, as the SDK numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0
    Trace,
    /// 1
    Debug,
    /// 2
    Info,
    /// 3
    Warn,
    /// 4
    Error,
    /// 5
    Critical,
}

impl LogLevel {
    pub(crate) fn from_abi(level: u32) -> Option<LogLevel> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }

    pub(crate) fn to_abi(self) -> u32 {
        self as u32
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        })
    }
}

/// Size of the serialized form of `map`: count, two lengths per pair, NUL-terminated bytes.
pub(crate) fn pairs_size(map: &HeaderMap) -> usize {
    map.iter().fold(4, |size, (name, value)| {
        size + 8 + name.len() + value.len() + 2
    })
}

/// Serializes `map` into `out` (exactly [`pairs_size`] bytes long).
pub(crate) fn write_pairs(map: &HeaderMap, out: &mut [u8]) {
    let mut lengths = 4;
    let mut data = 4 + 8 * map.len();
    put_u32(out, 0, map.len());
    for (name, value) in map.iter() {
        put_u32(out, lengths, name.len());
        put_u32(out, lengths + 4, value.len());
        lengths += 8;
        for bytes in [name, value] {
            if let Some(dst) = out.get_mut(data..data + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            if let Some(nul) = out.get_mut(data + bytes.len()) {
                *nul = 0;
            }
            data += bytes.len() + 1;
        }
    }
}

fn put_u32(out: &mut [u8], at: usize, value: usize) {
    let value = u32::try_from(value).unwrap_or(u32::MAX);
    if let Some(dst) = out.get_mut(at..at + 4) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}

fn get_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

/// Serialized pairs, checked whole before any pair is handed out, so a malformed buffer
/// (SerializationFailure) changes nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pairs<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Pairs<'a> {
    /// `None` when the bytes are malformed. Empty bytes are zero pairs.
    pub fn parse(bytes: &'a [u8]) -> Option<Pairs<'a>> {
        if bytes.is_empty() {
            return Some(Pairs { bytes, count: 0 });
        }
        let pairs = Pairs {
            bytes,
            count: get_u32(bytes, 0)?,
        };
        pairs.walk(|_, _| {})?;
        Some(pairs)
    }

    /// Calls `f` with each (name, value) in order.
    pub fn for_each(&self, f: impl FnMut(&'a [u8], &'a [u8])) {
        let _checked_by_parse = self.walk(f);
    }

    fn walk(&self, mut f: impl FnMut(&'a [u8], &'a [u8])) -> Option<()> {
        let bytes = self.bytes;
        let mut data = self.count.checked_mul(8)?.checked_add(4)?;
        if self.count > 0 && data > bytes.len() {
            return None;
        }
        for index in 0..self.count {
            let name_len = get_u32(bytes, 4 + index * 8)?;
            let value_len = get_u32(bytes, 8 + index * 8)?;
            let name = bytes.get(data..data.checked_add(name_len)?)?;
            data = data + name_len + 1;
            let value = bytes.get(data..data.checked_add(value_len)?)?;
            data = data + value_len + 1;
            f(name, value);
        }
        Some(())
    }
}

/// Header bytes as text; invalid UTF-8 (never produced by our filter) is replaced, not fatal.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    text(bytes).into_owned()
}

/// Bytes as text without copying: borrowed when valid UTF-8 (the fast `from_utf8` check),
/// else replaced like `String::from_utf8_lossy`.
pub(crate) fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(pairs: Pairs<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        pairs.for_each(|n, v| out.push((n.to_vec(), v.to_vec())));
        out
    }

    #[test]
    fn pairs_round_trip_through_the_sdk_encoding() {
        let mut map = HeaderMap::default();
        map.add(b":method", b"GET");
        map.add(b"powered-by", b"");
        let mut out = vec![0xaa; pairs_size(&map)];
        write_pairs(&map, &mut out);
        assert_eq!(&out[..12], &[2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0]);
        let pairs = Pairs::parse(&out).map(collect);
        let expected = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b"powered-by".to_vec(), Vec::new()),
        ];
        assert_eq!(pairs, Some(expected));
    }

    #[test]
    fn truncated_pairs_are_a_serialization_failure() {
        assert!(Pairs::parse(&[1, 0, 0, 0, 5, 0, 0, 0]).is_none());
        // The second pair's value runs past the end: refused whole, the first is not handed out.
        let mut map = HeaderMap::default();
        map.add(b"a", b"1");
        map.add(b"b", b"2");
        let mut out = vec![0; pairs_size(&map)];
        write_pairs(&map, &mut out);
        out.truncate(out.len() - 2);
        assert!(Pairs::parse(&out).is_none());
        assert_eq!(Pairs::parse(&[]).map(collect), Some(Vec::new()));
        assert!(Pairs::parse(&[1, 0, 0]).is_none(), "a partial count");
    }

    #[test]
    fn a_zero_count_with_trailing_bytes_is_no_pairs() {
        assert_eq!(
            Pairs::parse(&[0, 0, 0, 0, 9, 9]).map(collect),
            Some(Vec::new())
        );
    }

    #[test]
    fn huge_counts_and_lengths_are_refused_without_overflow() {
        assert!(Pairs::parse(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_none());
        let mut bytes = vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(b"a\0b\0");
        assert!(Pairs::parse(&bytes).is_none());
    }
}
