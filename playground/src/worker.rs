//! One VM instance of the module (Envoy runs one per worker thread) and its HTTP streams.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Instance, InstancePre, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi::{ACTION_CONTINUE, LogLevel, buffer_type};
use crate::error::Error;
use crate::http::{Headers, Request, Response, lowercase};
use crate::imports::{ProcExit, Unimplemented};
use crate::module::Module;
use crate::shared::Shared;
use crate::state::{LocalReply, PluginInfo, StreamData, VmState};

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
    failed: bool,
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
    ) -> Result<Worker, Error> {
        let mut store = Store::new(&module.engine, VmState::new(index, shared, plugins));
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
        };
        let mut worker = Worker {
            index,
            store,
            calls,
            roots: Vec::new(),
            next_context: 1,
            next_stream: 1,
            parked: HashMap::new(),
            failed: false,
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
        match pick(calls).call(&mut *store, params) {
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
        for (plugin, root) in self.roots.clone().into_iter().enumerate() {
            if self.store.data().ticks.get(&root).is_some_and(|ms| *ms > 0) {
                self.activate(root, plugin);
                self.invoke(|c| &c.tick, "proxy_on_tick", root)?;
            }
        }
        Ok(())
    }

    /// Runs one whole HTTP stream; an allowed request gets `200` with no headers from the
    /// "upstream".
    pub fn http_stream(&mut self, request: Request) -> Result<Response, Error> {
        self.http_stream_with(request, |_| Response::new(200))
    }

    /// Runs one whole HTTP stream (create, request headers [, body], response headers
    /// [, body], log, done, delete for every plugin); `upstream` answers allowed requests.
    pub fn http_stream_with(
        &mut self,
        request: Request,
        upstream: impl FnOnce(&Request) -> Response,
    ) -> Result<Response, Error> {
        if let Some(response) = self.begin(request)? {
            return Ok(response);
        }
        let Some(stream) = self.store.data_mut().active.stream.as_deref_mut() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        // Lend the (possibly modified) request to the upstream without copying it.
        let request = Request {
            headers: std::mem::take(&mut stream.request_headers),
            body: std::mem::take(&mut stream.request_body),
            source_address: std::mem::take(&mut stream.source_address),
            destination_address: std::mem::take(&mut stream.destination_address),
        };
        let response = upstream(&request);
        stream.request_headers = request.headers;
        stream.request_body = request.body;
        stream.source_address = request.source_address;
        stream.destination_address = request.destination_address;
        self.respond(response)
    }

    /// Runs the request phase; the caller forwards the request and then calls
    /// [`Worker::finish_stream`] (the local proxy does this around its upstream call).
    pub fn start_stream(&mut self, request: Request) -> Result<Started, Error> {
        if let Some(response) = self.begin(request)? {
            return Ok(Started::Responded(response));
        }
        let Some(stream) = self.store.data_mut().active.stream.take() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        let request = Request {
            headers: stream.request_headers.clone(),
            body: stream.request_body.clone(),
            source_address: stream.source_address.clone(),
            destination_address: stream.destination_address.clone(),
        };
        let id = self.next_stream;
        self.next_stream += 1;
        self.parked.insert(id, stream);
        Ok(Started::Forward {
            stream: id,
            request,
        })
    }

    /// Runs the response phase of a started stream with the upstream's response.
    pub fn finish_stream(&mut self, stream: u64, response: Response) -> Result<Response, Error> {
        let data = self
            .parked
            .remove(&stream)
            .ok_or(Error::UnknownStream(stream))?;
        self.store.data_mut().active.stream = Some(data);
        self.respond(response)
    }

    fn stream(&mut self) -> Result<&mut StreamData, Error> {
        let stream = self.store.data_mut().active.stream.as_deref_mut();
        stream.ok_or_else(|| Error::Usage("no active stream".into()))
    }

    /// Creates the stream's contexts and runs the request callbacks. `Some` when a local reply
    /// ended the stream (its response callbacks have run too, as in Envoy).
    fn begin(&mut self, request: Request) -> Result<Option<Response>, Error> {
        let contexts = (0..self.roots.len())
            .map(|_| self.next_context_id())
            .collect();
        let eos = u32::from(request.body.is_empty());
        self.store.data_mut().active.stream = Some(Box::new(StreamData {
            contexts,
            request_headers: lowercase(request.headers),
            request_body: request.body,
            source_address: request.source_address,
            destination_address: request.destination_address,
            ..StreamData::default()
        }));
        for plugin in 0..self.roots.len() {
            let (context, root) = (self.context(plugin)?, self.roots[plugin]);
            self.activate(context, plugin);
            self.invoke(
                |c| &c.context_create,
                "proxy_on_context_create",
                (context, root),
            )?;
        }
        let mut reply = None;
        for plugin in 0..self.roots.len() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            let headers = len32(self.stream()?.request_headers.len());
            let args = (context, headers, eos);
            let action = self.invoke(|c| &c.request_headers, "proxy_on_request_headers", args)?;
            reply = self.stream()?.local_reply.take();
            if reply.is_some() {
                break;
            }
            self.check_continue(action, "proxy_on_request_headers")?;
        }
        if reply.is_none() && eos == 0 {
            for plugin in 0..self.roots.len() {
                let context = self.context(plugin)?;
                self.activate(context, plugin);
                self.store.data_mut().active.body = Some(buffer_type::HTTP_REQUEST_BODY);
                let args = (context, len32(self.stream()?.request_body.len()), 1);
                let action = self.invoke(|c| &c.request_body, "proxy_on_request_body", args)?;
                reply = self.stream()?.local_reply.take();
                if reply.is_some() {
                    break;
                }
                self.check_continue(action, "proxy_on_request_body")?;
            }
        }
        match reply {
            // Envoy sends the local reply after the callback returns, through the encoder
            // filters: every plugin's response callbacks see it.
            Some(reply) => self.respond_with(local_response(reply), true).map(Some),
            None => Ok(None),
        }
    }

    fn context(&mut self, plugin: usize) -> Result<u32, Error> {
        let context = self.stream()?.contexts.get(plugin).copied();
        context.ok_or_else(|| Error::Usage(format!("no context for plugin {plugin}")))
    }

    fn check_continue(&mut self, action: u32, callback: &'static str) -> Result<(), Error> {
        if action == ACTION_CONTINUE {
            return Ok(());
        }
        self.end_contexts()?;
        self.store.data_mut().active.stream = None;
        Err(Error::Paused { callback })
    }

    fn respond(&mut self, response: Response) -> Result<Response, Error> {
        let mut headers = Vec::with_capacity(response.headers.len() + 1);
        headers.push((":status".to_string(), response.status.to_string()));
        headers.extend(lowercase(response.headers));
        self.respond_with((headers, response.body), false)
    }

    fn respond_with(
        &mut self,
        (headers, body): (Headers, Vec<u8>),
        local: bool,
    ) -> Result<Response, Error> {
        let mut local = local;
        {
            let stream = self.stream()?;
            stream.response_headers = Some(headers);
            stream.response_body = body;
        }
        for plugin in (0..self.roots.len()).rev() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            let stream = self.stream()?;
            let eos = u32::from(stream.response_body.is_empty());
            let count = len32(stream.response_headers.as_ref().map_or(0, Vec::len));
            let args = (context, count, eos);
            let action = self.invoke(|c| &c.response_headers, "proxy_on_response_headers", args)?;
            if let Some(reply) = self.stream()?.local_reply.take() {
                // A reply sent while encoding replaces the response (not re-encoded here).
                let (headers, body) = local_response(reply);
                let stream = self.stream()?;
                stream.response_headers = Some(headers);
                stream.response_body = body;
                local = true;
            } else {
                self.check_continue(action, "proxy_on_response_headers")?;
            }
        }
        if !self.stream()?.response_body.is_empty() {
            for plugin in (0..self.roots.len()).rev() {
                let context = self.context(plugin)?;
                self.activate(context, plugin);
                self.store.data_mut().active.body = Some(buffer_type::HTTP_RESPONSE_BODY);
                let args = (context, len32(self.stream()?.response_body.len()), 1);
                let action = self.invoke(|c| &c.response_body, "proxy_on_response_body", args)?;
                self.check_continue(action, "proxy_on_response_body")?;
            }
        }
        self.end_contexts()?;
        let Some(stream) = self.store.data_mut().active.stream.take() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        Ok(final_response(*stream, local))
    }

    /// Envoy's end of a stream: access log, then destroy (done, delete).
    fn end_contexts(&mut self) -> Result<(), Error> {
        let contexts = self.stream()?.contexts.clone();
        for (plugin, context) in contexts.iter().enumerate() {
            self.activate(*context, plugin);
            self.invoke(|c| &c.log, "proxy_on_log", *context)?;
        }
        for (plugin, context) in contexts.iter().enumerate() {
            self.activate(*context, plugin);
            self.invoke(|c| &c.done, "proxy_on_done", *context)?;
            self.invoke(|c| &c.delete, "proxy_on_delete", *context)?;
        }
        Ok(())
    }
}

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The response Envoy's `sendLocalReply` builds: status, content-length and text/plain when
/// there is a body, then the module's headers.
fn local_response(reply: LocalReply) -> (Headers, Vec<u8>) {
    let mut headers = vec![(":status".to_string(), reply.status.to_string())];
    if !reply.body.is_empty() {
        headers.push(("content-length".into(), reply.body.len().to_string()));
        headers.push(("content-type".into(), "text/plain".into()));
    }
    headers.extend(reply.headers);
    (headers, reply.body)
}

fn final_response(stream: StreamData, local: bool) -> Response {
    let headers = stream.response_headers.unwrap_or_default();
    let status = headers
        .iter()
        .find(|(name, _)| name == ":status")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(502);
    let headers = headers
        .into_iter()
        .filter(|(name, _)| !name.starts_with(':'))
        .collect();
    Response {
        status,
        headers,
        body: stream.response_body,
        local,
    }
}
