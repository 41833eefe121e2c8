//! The per-VM state host functions see through `Caller<VmState>`.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::{Memory, TypedFunc};

use crate::grpc::GrpcCalls;
use crate::header_map::HeaderMap;
use crate::http::{Request, Response};
use crate::local_reply::{LocalReply, decimal, is_grpc_request};
use crate::shared::{Metric, Shared};

/// One plugin (root context) configured on a VM.
#[derive(Debug, Clone)]
pub(crate) struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub configuration: Vec<u8>,
}

/// The HTTP stream whose callback is running. A worker reuses one between streams (see
/// [`StreamData::reset`]), so its buffers stop allocating once they have grown.
#[derive(Debug, Default)]
pub(crate) struct StreamData {
    /// Context id of this stream in each plugin, in chain order.
    pub contexts: Vec<u32>,
    pub request_headers: HeaderMap,
    pub request_body: Vec<u8>,
    /// False until the response phase (Envoy: BadArgument for the response map before).
    pub responding: bool,
    pub response_headers: HeaderMap,
    pub response_body: Vec<u8>,
    /// The response is a local reply of the module.
    pub local: bool,
    /// The request is gRPC as Envoy decides it for the plugin whose request callback runs
    /// (checked before each one: an earlier plugin may change `content-type`).
    pub grpc: bool,
    /// Set by `proxy_send_local_response`, acted on after the callback returns (as Envoy does).
    pub reply_pending: bool,
    pub reply: LocalReply,
    /// Set by `proxy_continue_stream` (request, response), acted on when the callback that
    /// paused, or a gRPC callback after it, returns (Envoy defers `continueDecoding` too).
    pub resume: [bool; 2],
    pub source_address: String,
    pub destination_address: String,
}

impl StreamData {
    /// Empties every field for the next stream, keeping the buffers. (Destructured without
    /// `..`, so a new field cannot be forgotten here.)
    pub fn reset(&mut self) {
        let StreamData {
            contexts,
            request_headers,
            request_body,
            responding,
            response_headers,
            response_body,
            local,
            grpc,
            reply_pending,
            reply,
            resume,
            source_address,
            destination_address,
        } = self;
        contexts.clear();
        request_headers.clear();
        request_body.clear();
        *responding = false;
        response_headers.clear();
        response_body.clear();
        *local = false;
        *grpc = false;
        *reply_pending = false;
        reply.clear();
        *resume = [false; 2];
        source_address.clear();
        destination_address.clear();
    }

    /// True (once) when the module sent a local reply since the last call.
    pub fn take_reply(&mut self) -> bool {
        std::mem::take(&mut self.reply_pending)
    }

    /// True (once) when the module resumed this direction (0 request, 1 response).
    pub fn take_resume(&mut self, direction: usize) -> bool {
        self.resume.get_mut(direction).is_some_and(std::mem::take)
    }

    /// The upstream's response becomes the stream's response (names lowercased).
    pub fn set_response(&mut self, response: &Response) {
        self.responding = true;
        self.local = false;
        self.response_headers.clear();
        let mut digits = [0; 20];
        let status = decimal(u64::from(response.status), &mut digits);
        self.response_headers.add(b":status", status);
        for (name, value) in &response.headers {
            self.response_headers.add(name.as_bytes(), value.as_bytes());
        }
        self.response_body.clear();
        self.response_body.extend_from_slice(&response.body);
    }

    /// Envoy's `sendLocalReply`: the module's reply becomes the stream's response (see
    /// [`LocalReply::write`]).
    pub fn set_response_from_reply(&mut self) {
        self.responding = true;
        self.local = true;
        self.reply.write(
            self.grpc,
            &mut self.response_headers,
            &mut self.response_body,
        );
    }

    /// Envoy decides per decoder filter, just before its `decodeHeaders`, whether the request
    /// is gRPC (`Grpc::Common::isGrpcRequestHeaders`).
    pub fn check_grpc(&mut self) {
        self.grpc = is_grpc_request(&self.request_headers);
    }

    /// The (possibly modified) request as the upstream gets it.
    pub fn request(&self) -> Request {
        Request {
            headers: self.request_headers.to_headers(),
            body: self.request_body.clone(),
            source_address: self.source_address.clone(),
            destination_address: self.destination_address.clone(),
        }
    }
}

/// What the running callback may touch.
#[derive(Debug, Default)]
pub(crate) struct Active {
    pub context: u32,
    pub plugin: usize,
    /// Inside `proxy_on_configure`: the plugin configuration buffer is readable.
    pub configuring: bool,
    /// Inside a body callback: which body buffer is readable.
    pub body: Option<u32>,
    pub stream: Option<Box<StreamData>>,
    /// The stream, while the effective context is not one of its contexts (a gRPC callback
    /// on the root context, before `proxy_set_effective_context`).
    pub hidden: Option<Box<StreamData>>,
}

/// Everything a host function needs; owned by the wasmtime `Store`.
pub(crate) struct VmState {
    pub worker: usize,
    pub shared: Arc<Shared>,
    pub plugins: Arc<[PluginInfo]>,
    /// Root context id of each plugin, in plugin order.
    pub roots: Vec<u32>,
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<u32, u32>>,
    pub active: Active,
    /// Tick period in milliseconds per root context id (0 = off).
    pub ticks: HashMap<u32, u32>,
    /// Outstanding gRPC calls and what their callbacks read.
    pub grpc: GrpcCalls,
    /// Metric ids of this VM (index + 1) -> the shared metric.
    pub metrics: Vec<Arc<Metric>>,
    /// State of the xorshift generator behind WASI `random_get` (deterministic on purpose).
    pub rng: u64,
    /// Reusable copy buffer for values handed to the module (shared data reads).
    pub scratch: Vec<u8>,
    /// Calls from the module into the host so far; counted only when the host was built
    /// with `count_host_calls`.
    pub host_calls: u64,
}

impl VmState {
    pub fn new(worker: usize, shared: Arc<Shared>, plugins: Arc<[PluginInfo]>) -> VmState {
        VmState {
            worker,
            shared,
            plugins,
            roots: Vec::new(),
            memory: None,
            malloc: None,
            active: Active::default(),
            ticks: HashMap::new(),
            grpc: GrpcCalls::default(),
            metrics: Vec::new(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1),
            scratch: Vec::new(),
            host_calls: 0,
        }
    }
}

impl std::fmt::Debug for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmState")
            .field("worker", &self.worker)
            .field("active", &self.active)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_reply_becomes_the_response_and_reset_empties_the_stream() {
        let mut stream = StreamData::default();
        stream.reply.status = 429;
        stream.reply.body.extend_from_slice(b"slow down");
        stream.reply.headers.add(b"Retry-After", b"1");
        stream.set_response_from_reply();
        assert!(stream.responding && stream.local);
        assert_eq!(stream.response_headers.first(b":status"), Some(&b"429"[..]));
        assert_eq!(stream.response_body, b"slow down");
        stream.request_headers.add(b":path", b"/p.S/M");
        stream
            .request_headers
            .add(b"content-type", b"application/grpc");
        stream.check_grpc();
        stream.set_response_from_reply();
        assert_eq!(stream.response_headers.first(b":status"), Some(&b"200"[..]));
        assert!(stream.response_body.is_empty());
        stream.reset();
        assert!(!stream.responding && !stream.local && !stream.grpc);
        assert!(stream.response_headers.is_empty() && stream.response_body.is_empty());
        assert_eq!(stream.reply.grpc_status, None);
    }
}
