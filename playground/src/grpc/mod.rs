//! `proxy_grpc_call`: the clusters a host knows, the runtime calls run on, and each VM's
//! outstanding calls with what their callbacks may read.

mod client;
mod pool;
mod service;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::mpsc;

use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

pub(crate) use client::{CallRequest, Outcome, build, code};
use pool::Pool;
pub(crate) use service::{Service, parse};

/// The gRPC clusters of a host (`name -> host:port`), the runtime its calls run on, started
/// by the first call (hosts that make none start no thread), and its pooled connections.
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    clusters: HashMap<String, String>,
    runtime: OnceLock<Option<Runtime>>,
    pool: Pool,
}

impl Upstreams {
    pub fn new(clusters: HashMap<String, String>) -> Upstreams {
        Upstreams {
            clusters,
            runtime: OnceLock::new(),
            pool: Pool::default(),
        }
    }

    /// The `host:port` of a cluster.
    pub fn address(&self, cluster: &str) -> Option<&str> {
        self.clusters.get(cluster).map(String::as_str)
    }

    /// One background thread drives every call of the host, so a call progresses while the
    /// worker runs other callbacks, as on Envoy's event loop. `None` if it cannot start.
    fn runtime(&self) -> Option<&Runtime> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("hrl-playground-grpc")
                    .enable_all()
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        // A runtime dropped inside another runtime (the binary's) would panic; this does not.
        if let Some(Some(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A call the module has not been told about yet.
#[derive(Debug)]
struct Pending {
    token: u32,
    /// The plugin whose root context gets the callbacks (Envoy makes the call on the root
    /// context of the calling context: `exports.cc`, `grpc_call`).
    plugin: usize,
    task: Option<AbortHandle>,
}

/// One answered call: its token, the plugin to tell, how it ended.
pub(crate) type Answered = (u32, usize, Outcome);

/// One VM's gRPC calls.
#[derive(Debug)]
pub(crate) struct GrpcCalls {
    next_token: u32,
    pending: Vec<Pending>,
    sender: mpsc::Sender<(u32, Outcome)>,
    receiver: mpsc::Receiver<(u32, Outcome)>,
    /// `proxy_get_status` code per plugin (Envoy keeps it on the root context; it stays after
    /// the callback).
    status: Vec<u32>,
    /// `proxy_get_status` message, only during `proxy_on_grpc_close`.
    pub message: Vec<u8>,
    /// The gRPC receive buffer, only during `proxy_on_grpc_receive`.
    pub received: Option<Vec<u8>>,
    /// Contexts (and their plugin) of streams waiting for their upstream, during a delivery:
    /// they exist for `proxy_set_effective_context`.
    pub parked: Vec<(u32, usize)>,
}

impl Default for GrpcCalls {
    fn default() -> GrpcCalls {
        let (sender, receiver) = mpsc::channel();
        GrpcCalls {
            next_token: 1,
            pending: Vec::new(),
            sender,
            receiver,
            status: Vec::new(),
            message: Vec::new(),
            received: None,
            parked: Vec::new(),
        }
    }
}

impl GrpcCalls {
    /// Envoy numbers calls odd (streams even), skipping tokens still in use.
    fn token(&mut self) -> u32 {
        loop {
            let token = self.next_token;
            self.next_token = self.next_token.wrapping_add(2);
            if !self.pending.iter().any(|p| p.token == token) {
                return token;
            }
        }
    }

    /// Starts a call on the host's runtime; `None` when the runtime cannot start.
    pub fn start(
        &mut self,
        upstreams: &Upstreams,
        plugin: usize,
        call: CallRequest,
    ) -> Option<u32> {
        let runtime = upstreams.runtime()?;
        let token = self.token();
        let sender = self.sender.clone();
        let pool = upstreams.pool.clone();
        let task = runtime.spawn(async move {
            let outcome = client::send(&pool, call).await;
            // The VM may be gone; then nobody is waiting.
            let _ = sender.send((token, outcome));
        });
        self.pending.push(Pending {
            token,
            plugin,
            task: Some(task.abort_handle()),
        });
        Some(token)
    }

    /// A call that failed as it started: Envoy still delivers its `on_grpc_close`, with a
    /// token the module was never given (`AsyncStreamImpl::initialize`, `Cluster not
    /// available`, deferred until the running callback returns).
    pub fn fail(&mut self, plugin: usize, outcome: Outcome) {
        let token = self.token();
        self.pending.push(Pending {
            token,
            plugin,
            task: None,
        });
        let _ = self.sender.send((token, outcome));
    }

    /// Envoy's `grpcCancel`/`grpcClose` of a call: stopped, never delivered. False when
    /// the token is no outstanding call.
    pub fn cancel(&mut self, token: u32) -> bool {
        let Some(index) = self.pending.iter().position(|p| p.token == token) else {
            return false;
        };
        if let Some(task) = self.pending.remove(index).task {
            task.abort();
        }
        true
    }

    /// The next answered call; with `wait`, blocks until one is answered (a call without
    /// timeout can block for ever, as it waits for ever in Envoy). `None` when nothing is
    /// outstanding (or, without `wait`, nothing answered yet).
    pub fn next(&mut self, wait: bool) -> Option<Answered> {
        loop {
            if self.pending.is_empty() {
                return None;
            }
            let (token, outcome) = if wait {
                self.receiver.recv().ok()?
            } else {
                self.receiver.try_recv().ok()?
            };
            // Answers of cancelled calls are dropped.
            if let Some(index) = self.pending.iter().position(|p| p.token == token) {
                let call = self.pending.remove(index);
                return Some((token, call.plugin, outcome));
            }
        }
    }

    pub fn status(&self, plugin: usize) -> u32 {
        self.status.get(plugin).copied().unwrap_or(code::OK)
    }

    pub fn set_status(&mut self, plugin: usize, status: u32) {
        if self.status.len() <= plugin {
            self.status.resize(plugin + 1, code::OK);
        }
        if let Some(slot) = self.status.get_mut(plugin) {
            *slot = status;
        }
    }
}
