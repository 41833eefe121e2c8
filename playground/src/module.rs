//! Compiling a module once and sharing it across hosts, workers and tests.

use wasmtime::{Config, Engine};

use crate::error::Error;

/// A compiled proxy-wasm module and the engine it was compiled for. Clones are cheap
/// (both are reference counted), so tests can keep one in a `OnceLock` and build many hosts.
#[derive(Clone)]
pub struct Module {
    pub(crate) engine: Engine,
    pub(crate) module: wasmtime::Module,
    pub(crate) metered: bool,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("metered", &self.metered)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// Compiles a module for normal (unmetered) execution.
    pub fn compile(bytes: &[u8]) -> Result<Module, Error> {
        Module::build(bytes, false)
    }

    /// Compiles a module that counts wasm fuel (about one unit per instruction), for
    /// [`Worker::fuel_consumed`](crate::Worker::fuel_consumed). Metering slows execution.
    pub fn compile_metered(bytes: &[u8]) -> Result<Module, Error> {
        Module::build(bytes, true)
    }

    /// Reads and compiles a module file.
    pub fn from_file(path: &std::path::Path) -> Result<Module, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Compile(format!("cannot read {}: {e}", path.display())))?;
        Module::compile(&bytes)
    }

    fn build(bytes: &[u8], metered: bool) -> Result<Module, Error> {
        let mut config = Config::new();
        config.consume_fuel(metered);
        // `HRL_PLAYGROUND_PERFMAP=1`: write /tmp/perf-<pid>.map so `perf report` names the
        // module's functions (see playground/README.md, "Profiling").
        if std::env::var_os("HRL_PLAYGROUND_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| Error::Compile(format!("{e:#}")))?;
        let module =
            wasmtime::Module::new(&engine, bytes).map_err(|e| Error::Compile(format!("{e:#}")))?;
        let exports_abi = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"]
            .iter()
            .any(|name| module.get_export(name).is_some());
        if !exports_abi {
            return Err(Error::UnsupportedAbi);
        }
        Ok(Module {
            engine,
            module,
            metered,
        })
    }

    /// True when this module counts fuel.
    pub fn is_metered(&self) -> bool {
        self.metered
    }
}
