//! One VM instance of the module (Envoy runs one per worker thread) and its HTTP streams.

mod grpc;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{CallHook, Instance, InstancePre, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::LogLevel;
use crate::error::Error;
use crate::http::{Request, Response};
use crate::imports::{ProcExit, Unimplemented};
use crate::module::Module;
use crate::shared::Shared;
use crate::state::{PluginInfo, StreamData, VmState};

/// The module's exported callbacks this host drives.
struct Calls {
    context_create: TypedFunc<(u32, u32), ()>,
    vm_start: TypedFunc<(u32, u32), u32>,
    configure: TypedFunc<(u32, u32), u32>,
    tick: TypedFunc<u32, ()>,
    request_headers: TypedFunc<(u32, u32, u32), u32>,
    request_body: TypedFunc<(u32, u32, u32), u32>,
    response_headers: TypedFunc<(u32, u32, u32), u32>,
    response_body: TypedFunc<(u32, u32, u32), u32>,
    log: TypedFunc<u32, ()>,
    done: TypedFunc<u32, u32>,
    delete: TypedFunc<u32, ()>,
    /// Optional, as in Envoy: without them an answered call is only forgotten.
    grpc_receive: Option<TypedFunc<(u32, u32, u32), ()>>,
    grpc_close: Option<TypedFunc<(u32, u32, u32), ()>>,
}

fn export<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<VmState>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, Error> {
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map_err(|e| Error::MissingExport {
            name,
            detail: format!("{e:#}"),
        })
}

/// What [`Worker::start_stream`] did with the request.
#[derive(Debug)]
pub enum Started {
    /// Forward this (possibly modified) request upstream, then call `finish_stream(stream, ..)`.
    Forward { stream: u64, request: Request },
    /// The module answered itself; the stream is complete.
    Responded(Response),
}

/// One VM of the module with every plugin started in it. Not `Sync`: drive it from one thread.
pub struct Worker {
    index: usize,
    store: Store<VmState>,
    calls: Calls,
    roots: Vec<u32>,
    next_context: u32,
    next_stream: u64,
    parked: HashMap<u64, Box<StreamData>>,
    /// The last finished stream's buffers, reused by the next stream.
    spare: Option<Box<StreamData>>,
    failed: bool,
    /// Host calls are counted (see [`Worker::host_calls`]).
    counting: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Worker {
    pub(crate) fn start(
        index: usize,
        module: &Module,
        pre: &InstancePre<VmState>,
        shared: Arc<Shared>,
        plugins: Arc<[PluginInfo]>,
        count_host_calls: bool,
    ) -> Result<Worker, Error> {
        let mut store = Store::new(&module.engine, VmState::new(index, shared, plugins));
        if count_host_calls {
            store.call_hook(|mut store, hook| {
                if matches!(hook, CallHook::CallingHost) {
                    let state = store.data_mut();
                    state.host_calls = state.host_calls.wrapping_add(1);
                }
                Ok(())
            });
        }
        if module.metered {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| Error::Instantiate(format!("{e:#}")))?;
        }
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| Error::Instantiate(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(Error::MissingExport {
                name: "memory",
                detail: "no exported memory".into(),
            })?;
        let malloc = export::<u32, u32>(&instance, &mut store, "proxy_on_memory_allocate")
            .or_else(|_| export::<u32, u32>(&instance, &mut store, "malloc"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().malloc = Some(malloc);
        // Reactor modules export _initialize (constructors + proxy_wasm::main!), commands _start.
        let init = export::<(), ()>(&instance, &mut store, "_initialize")
            .or_else(|_| export::<(), ()>(&instance, &mut store, "_start"))
            .ok();
        if let Some(Err(error)) = init.map(|init| init.call(&mut store, ())) {
            return Err(trap_error(index, store.data(), "_initialize", &error));
        }
        let calls = Calls {
            context_create: export(&instance, &mut store, "proxy_on_context_create")?,
            vm_start: export(&instance, &mut store, "proxy_on_vm_start")?,
            configure: export(&instance, &mut store, "proxy_on_configure")?,
            tick: export(&instance, &mut store, "proxy_on_tick")?,
            request_headers: export(&instance, &mut store, "proxy_on_request_headers")?,
            request_body: export(&instance, &mut store, "proxy_on_request_body")?,
            response_headers: export(&instance, &mut store, "proxy_on_response_headers")?,
            response_body: export(&instance, &mut store, "proxy_on_response_body")?,
            log: export(&instance, &mut store, "proxy_on_log")?,
            done: export(&instance, &mut store, "proxy_on_done")?,
            delete: export(&instance, &mut store, "proxy_on_delete")?,
            grpc_receive: export(&instance, &mut store, "proxy_on_grpc_receive").ok(),
            grpc_close: export(&instance, &mut store, "proxy_on_grpc_close").ok(),
        };
        let mut worker = Worker {
            index,
            store,
            calls,
            roots: Vec::new(),
            next_context: 1,
            next_stream: 1,
            parked: HashMap::new(),
            spare: None,
            failed: false,
            counting: count_host_calls,
        };
        let plugins = Arc::clone(&worker.store.data().plugins);
        for (plugin, info) in plugins.iter().enumerate() {
            worker.start_plugin(plugin, info)?;
        }
        Ok(worker)
    }

    fn start_plugin(&mut self, plugin: usize, info: &PluginInfo) -> Result<(), Error> {
        let root = self.next_context_id();
        self.roots.push(root);
        self.store.data_mut().roots.push(root);
        self.activate(root, plugin);
        self.invoke(|c| &c.context_create, "proxy_on_context_create", (root, 0))?;
        let logs_before = self.shared().log_count();
        if self.invoke(|c| &c.vm_start, "proxy_on_vm_start", (root, 0))? == 0 {
            let logs = self.shared().logs_since(logs_before, self.index);
            return Err(Error::VmStart {
                worker: self.index,
                logs,
            });
        }
        let size = u32::try_from(info.configuration.len()).unwrap_or(u32::MAX);
        self.store.data_mut().active.configuring = true;
        let configured = self.invoke(|c| &c.configure, "proxy_on_configure", (root, size));
        self.store.data_mut().active.configuring = false;
        if configured? == 0 {
            let logs = self.shared().logs_since(logs_before, self.index);
            return Err(Error::Configure {
                plugin: info.name.clone(),
                logs,
                metrics: self.shared().metrics(),
            });
        }
        Ok(())
    }

    /// The index of this worker.
    pub fn index(&self) -> usize {
        self.index
    }

    fn shared(&self) -> &Shared {
        &self.store.data().shared
    }

    fn next_context_id(&mut self) -> u32 {
        let id = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(1);
        id
    }

    fn activate(&mut self, context: u32, plugin: usize) {
        let active = &mut self.store.data_mut().active;
        active.context = context;
        active.plugin = plugin;
        active.body = None;
    }

    /// Calls one export; a trap fails the VM for good, as Envoy fails it.
    fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        pick: impl FnOnce(&Calls) -> &TypedFunc<P, R>,
        callback: &'static str,
        params: P,
    ) -> Result<R, Error> {
        if self.failed {
            return Err(Error::VmFailed { worker: self.index });
        }
        let Worker { store, calls, .. } = self;
        let result = pick(calls).call(&mut *store, params);
        self.returned(result, callback)
    }

    /// [`Worker::invoke`] for an optional export (cloned out of `calls`); `None` when the
    /// module does not export it.
    fn invoke_optional<P: WasmParams, R: WasmResults>(
        &mut self,
        pick: impl FnOnce(&Calls) -> Option<&TypedFunc<P, R>>,
        callback: &'static str,
        params: P,
    ) -> Result<Option<R>, Error> {
        if self.failed {
            return Err(Error::VmFailed { worker: self.index });
        }
        let Some(func) = pick(&self.calls).cloned() else {
            return Ok(None);
        };
        let result = func.call(&mut self.store, params);
        self.returned(result, callback).map(Some)
    }

    fn returned<R>(
        &mut self,
        result: wasmtime::Result<R>,
        callback: &'static str,
    ) -> Result<R, Error> {
        // The effective context ends with the callback (Envoy resets it too): the stream is
        // the caller's again.
        let active = &mut self.store.data_mut().active;
        if let Some(stream) = active.hidden.take() {
            active.stream = Some(stream);
        }
        match result {
            Ok(result) => Ok(result),
            Err(error) => {
                self.failed = true;
                Err(self.trap(callback, &error))
            }
        }
    }

    fn trap(&self, callback: &'static str, error: &wasmtime::Error) -> Error {
        trap_error(self.index, self.store.data(), callback, error)
    }
}

fn trap_error(
    index: usize,
    state: &VmState,
    callback: &'static str,
    error: &wasmtime::Error,
) -> Error {
    {
        if let Some(call) = error.downcast_ref::<Unimplemented>() {
            return Error::UnimplementedImport {
                module: call.module.clone(),
                name: call.name.clone(),
                callback,
            };
        }
        let message = if let Some(exit) = error.downcast_ref::<ProcExit>() {
            exit.to_string()
        } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            trap.to_string()
        } else {
            error.root_cause().to_string()
        };
        let logs = state
            .shared
            .logs()
            .into_iter()
            .filter(|line| line.worker == index && line.level >= LogLevel::Error)
            .map(|line| line.message)
            .collect();
        Error::Trap {
            callback,
            message,
            logs,
        }
    }
}

impl Worker {
    /// Units of wasm fuel used so far (about one per instruction); `None` unless the module
    /// was compiled with [`Module::compile_metered`].
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.store.get_fuel().ok().map(|left| u64::MAX - left)
    }

    /// Calls from the module into the host so far (proxy-wasm and WASI imports); `None` unless
    /// the host was built with [`HostBuilder::count_host_calls`](crate::HostBuilder::count_host_calls).
    pub fn host_calls(&self) -> Option<u64> {
        self.counting.then_some(self.store.data().host_calls)
    }

    /// The shortest tick period any plugin asked for with `proxy_set_tick_period_milliseconds`.
    pub fn tick_period(&self) -> Option<Duration> {
        let ticks = &self.store.data().ticks;
        self.roots
            .iter()
            .filter_map(|root| ticks.get(root).copied().filter(|ms| *ms > 0))
            .min()
            .map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// Calls `proxy_on_tick` on every plugin with a tick period.
    pub fn tick(&mut self) -> Result<(), Error> {
        self.deliver_answered()?;
        for (plugin, root) in self.roots.clone().into_iter().enumerate() {
            if self.store.data().ticks.get(&root).is_some_and(|ms| *ms > 0) {
                self.activate(root, plugin);
                self.invoke(|c| &c.tick, "proxy_on_tick", root)?;
            }
        }
        Ok(())
    }
}
