//! The one error type of the host library.

/// Everything that can go wrong loading a module or driving it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a module wasmtime accepts (or the engine could not be set up).
    #[error("cannot compile the wasm module: {0}")]
    Compile(String),
    /// The module does not export the proxy-wasm ABI version this host speaks.
    #[error(
        "the module does not export proxy_abi_version_0_2_1 (or 0_2_0): not a proxy-wasm 0.2 module"
    )]
    UnsupportedAbi,
    /// The module imports something other than a function (memory, table, global).
    #[error(
        "the module imports {module}::{name}, which is not a function; the host only links functions"
    )]
    UnsupportedImport { module: String, name: String },
    /// A required export is missing or has the wrong type.
    #[error("the module export {name} is missing or has the wrong signature: {detail}")]
    MissingExport { name: &'static str, detail: String },
    /// Instantiation or `_initialize`/`_start` failed.
    #[error("cannot start the wasm module: {0}")]
    Instantiate(String),
    /// The module called an import the host does not implement.
    #[error(
        "the module called {module}::{name} during {callback}, which hrl-playground does not implement"
    )]
    UnimplementedImport {
        module: String,
        name: String,
        callback: &'static str,
    },
    /// The module trapped (a panic in the module, an out-of-bounds access, `proc_exit`, ...).
    #[error("the module trapped in {callback}: {message}{}", last_log(.logs))]
    Trap {
        callback: &'static str,
        message: String,
        logs: Vec<String>,
    },
    /// `proxy_on_vm_start` returned false.
    #[error("proxy_on_vm_start returned false on worker {worker}{}", last_log(.logs))]
    VmStart { worker: usize, logs: Vec<String> },
    /// `proxy_on_configure` returned false: the plugin refused its configuration. `metrics`
    /// are the host's metrics at that moment (what the module counted about the refusal).
    #[error("plugin {plugin:?} refused its configuration (proxy_on_configure returned false){}", last_log(.logs))]
    Configure {
        plugin: String,
        logs: Vec<String>,
        metrics: Vec<(String, crate::MetricKind, u64)>,
    },
    /// A previous trap left this worker's VM unusable (Envoy marks such a VM failed too).
    #[error("worker {worker} is failed after an earlier trap")]
    VmFailed { worker: usize },
    /// A callback returned Pause and nothing resumed the stream: no local reply, no
    /// `proxy_continue_stream`, and no gRPC call left to answer; in Envoy it would hang.
    #[error(
        "{callback} returned Pause and nothing resumed the stream (no local reply, no proxy_continue_stream, no gRPC call outstanding)"
    )]
    Paused { callback: &'static str },
    /// `finish_stream` was called with an id this worker does not know.
    #[error("unknown stream {0}")]
    UnknownStream(u64),
    /// The host was asked for something that does not exist (worker or plugin index).
    #[error("{0}")]
    Usage(String),
}

fn last_log(logs: &[String]) -> String {
    match logs.last() {
        Some(line) => format!("; module log: {line}"),
        None => String::new(),
    }
}
