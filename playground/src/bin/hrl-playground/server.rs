//! The HTTP/1.1 front: each request runs through a worker VM, then the upstream, then back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use hrl_playground::{Request, Response, Shared, Started};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::pool::{Job, Pool};
use crate::upstream::Upstream;

/// Binds the listener; "address in use" says so plainly.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {address}: the port is in use (another playground? pick one with --listen)"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {address}")),
    }
}

/// Accepts connections until Ctrl-C.
pub async fn serve(
    listener: TcpListener,
    pool: Pool,
    upstream: Upstream,
    _shared: Arc<Shared>,
) -> Result<()> {
    let upstream = Arc::new(upstream);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted.context("accept")?,
            _ = tokio::signal::ctrl_c() => {
                println!("hrl-playground: stopped");
                return Ok(());
            }
        };
        let local = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let Some(worker) = pool.pick() else {
            bail!("no worker VM is running")
        };
        let upstream = Arc::clone(&upstream);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (worker, upstream, local) =
                    (worker.clone(), Arc::clone(&upstream), local.clone());
                async move { Ok::<_, Infallible>(handle(request, worker, &upstream, peer, local).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await
                && !error.is_incomplete_message()
            {
                eprintln!("hrl-playground: connection from {peer}: {error}");
            }
        });
    }
}

async fn handle(
    request: hyper::Request<Incoming>,
    worker: mpsc::Sender<Job>,
    upstream: &Upstream,
    peer: SocketAddr,
    local: String,
) -> hyper::Response<Full<Bytes>> {
    match run(request, worker, upstream, peer, local).await {
        Ok(response) => to_hyper(response),
        Err(error) => {
            eprintln!("hrl-playground: {error:#}");
            // Envoy answers 500 when a VM fails (fail closed).
            to_hyper(Response::new(500).with_body(format!("hrl-playground: {error:#}\n")))
        }
    }
}

async fn run(
    request: hyper::Request<Incoming>,
    worker: mpsc::Sender<Job>,
    upstream: &Upstream,
    peer: SocketAddr,
    local: String,
) -> Result<Response> {
    let request = from_hyper(request, peer, local).await?;
    let (reply, started) = oneshot::channel();
    worker
        .send(Job::Start(request, reply))
        .context("worker VM stopped")?;
    let (stream, forwarded) = match started.await.context("worker VM stopped")?? {
        Started::Responded(response) => return Ok(response),
        Started::Forward { stream, request } => (stream, request),
    };
    let response = upstream.call(&forwarded).await;
    let (reply, finished) = oneshot::channel();
    worker
        .send(Job::Finish(stream, response, reply))
        .context("worker VM stopped")?;
    Ok(finished.await.context("worker VM stopped")??)
}

/// Envoy's view of an HTTP/1.1 request: pseudo headers, lowercase names, no `host`.
async fn from_hyper(
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    local: String,
) -> Result<Request> {
    let (parts, body) = request.into_parts();
    let authority = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let mut headers = vec![
        (":method".to_string(), parts.method.to_string()),
        (":path".to_string(), path),
        (":authority".to_string(), authority),
        (":scheme".to_string(), "http".to_string()),
    ];
    for (name, value) in parts
        .headers
        .iter()
        .filter(|(n, _)| *n != hyper::header::HOST)
    {
        headers.push((
            name.as_str().to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    let body = body
        .collect()
        .await
        .context("read request body")?
        .to_bytes()
        .to_vec();
    Ok(Request {
        headers,
        body,
        source_address: peer.to_string(),
        destination_address: local,
    })
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        // hyper computes content-length and transfer-encoding itself.
        if name != "content-length" && name != "transfer-encoding" {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|error| {
            let mut fallback =
                hyper::Response::new(Full::new(Bytes::from(format!("bad response: {error}\n"))));
            *fallback.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            fallback
        })
}
