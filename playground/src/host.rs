//! A proxy: one module, its plugins, several worker VMs and what they share.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::Store;

use crate::abi::LogLevel;
use crate::clock::Clock;
use crate::error::Error;
use crate::http::{Request, Response};
use crate::imports;
use crate::module::Module;
use crate::shared::{LogLine, Shared, SharedStore};
use crate::state::{PluginInfo, VmState};
use crate::worker::Worker;

/// One plugin (a WasmPlugin in Istio terms): a root context with its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The plugin name (`plugin_name` property), e.g. `default.httpbin`.
    pub name: String,
    /// The root id (`plugin_root_id` property); Istio leaves it empty.
    pub root_id: String,
    /// The plugin configuration bytes (the pluginConfig JSON).
    pub configuration: Vec<u8>,
}

impl Plugin {
    /// A plugin with an empty root id.
    pub fn new(name: &str, configuration: impl Into<Vec<u8>>) -> Plugin {
        Plugin {
            name: name.into(),
            root_id: String::new(),
            configuration: configuration.into(),
        }
    }
}

/// Builds a [`Host`].
#[derive(Debug)]
pub struct HostBuilder {
    module: Module,
    plugins: Vec<Plugin>,
    workers: usize,
    clock: Clock,
    log_level: LogLevel,
    echo_logs: bool,
    vm_id: String,
    count_host_calls: bool,
    grpc_clusters: HashMap<String, String>,
}

impl HostBuilder {
    /// Adds a plugin; plugins form a filter chain in the order added.
    pub fn plugin(mut self, plugin: Plugin) -> HostBuilder {
        self.plugins.push(plugin);
        self
    }

    /// The number of worker VMs (default 1).
    pub fn workers(mut self, workers: usize) -> HostBuilder {
        self.workers = workers;
        self
    }

    /// The clock (default: a manual clock at 2026-01-01).
    pub fn clock(mut self, clock: Clock) -> HostBuilder {
        self.clock = clock;
        self
    }

    /// Lines below this level are dropped, as Envoy drops them (default: info).
    pub fn log_level(mut self, level: LogLevel) -> HostBuilder {
        self.log_level = level;
        self
    }

    /// Also print every kept log line to stderr.
    pub fn echo_logs(mut self, echo: bool) -> HostBuilder {
        self.echo_logs = echo;
        self
    }

    /// The VM id that keys shared data (default empty, like Istio).
    pub fn vm_id(mut self, vm_id: &str) -> HostBuilder {
        self.vm_id = vm_id.into();
        self
    }

    /// Count every call from the module into the host (proxy-wasm and WASI imports alike),
    /// read with [`Worker::host_calls`]. Off by default: it costs a hook per call.
    pub fn count_host_calls(mut self, count: bool) -> HostBuilder {
        self.count_host_calls = count;
        self
    }

    /// A cluster `proxy_grpc_call` can reach: `name` (a plain cluster name or the
    /// `envoy_grpc.cluster_name` of a serialized `GrpcService`) is served at `address`
    /// (`host:port`, HTTP/2 without TLS). Calls to other clusters fail as in Envoy.
    pub fn grpc_cluster(mut self, name: &str, address: &str) -> HostBuilder {
        self.grpc_clusters.insert(name.into(), address.into());
        self
    }

    /// Starts every worker VM: instantiate, `_initialize`, and for each plugin
    /// `proxy_on_context_create`, `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn build(self) -> Result<Host, Error> {
        self.build_with(None)
    }

    fn build_with(self, data: Option<SharedStore>) -> Result<Host, Error> {
        if self.workers == 0 || self.plugins.is_empty() {
            return Err(Error::Usage(
                "a host needs at least one worker and one plugin".into(),
            ));
        }
        let shared = Arc::new(Shared::new(
            self.vm_id,
            self.clock,
            self.log_level,
            self.echo_logs,
            self.grpc_clusters,
        ));
        if let Some(data) = data {
            shared.restore(data);
        }
        let plugins: Arc<[PluginInfo]> = self
            .plugins
            .into_iter()
            .map(|p| PluginInfo {
                name: p.name,
                root_id: p.root_id,
                configuration: p.configuration,
            })
            .collect();
        let engine = &self.module.engine;
        let mut probe = Store::new(
            engine,
            VmState::new(0, Arc::clone(&shared), Arc::clone(&plugins)),
        );
        let linker = imports::linker(engine, &self.module.module, &mut probe)?;
        let pre = linker
            .instantiate_pre(&self.module.module)
            .map_err(|e| Error::Instantiate(format!("{e:#}")))?;
        let workers = (0..self.workers)
            .map(|index| {
                Worker::start(
                    index,
                    &self.module,
                    &pre,
                    Arc::clone(&shared),
                    Arc::clone(&plugins),
                    self.count_host_calls,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Host {
            shared,
            workers,
            next: 0,
        })
    }
}

/// A proxy running one module in several worker VMs that share shared data, metrics and logs.
#[derive(Debug)]
pub struct Host {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    next: usize,
}

impl Host {
    /// Compiles `module_bytes` and starts one worker with one plugin configured with
    /// `configuration`.
    pub fn new(module_bytes: &[u8], configuration: &[u8]) -> Result<Host, Error> {
        let module = Module::compile(module_bytes)?;
        Host::builder(&module)
            .plugin(Plugin::new("playground", configuration))
            .build()
    }

    /// A builder for a host of an already compiled module.
    pub fn builder(module: &Module) -> HostBuilder {
        HostBuilder {
            module: module.clone(),
            plugins: Vec::new(),
            workers: 1,
            clock: Clock::manual(),
            log_level: LogLevel::Info,
            echo_logs: false,
            vm_id: String::new(),
            count_host_calls: false,
            grpc_clusters: HashMap::new(),
        }
    }

    /// Worker `index % workers`, so `host.worker(i)` spreads requests round-robin.
    pub fn worker(&mut self, index: usize) -> &mut Worker {
        let count = self.workers.len();
        &mut self.workers[index % count]
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Runs a stream on the next worker, round-robin.
    pub fn http_stream(&mut self, request: Request) -> Result<Response, Error> {
        self.next = self.next.wrapping_add(1);
        self.worker(self.next - 1).http_stream(request)
    }

    /// What the workers share.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The clock the modules see.
    pub fn clock(&self) -> &Clock {
        self.shared.clock()
    }

    /// Captured log lines, oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        self.shared.logs()
    }

    /// A metric's value by the name the module defined.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.shared.metric(name)
    }

    /// Calls `proxy_on_tick` on every worker for every plugin that asked for ticks, as the
    /// proxy's timers would once a tick period has passed (the manual clock fires no timers).
    pub fn tick(&mut self) -> Result<(), Error> {
        for worker in &mut self.workers {
            worker.tick()?;
        }
        Ok(())
    }

    /// Number of shared-data entries.
    pub fn shared_data_len(&self) -> usize {
        self.shared.shared_data_len()
    }

    /// The host after a configuration change, as Envoy makes one when a plugin's configuration
    /// changes: new VMs with `plugins` configured (`proxy_on_configure` again), and the VM id's
    /// shared data kept (Envoy keeps it process-wide per VM id, whatever becomes of the VMs).
    /// Metrics, logs and gRPC clusters start afresh.
    pub fn reconfigure(&self, module: &Module, plugins: Vec<Plugin>) -> Result<Host, Error> {
        let shared = self.shared.as_ref();
        let mut builder = Host::builder(module)
            .workers(self.workers.len())
            .clock(shared.clock().clone())
            .log_level(shared.log_level())
            .vm_id(shared.vm_id());
        for plugin in plugins {
            builder = builder.plugin(plugin);
        }
        let data = shared.store().clone();
        // The kept data is in place before the new VMs configure, as it is in Envoy.
        builder.build_with(Some(data))
    }

    /// The shared part and the workers, to drive each worker from its own thread.
    pub fn into_parts(self) -> (Arc<Shared>, Vec<Worker>) {
        (self.shared, self.workers)
    }
}
