//! Numbers and encodings of the proxy-wasm ABI 0.2.1 (as the Rust SDK 0.2.5 and Envoy use them).

/// `proxy_result_t` values returned by host functions.
pub(crate) mod status {
    pub const OK: u32 = 0;
    pub const NOT_FOUND: u32 = 1;
    pub const BAD_ARGUMENT: u32 = 2;
    pub const SERIALIZATION_FAILURE: u32 = 3;
    pub const INVALID_MEMORY_ACCESS: u32 = 6;
    pub const CAS_MISMATCH: u32 = 8;
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
    pub const VM_CONFIGURATION: u32 = 6;
    pub const PLUGIN_CONFIGURATION: u32 = 7;
    /// The largest buffer type of ABI 0.2.1 (`CallData`).
    pub const MAX: u32 = 8;
}

/// `proxy_action_t` returned by header/body callbacks.
pub(crate) const ACTION_CONTINUE: u32 = 0;

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

/// Size of the serialized form of `pairs`: count, two lengths per pair, NUL-terminated bytes.
pub(crate) fn pairs_size(pairs: &[(String, String)]) -> usize {
    pairs.iter().fold(4, |size, (name, value)| {
        size + 8 + name.len() + value.len() + 2
    })
}

/// Serializes `pairs` into `out` (exactly [`pairs_size`] bytes long).
pub(crate) fn write_pairs(pairs: &[(String, String)], out: &mut [u8]) {
    let mut lengths = 4;
    let mut data = 4 + 8 * pairs.len();
    put_u32(out, 0, pairs.len());
    for (name, value) in pairs {
        put_u32(out, lengths, name.len());
        put_u32(out, lengths + 4, value.len());
        lengths += 8;
        for bytes in [name.as_bytes(), value.as_bytes()] {
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

/// Parses serialized pairs; `None` when the bytes are malformed (SerializationFailure).
pub(crate) fn read_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = get_u32(bytes, 0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for index in 0..count {
        let name_len = get_u32(bytes, 4 + index * 8)?;
        let value_len = get_u32(bytes, 8 + index * 8)?;
        let name = bytes.get(data..data.checked_add(name_len)?)?;
        data = data + name_len + 1;
        let value = bytes.get(data..data.checked_add(value_len)?)?;
        data = data + value_len + 1;
        pairs.push((lossy(name), lossy(value)));
    }
    Some(pairs)
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

    #[test]
    fn pairs_round_trip_through_the_sdk_encoding() {
        let pairs = vec![
            (":method".to_string(), "GET".to_string()),
            ("powered-by".to_string(), String::new()),
        ];
        let mut out = vec![0xaa; pairs_size(&pairs)];
        write_pairs(&pairs, &mut out);
        assert_eq!(&out[..12], &[2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(read_pairs(&out), Some(pairs));
    }

    #[test]
    fn truncated_pairs_are_a_serialization_failure() {
        assert_eq!(read_pairs(&[1, 0, 0, 0, 5, 0, 0, 0]), None);
        assert_eq!(read_pairs(&[]), Some(Vec::new()));
    }
}
