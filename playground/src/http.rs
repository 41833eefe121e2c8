//! HTTP requests and responses as the host hands them to the module and back.

use crate::state::StreamData;

/// Header pairs in order. Names are lowercase (the host lowercases them, as Envoy does);
/// requests carry the pseudo headers `:method`, `:path`, `:authority`, `:scheme`.
pub type Headers = Vec<(String, String)>;

fn first<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn all<'a>(headers: &'a Headers, name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A downstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Pseudo headers first, then the others.
    pub headers: Headers,
    /// The body (empty: the request ends with its headers).
    pub body: Vec<u8>,
    /// The `source.address` property: the downstream peer, `ip:port`.
    pub source_address: String,
    /// The `destination.address` property: the local address the request arrived at.
    pub destination_address: String,
}

impl Request {
    /// A `GET` of `path` on `example.com` from `127.0.0.1:40000`.
    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    /// A request with the given method and path.
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), "example.com".into()),
                (":scheme".into(), "http".into()),
            ],
            body: Vec::new(),
            source_address: "127.0.0.1:40000".into(),
            destination_address: "127.0.0.1:8080".into(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the downstream peer address (`ip:port`).
    pub fn from_address(mut self, source_address: &str) -> Request {
        self.source_address = source_address.into();
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }
}

/// A response: from the upstream, or a local reply of the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers without `:status`.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
    /// True when the module answered itself (`proxy_send_local_response`).
    pub local: bool,
}

impl Response {
    /// An upstream response with no headers and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            local: false,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        all(&self.headers, name)
    }

    /// Every value of a header combined into one list value, as a recipient may combine
    /// field lines (RFC 9110 §5.3: in order, joined with `, `); `None` when absent.
    pub fn header_list(&self, name: &str) -> Option<String> {
        let values = self.header_all(name);
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A borrowed view of a finished stream's response, as the host holds it (names lowercase,
/// values as bytes): reading it copies nothing. See [`Worker::http_stream_view`].
///
/// [`Worker::http_stream_view`]: crate::Worker::http_stream_view
#[derive(Debug, Clone, Copy)]
pub struct ResponseView<'a> {
    stream: &'a StreamData,
}

impl<'a> ResponseView<'a> {
    pub(crate) fn new(stream: &'a StreamData) -> ResponseView<'a> {
        ResponseView { stream }
    }

    /// The status code (`:status`; 502 if the module left none that parses).
    pub fn status(&self) -> u16 {
        let status = self.stream.response_headers.first(b":status");
        status.and_then(parse_status).unwrap_or(502)
    }

    /// True when the module answered itself (`proxy_send_local_response`).
    pub fn local(&self) -> bool {
        self.stream.local
    }

    /// The first value of a header (any case).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.stream.response_headers.first(name.as_bytes())
    }

    /// The headers in order, without `:status`.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        let headers = &self.stream.response_headers;
        headers.iter().filter(|(name, _)| !name.starts_with(b":"))
    }

    /// The body.
    pub fn body(&self) -> &'a [u8] {
        &self.stream.response_body
    }

    /// An owned copy (invalid UTF-8 in headers replaced).
    pub fn to_response(&self) -> Response {
        let mut headers = Vec::with_capacity(self.stream.response_headers.len());
        self.stream.response_headers.write_to(&mut headers, true);
        Response {
            status: self.status(),
            headers,
            body: self.body().to_vec(),
            local: self.local(),
        }
    }
}

/// The status code in a `:status` value (a decimal `u16`, as the response's `status` field).
pub(crate) fn parse_status(bytes: &[u8]) -> Option<u16> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn status_values_parse_as_a_decimal_u16() {
        assert_eq!(parse_status(b"200"), Some(200));
        assert_eq!(parse_status(b"0"), Some(0));
        assert_eq!(parse_status(b"099"), Some(99));
        assert_eq!(parse_status(b"1000"), Some(1000));
        assert_eq!(parse_status(b""), None);
        assert_eq!(parse_status(b"20a"), None);
        assert_eq!(parse_status(b"70000"), None);
        assert_eq!(parse_status(b"\xff"), None);
    }
}
