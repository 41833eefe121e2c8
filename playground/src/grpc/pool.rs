//! HTTP/2 connections by address, shared by every call of a host, as Envoy's cluster connection
//! pool shares one multiplexed connection per upstream host among its streams
//! (`source/common/http/http2/conn_pool.cc`: new streams go to the primary client until it
//! closes or is draining). Like Envoy's default, no HTTP/2 keepalive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::client::{Outcome, reset_before_headers};

type Sender = SendRequest<Full<Bytes>>;
/// One address' connection and its number (which connection a failed call used); the async
/// lock makes calls that find none wait for one connect.
type Slot = Arc<tokio::sync::Mutex<Pooled>>;

#[derive(Debug, Default)]
struct Pooled {
    sender: Option<Sender>,
    number: u64,
}

/// The connections of one host.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Pool {
    /// Sends `request` to `address` on the pooled connection. A connection that turns out to
    /// be closed (the peer went away or sent GOAWAY) before the request was written to it is
    /// replaced and the request sent once more on the new one; a request already written is
    /// never sent twice (the service may have counted it).
    pub async fn send(
        &self,
        address: &str,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<Incoming>, Outcome> {
        let slot = self.slot(address);
        let (mut sender, number) = open(&slot, address).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut error) => match error.take_message() {
                Some(request) => {
                    forget(&slot, number).await;
                    let (mut sender, _) = open(&slot, address).await?;
                    sender
                        .send_request(request)
                        .await
                        .map_err(|e| reset_before_headers(&format!("remote reset: {e}")))
                }
                None => Err(reset_before_headers(&format!(
                    "remote reset: {}",
                    error.into_error()
                ))),
            },
        }
    }

    fn slot(&self, address: &str) -> Slot {
        match self.slots.lock() {
            Ok(mut slots) => slots.entry(address.to_owned()).or_default().clone(),
            // A poisoned map: this call gets a connection of its own.
            Err(_) => Slot::default(),
        }
    }
}

/// The slot's open connection, else a new one in the slot; with its number.
async fn open(slot: &Slot, address: &str) -> Result<(Sender, u64), Outcome> {
    let mut pooled = slot.lock().await;
    if let Some(sender) = pooled.sender.as_ref().filter(|sender| !sender.is_closed()) {
        return Ok((sender.clone(), pooled.number));
    }
    let sender = connect(address).await?;
    pooled.sender = Some(sender.clone());
    pooled.number = pooled.number.wrapping_add(1);
    Ok((sender, pooled.number))
}

/// Drops connection `number` from the slot, unless another call has replaced it already.
async fn forget(slot: &Slot, number: u64) {
    let mut pooled = slot.lock().await;
    if pooled.number == number {
        pooled.sender = None;
    }
}

/// A new HTTP/2 connection (h2c with prior knowledge), driven on the runtime until every
/// sender of it is dropped or the peer closes it.
async fn connect(address: &str) -> Result<Sender, Outcome> {
    let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| {
        reset_before_headers(&format!(
            "remote connection failure, transport failure reason: delayed connect error: {e}"
        ))
    })?;
    // Envoy's upstream connections set TCP_NODELAY; without it a small request can wait for
    // the peer's delayed ACK.
    let _ = tcp.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| reset_before_headers(&format!("connection failure: {e}")))?;
    tokio::spawn(connection);
    Ok(sender)
}
