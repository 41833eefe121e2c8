//! One unary gRPC call over HTTP/2 (h2c, prior knowledge), and how Envoy's gRPC async client
//! turns what comes back into `on_grpc_receive` or `on_grpc_close`
//! (`source/common/grpc/async_client_impl.cc`, `AsyncStreamImpl::onHeaders/onData/onTrailers`,
//! `AsyncRequestImpl::onRemoteClose`).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use super::pool::Pool;
use crate::local_reply::http_to_grpc_status;

/// gRPC status codes the host produces itself.
pub(crate) mod code {
    pub const OK: u32 = 0;
    pub const UNKNOWN: u32 = 2;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    /// Envoy's `InvalidCode` (-1) as the `uint32_t` `on_grpc_close` receives: a `grpc-status`
    /// that is not a number in 0..=16.
    pub const INVALID: u32 = u32::MAX;
}

/// How a call ended, as the module learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `grpc-status: 0` and a message: `proxy_on_grpc_receive` with it.
    Received(Vec<u8>),
    /// Anything else: `proxy_on_grpc_close` with this status and message.
    Closed { status: u32, message: Vec<u8> },
}

impl Outcome {
    pub fn closed(status: u32, message: &str) -> Outcome {
        Outcome::Closed {
            status,
            message: message.as_bytes().to_vec(),
        }
    }
}

/// A call ready to send: built while the module waits in `proxy_grpc_call`, so a request
/// that cannot be expressed fails there.
#[derive(Debug)]
pub(crate) struct CallRequest {
    pub address: String,
    pub request: hyper::Request<Full<Bytes>>,
    pub timeout: Option<Duration>,
}

/// The request Envoy's `Grpc::Common::prepareHeaders` builds, plus the module's metadata and
/// the message in one frame (`prependGrpcFrameHeader`: flag 0, big-endian length).
/// `None` when the path or authority cannot be a URI.
pub(crate) fn build(
    address: &str,
    authority: &str,
    path: &str,
    timeout_ms: u32,
    metadata: &[(Vec<u8>, Vec<u8>)],
    message: &[u8],
) -> Option<CallRequest> {
    // Envoy sends the cluster name verbatim; `http::Uri` refuses characters such as `|`
    // (Istio's `outbound|8081||...`), so such an authority becomes the address.
    let authority = if authority.parse::<hyper::http::uri::Authority>().is_ok() {
        authority
    } else {
        address
    };
    let uri = format!("http://{authority}{path}");
    let mut builder = hyper::Request::post(uri)
        .header("te", "trailers")
        .header("grpc-timeout", grpc_timeout(timeout_ms))
        .header("content-type", "application/grpc");
    for (name, value) in metadata {
        // Envoy lowercases names; pairs no HTTP/2 header can carry are left out.
        let name = HeaderName::from_bytes(&name.to_ascii_lowercase());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_bytes(value)) {
            builder = builder.header(name, value);
        }
    }
    let mut body = Vec::with_capacity(message.len() + 5);
    body.push(0);
    body.extend_from_slice(&u32::try_from(message.len()).ok()?.to_be_bytes());
    body.extend_from_slice(message);
    let request = builder.body(Full::new(Bytes::from(body))).ok()?;
    Some(CallRequest {
        address: address.to_owned(),
        request,
        // Envoy's async client treats 0 as no timeout (the router's global timeout 0).
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms))),
    })
}

/// Envoy's `Grpc::Common::toGrpcTimeout`: milliseconds, else coarser units, at most 8 digits.
pub(crate) fn grpc_timeout(ms: u32) -> String {
    const MAX: u64 = 99_999_999;
    let mut time = u64::from(ms);
    let mut units = ['m', 'S', 'M', 'H'].into_iter().peekable();
    let mut unit = units.next().unwrap_or('m');
    if time > MAX {
        time /= 1000;
        unit = units.next().unwrap_or('S');
    }
    while time > MAX {
        match units.next() {
            Some(next) => {
                time /= 60;
                unit = next;
            }
            None => time = MAX,
        }
    }
    format!("{time}{unit}")
}

/// Sends the call and waits for its outcome (or its deadline).
pub(crate) async fn send(pool: &Pool, call: CallRequest) -> Outcome {
    let exchange = exchange(pool, &call.address, call.request);
    match call.timeout {
        // The router's response timeout: a local `504 upstream request timeout`, which the
        // gRPC client reads as a trailers-only `UNAVAILABLE` (`httpToGrpcStatus(504)`).
        // Dropping the exchange resets only this call's stream; the connection stays pooled.
        Some(timeout) => tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Outcome::closed(code::UNAVAILABLE, "upstream request timeout")),
        None => exchange.await,
    }
}

/// The router's `503` local reply for a failure before response headers
/// (`Router::Filter::onUpstreamReset`), as the gRPC client reads it: `UNAVAILABLE`.
pub(super) fn reset_before_headers(reason: &str) -> Outcome {
    let message = format!(
        "upstream connect error or disconnect/reset before headers. reset reason: {reason}"
    );
    Outcome::closed(code::UNAVAILABLE, &message)
}

async fn exchange(pool: &Pool, address: &str, request: hyper::Request<Full<Bytes>>) -> Outcome {
    let response = match pool.send(address, request).await {
        Ok(response) => response,
        Err(outcome) => return outcome,
    };
    let (head, mut body) = response.into_parts();
    let headers_only = hyper::body::Body::is_end_stream(&body);
    let mut data = Vec::new();
    let mut trailers = None;
    if !headers_only {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(chunk) => data.extend_from_slice(&chunk),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                // A reset after the headers: `AsyncStreamImpl::onReset`.
                Err(_) => return Outcome::closed(code::INTERNAL, ""),
            }
        }
    }
    let answer = Answer {
        status: head.status.as_u16(),
        headers: &head.headers,
        // hyper may hand out a trailers-only response with a body that ends at once.
        headers_only: headers_only || (data.is_empty() && trailers.is_none()),
        data: &data,
        trailers: trailers.as_ref(),
    };
    answer.outcome()
}

/// A whole HTTP/2 response to a call.
#[derive(Debug)]
pub(crate) struct Answer<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    /// The headers ended the stream (trailers-only).
    pub headers_only: bool,
    pub data: &'a [u8],
    pub trailers: Option<&'a HeaderMap>,
}

impl Answer<'_> {
    pub fn outcome(&self) -> Outcome {
        if self.status != 200 {
            // Trailers-only with a grpc-status is used as is; otherwise the HTTP status maps.
            if self.headers_only && self.headers.contains_key("grpc-status") {
                return close(self.headers, None);
            }
            return Outcome::closed(http_to_grpc_status(u32::from(self.status)), "");
        }
        if self.headers_only {
            return close(self.headers, None);
        }
        let mut message = None;
        let mut rest = self.data;
        // Complete frames only; a partial one at the end is never a message.
        while let (Some(&flags), Some(len)) = (rest.first(), rest.get(1..5)) {
            let len = len.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
            let Some(payload) = rest.get(5..5 + len) else {
                break;
            };
            // Compressed (or any flagged) non-empty frames are refused.
            if len > 0 && flags != 0 {
                return Outcome::closed(code::INTERNAL, "");
            }
            message = Some(payload); // a unary call keeps the last one
            rest = &rest[5 + len..];
        }
        match self.trailers {
            Some(trailers) => close(trailers, message),
            // The stream ended with data, without trailers.
            None => Outcome::closed(code::UNKNOWN, ""),
        }
    }
}

/// `onTrailers` then `AsyncRequestImpl::onRemoteClose`: a missing grpc-status is UNKNOWN, an
/// unparsable or unknown one `InvalidCode`; OK without a message is INTERNAL.
fn close(trailers: &HeaderMap, message: Option<&[u8]>) -> Outcome {
    let status = match trailers.get("grpc-status") {
        None => code::UNKNOWN,
        Some(value) => std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.parse::<u32>().ok())
            .filter(|status| *status <= 16)
            .unwrap_or(code::INVALID),
    };
    match (status, message) {
        (code::OK, Some(message)) => Outcome::Received(message.to_vec()),
        (code::OK, None) => Outcome::closed(code::INTERNAL, ""),
        _ => Outcome::Closed {
            status,
            message: trailers
                .get("grpc-message")
                .map_or_else(Vec::new, |value| value.as_bytes().to_vec()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    fn frame(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    fn answer(
        status: u16,
        headers_only: bool,
        data: &[u8],
        trailers: Option<&HeaderMap>,
    ) -> Outcome {
        let headers = map(&[("content-type", "application/grpc")]);
        let headers = if headers_only {
            map(&[("grpc-status", "8"), ("grpc-message", "slow%20down")])
        } else {
            headers
        };
        Answer {
            status,
            headers: &headers,
            headers_only,
            data,
            trailers,
        }
        .outcome()
    }

    #[test]
    fn an_ok_call_with_a_message_is_received_and_keeps_the_last_message() {
        let ok = map(&[("grpc-status", "0")]);
        let mut data = frame(b"first");
        data.extend_from_slice(&frame(b"second"));
        assert_eq!(
            answer(200, false, &data, Some(&ok)),
            Outcome::Received(b"second".to_vec())
        );
        assert_eq!(
            answer(200, false, &frame(b""), Some(&ok)),
            Outcome::Received(Vec::new()),
            "an empty message is a message"
        );
    }

    #[test]
    fn envoy_closes_calls_that_do_not_end_with_status_and_message() {
        let ok = map(&[("grpc-status", "0")]);
        assert_eq!(answer(200, false, &[], Some(&ok)), Outcome::closed(13, ""));
        assert_eq!(
            answer(200, false, &frame(b"m"), None),
            Outcome::closed(2, "")
        );
        let no_status = map(&[("grpc-message", "x")]);
        assert_eq!(
            answer(200, false, &frame(b"m"), Some(&no_status)),
            Outcome::closed(2, "x")
        );
        for bad in ["17", "-1", "ok"] {
            let trailers: HeaderMap = [(
                HeaderName::from_static("grpc-status"),
                HeaderValue::from_static(bad),
            )]
            .into_iter()
            .collect();
            assert_eq!(
                answer(200, false, &[], Some(&trailers)),
                Outcome::closed(code::INVALID, ""),
                "{bad}"
            );
        }
        let mut compressed = frame(b"m");
        compressed[0] = 1;
        assert_eq!(
            answer(200, false, &compressed, Some(&ok)),
            Outcome::closed(13, "")
        );
    }

    #[test]
    fn trailers_only_answers_and_http_errors_map_like_envoy() {
        assert_eq!(
            answer(200, true, &[], None),
            Outcome::closed(8, "slow%20down")
        );
        assert_eq!(
            answer(503, true, &[], None),
            Outcome::closed(8, "slow%20down"),
            "a non-200 trailers-only answer keeps its grpc-status"
        );
        assert_eq!(answer(503, false, &[], None), Outcome::closed(14, ""));
        assert_eq!(answer(404, false, &[], None), Outcome::closed(12, ""));
    }

    #[test]
    fn grpc_timeouts_use_envoys_units() {
        assert_eq!(grpc_timeout(0), "0m");
        assert_eq!(grpc_timeout(250), "250m");
        assert_eq!(grpc_timeout(99_999_999), "99999999m");
        assert_eq!(grpc_timeout(100_000_000), "100000S");
        assert_eq!(grpc_timeout(u32::MAX), "4294967S");
    }

    #[test]
    fn the_request_carries_envoys_headers_metadata_and_one_frame() {
        let metadata = vec![
            (b"X-Meta".to_vec(), b"m1".to_vec()),
            (b":path".to_vec(), b"/evil".to_vec()),
        ];
        let call = build("127.0.0.1:1", "rls", "/p.S/M", 20, &metadata, b"hi").unwrap();
        let request = &call.request;
        assert_eq!(request.uri().to_string(), "http://rls/p.S/M");
        let headers = request.headers();
        assert_eq!(headers["te"], "trailers");
        assert_eq!(headers["grpc-timeout"], "20m");
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["x-meta"], "m1");
        assert_eq!(
            headers.len(),
            4,
            "a pseudo-header in the metadata is left out"
        );
        assert_eq!(call.timeout, Some(Duration::from_millis(20)));
        let istio = build("127.0.0.1:1", "outbound|81||rls", "/p.S/M", 0, &[], b"").unwrap();
        assert_eq!(istio.request.uri().to_string(), "http://127.0.0.1:1/p.S/M");
        assert_eq!(istio.timeout, None, "0 is no deadline");
    }
}
