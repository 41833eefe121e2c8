//! gRPC requests get their limit as a gRPC status. Pure.
//!
//! For a gRPC request Envoy turns a local reply into a trailers-only response (HTTP 200,
//! `content-type: application/grpc`, `grpc-status`, `grpc-message`), and without a gRPC status
//! from the filter it maps the HTTP status: 429 becomes 14 `UNAVAILABLE`
//! (`Grpc::Utility::httpToGrpcStatus`), which clients and Istio's default retry policy retry on
//! another host, partly escaping the limit. So a limited gRPC request is answered with 8
//! `RESOURCE_EXHAUSTED` (the SDK's `send_grpc_response`), which is not retried by default.

/// Whether the request is gRPC the way Envoy decides it for a local reply
/// (`Grpc::Common::hasGrpcContentType`): `content-type` exactly `application/grpc` or starting
/// with `application/grpc+` (`application/grpc-web` is not gRPC; case matters).
pub fn is_grpc(content_type: Option<&[u8]>) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    match content_type.and_then(|value| value.strip_prefix(GRPC)) {
        Some(rest) => rest.is_empty() || rest.first() == Some(&b'+'),
        None => false,
    }
}

/// The `grpc-message` for a limited gRPC request: the configured body without its trailing
/// line break and spaces (an HTTP body nicety that would show as `%0A` in the header).
pub fn status_message(body: &str) -> &str {
    body.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_is_application_grpc_or_a_plus_subtype_exactly_as_envoy_decides() {
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
        ] {
            assert!(is_grpc(Some(grpc.as_bytes())), "{grpc}");
        }
        for not_grpc in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/grpc;charset=utf-8",
            "Application/gRPC",
            "application/json",
            "",
            " application/grpc",
        ] {
            assert!(!is_grpc(Some(not_grpc.as_bytes())), "{not_grpc}");
        }
        assert!(!is_grpc(None));
    }

    #[test]
    fn the_status_message_is_the_body_without_its_trailing_line_break() {
        assert_eq!(status_message("rate limited\n"), "rate limited");
        assert_eq!(
            status_message("slow down, retry later \r\n"),
            "slow down, retry later"
        );
        assert_eq!(status_message(""), "");
    }
}
