//! Where allowed requests go: the built-in echo upstream or an HTTP/1.1 upstream.

use anyhow::{Context, Result, bail};
use hrl_playground::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The upstream of the playground.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Answers with the request line and headers as JSON, like httpbin's `/headers`.
    Echo,
    /// Forwards to `host:port` (HTTP/1.1, one connection per request).
    Http { authority: String },
}

impl Upstream {
    pub fn parse(url: Option<&str>) -> Result<Upstream> {
        let Some(url) = url else {
            return Ok(Upstream::Echo);
        };
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--upstream {url}: only http:// URLs are supported");
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            bail!("--upstream {url}: missing host");
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Upstream::Http { authority })
    }

    /// The upstream's response, or a 503 like Envoy's "upstream connect error".
    pub async fn call(&self, request: &Request) -> Response {
        match self {
            Upstream::Echo => echo(request),
            Upstream::Http { authority } => match forward(authority, request).await {
                Ok(response) => response,
                Err(error) => Response::new(503)
                    .with_header("content-type", "text/plain")
                    .with_body(format!("upstream connect error: {error:#}\n")),
            },
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Echo => f.write_str("built-in echo (request line and headers as JSON)"),
            Upstream::Http { authority } => write!(f, "http://{authority}"),
        }
    }
}

fn echo(request: &Request) -> Response {
    let mut headers = serde_json::Map::new();
    for (name, value) in request.headers.iter().filter(|(n, _)| !n.starts_with(':')) {
        let joined = match headers.get(name).and_then(|v| v.as_str()) {
            Some(previous) => format!("{previous},{value}"),
            None => value.clone(),
        };
        headers.insert(name.clone(), serde_json::Value::String(joined));
    }
    let pseudo = |name: &str| request.header(name).unwrap_or_default().to_string();
    let body = serde_json::json!({
        "method": pseudo(":method"),
        "path": pseudo(":path"),
        "authority": pseudo(":authority"),
        "origin": request.source_address,
        "headers": headers,
    });
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    Response::new(200)
        .with_header("content-type", "application/json")
        .with_header("content-length", &text.len().to_string())
        .with_body(text)
}

async fn forward(authority: &str, request: &Request) -> Result<Response> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connect {authority}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(request.header(":method").unwrap_or("GET"))
        .uri(request.header(":path").unwrap_or("/"))
        .header("host", request.header(":authority").unwrap_or(authority));
    for (name, value) in request.headers.iter().filter(|(n, _)| !n.starts_with(':')) {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let outgoing = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .context("request")?;
    let incoming = sender
        .send_request(outgoing)
        .await
        .context("send request")?;
    let status = incoming.status().as_u16();
    let headers = incoming
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = incoming
        .into_body()
        .collect()
        .await
        .context("read body")?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
        local: false,
    })
}
