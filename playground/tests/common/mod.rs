//! Shared by the playground's integration tests: finding and compiling modules once.
#![allow(dead_code)] // each test crate uses a different subset
#![allow(clippy::panic)] // test helpers fail loudly

use std::path::PathBuf;
use std::sync::OnceLock;

use hrl_playground::Module;

/// `$env` if set, else `<workspace>/dist/<file>`; a missing file fails naming the make target.
pub fn module_path(env: &str, file: &str, make_target: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist")).join(file)
    });
    assert!(
        path.is_file(),
        "{} not found: run `make {make_target}` first (or set {env})",
        path.display()
    );
    path
}

fn compile(env: &str, file: &str, make_target: &str, metered: bool) -> Module {
    let path = module_path(env, file, make_target);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let module = if metered {
        Module::compile_metered(&bytes)
    } else {
        Module::compile(&bytes)
    };
    module.unwrap_or_else(|e| panic!("compile {}: {e}", path.display()))
}

/// The do-nothing module (`make noop`), compiled once per test process.
pub fn noop() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| compile("HRL_NOOP_WASM", "noop.wasm", "noop", false))
}

/// The do-nothing module compiled with fuel metering.
pub fn noop_metered() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| compile("HRL_NOOP_WASM", "noop.wasm", "noop", true))
}

/// The real filter (`make filter`), compiled once per test process.
pub fn filter() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| compile("HRL_FILTER_WASM", "plugin.wasm", "filter", false))
}
