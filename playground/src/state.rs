//! The per-VM state host functions see through `Caller<VmState>`.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::{Memory, TypedFunc};

use crate::http::Headers;
use crate::shared::{Metric, Shared};

/// One plugin (root context) configured on a VM.
#[derive(Debug, Clone)]
pub(crate) struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub configuration: Vec<u8>,
}

/// The HTTP stream whose callback is running.
#[derive(Debug, Default)]
pub(crate) struct StreamData {
    /// Context id of this stream in each plugin, in chain order.
    pub contexts: Vec<u32>,
    pub request_headers: Headers,
    pub request_body: Vec<u8>,
    /// `None` until the response phase (Envoy: BadArgument before the response exists).
    pub response_headers: Option<Headers>,
    pub response_body: Vec<u8>,
    /// Set by `proxy_send_local_response`, acted on after the callback returns (as Envoy does).
    pub local_reply: Option<LocalReply>,
    pub source_address: String,
    pub destination_address: String,
}

/// A local reply requested by the module.
#[derive(Debug, Clone)]
pub(crate) struct LocalReply {
    pub status: u32,
    pub body: Vec<u8>,
    pub headers: Headers,
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
}

/// Everything a host function needs; owned by the wasmtime `Store`.
pub(crate) struct VmState {
    pub worker: usize,
    pub shared: Arc<Shared>,
    pub plugins: Arc<[PluginInfo]>,
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<u32, u32>>,
    pub active: Active,
    /// Tick period in milliseconds per root context id (0 = off).
    pub ticks: HashMap<u32, u32>,
    /// Metric ids of this VM (index + 1) -> the shared metric.
    pub metrics: Vec<Arc<Metric>>,
    /// State of the xorshift generator behind WASI `random_get` (deterministic on purpose).
    pub rng: u64,
    /// Reusable copy buffer for values handed to the module (shared data reads).
    pub scratch: Vec<u8>,
}

impl VmState {
    pub fn new(worker: usize, shared: Arc<Shared>, plugins: Arc<[PluginInfo]>) -> VmState {
        VmState {
            worker,
            shared,
            plugins,
            memory: None,
            malloc: None,
            active: Active::default(),
            ticks: HashMap::new(),
            metrics: Vec::new(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1),
            scratch: Vec::new(),
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
