//! How Envoy turns a module's local reply into the response (`Http::Utility::sendLocalReply`,
//! `source/common/http/utility.cc`), HTTP and gRPC alike.

use crate::header_map::HeaderMap;

/// `grpc-status` values Envoy accepts from `proxy_send_local_response` (`Ok` ..=
/// `Unauthenticated`, its `MaximumKnown`); anything else (the SDKs pass -1 for "none") is no
/// gRPC status (`context.cc`, `Context::sendLocalResponse`).
pub(crate) const MAX_KNOWN_GRPC_STATUS: i32 = 16;

/// A local reply requested by the module.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalReply {
    pub status: u32,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    /// The gRPC status the module passed, if it is one Envoy knows.
    pub grpc_status: Option<u32>,
}

impl LocalReply {
    pub fn clear(&mut self) {
        self.status = 0;
        self.body.clear();
        self.headers.clear();
        self.grpc_status = None;
    }

    /// Writes the response Envoy sends for this reply into `headers` and `body`. Not gRPC:
    /// `:status`, `content-length` and `content-type: text/plain` when there is a body, the
    /// module's headers, the body. For a gRPC request a trailers-only response: `:status: 200`,
    /// the module's headers, `content-type: application/grpc`, `grpc-status` (the module's, else
    /// the HTTP status mapped by `Grpc::Utility::httpToGrpcStatus`, unless a module header set
    /// one), `grpc-message` (the body, percent-encoded) and no body.
    pub fn write(&self, grpc: bool, headers: &mut HeaderMap, body: &mut Vec<u8>) {
        headers.clear();
        body.clear();
        let mut digits = [0; 20];
        if grpc {
            headers.add(b":status", b"200");
            for (name, value) in self.headers.iter() {
                headers.add(name, value);
            }
            headers.replace(b"content-type", b"application/grpc");
            if headers.first(b"grpc-status").is_none() {
                let status = self
                    .grpc_status
                    .unwrap_or_else(|| http_to_grpc_status(self.status));
                headers.add(b"grpc-status", decimal(u64::from(status), &mut digits));
            }
            if !self.body.is_empty() {
                headers.replace(b"grpc-message", &percent_encode(&self.body));
            }
            headers.remove(b"content-length");
            return;
        }
        headers.add(b":status", decimal(u64::from(self.status), &mut digits));
        if !self.body.is_empty() {
            let length = decimal(self.body.len() as u64, &mut digits);
            headers.add(b"content-length", length);
            headers.add(b"content-type", b"text/plain");
        }
        for (name, value) in self.headers.iter() {
            headers.add(name, value);
        }
        body.extend_from_slice(&self.body);
    }
}

/// Envoy's `Grpc::Common::isGrpcRequestHeaders`: a `:path` and a `content-type` that is
/// `application/grpc` or starts with `application/grpc+` (`hasGrpcContentType`).
pub(crate) fn is_grpc_request(headers: &HeaderMap) -> bool {
    if headers.first(b":path").is_none() {
        return false;
    }
    match headers
        .first(b"content-type")
        .and_then(|value| value.strip_prefix(b"application/grpc"))
    {
        Some(rest) => rest.is_empty() || rest.first() == Some(&b'+'),
        None => false,
    }
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus` (`source/common/grpc/status.cc`).
pub(crate) fn http_to_grpc_status(http: u32) -> u32 {
    match http {
        400 => 13,                   // Internal
        401 => 16,                   // Unauthenticated
        403 => 7,                    // PermissionDenied
        404 => 12,                   // Unimplemented
        429 | 502 | 503 | 504 => 14, // Unavailable
        _ => 2,                      // Unknown
    }
}

/// Envoy's `Http::Utility::PercentEncoding::encode` with its default reserved `%`: bytes below
/// space, from `~` up, and `%` become `%XX` (upper-case hex).
pub(crate) fn percent_encode(bytes: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(bytes.len());
    for &byte in bytes {
        if !(b' '..b'~').contains(&byte) || byte == b'%' {
            out.push(b'%');
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
        } else {
            out.push(byte);
        }
    }
    out
}

/// `n` in decimal ASCII, written into `digits`.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
        map.to_headers()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn reply(grpc_status: Option<u32>) -> LocalReply {
        let mut reply = LocalReply {
            status: 429,
            grpc_status,
            ..LocalReply::default()
        };
        reply.body.extend_from_slice(b"slow down\n");
        reply.headers.add(b"Retry-After", b"1");
        reply
    }

    #[test]
    fn an_http_reply_is_status_length_type_then_the_module_headers_and_the_body() {
        let (mut headers, mut body) = (HeaderMap::default(), Vec::new());
        reply(Some(8)).write(false, &mut headers, &mut body);
        assert_eq!(
            pairs(&headers),
            owned(&[
                (":status", "429"),
                ("content-length", "10"),
                ("content-type", "text/plain"),
                ("retry-after", "1"),
            ])
        );
        assert_eq!(body, b"slow down\n");
    }

    #[test]
    fn a_grpc_reply_is_trailers_only_with_the_modules_status_or_the_mapped_http_status() {
        let (mut headers, mut body) = (HeaderMap::default(), b"stale".to_vec());
        reply(Some(8)).write(true, &mut headers, &mut body);
        assert_eq!(
            pairs(&headers),
            owned(&[
                (":status", "200"),
                ("retry-after", "1"),
                ("content-type", "application/grpc"),
                ("grpc-status", "8"),
                ("grpc-message", "slow down%0A"),
            ])
        );
        assert!(body.is_empty());
        reply(None).write(true, &mut headers, &mut body);
        assert_eq!(
            headers.first(b"grpc-status"),
            Some(&b"14"[..]),
            "429 -> UNAVAILABLE"
        );
    }

    #[test]
    fn grpc_requests_are_recognised_as_envoy_does() {
        let request = |content_type: &str, path: bool| {
            let mut headers = HeaderMap::default();
            if path {
                headers.add(b":path", b"/pkg.Service/Method");
            }
            headers.add(b"content-type", content_type.as_bytes());
            is_grpc_request(&headers)
        };
        assert!(request("application/grpc", true));
        assert!(request("application/grpc+proto", true));
        assert!(!request("application/grpc-web", true));
        assert!(!request("application/grpc;x=1", true));
        assert!(!request("application/grpc", false), "no :path");
        assert!(!request("text/plain", true));
    }

    #[test]
    fn http_statuses_map_to_grpc_statuses_like_envoy() {
        let mapped: Vec<u32> = [400, 401, 403, 404, 429, 502, 503, 504, 500, 418]
            .into_iter()
            .map(http_to_grpc_status)
            .collect();
        assert_eq!(mapped, [13, 16, 7, 12, 14, 14, 14, 14, 2, 2]);
    }

    #[test]
    fn percent_encoding_escapes_controls_tilde_and_up_and_percent() {
        assert_eq!(percent_encode(b"a b%c~\n\xff"), b"a b%25c%7E%0A%FF");
        assert_eq!(percent_encode(b"rate limited"), b"rate limited");
    }

    #[test]
    fn decimal_writes_zero_and_the_largest_u64() {
        let mut digits = [0; 20];
        assert_eq!(decimal(0, &mut digits), b"0");
        assert_eq!(decimal(429, &mut digits), b"429");
        assert_eq!(decimal(u64::MAX, &mut digits), b"18446744073709551615");
    }
}
