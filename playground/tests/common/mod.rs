//! Shared by the playground's integration tests: finding and compiling modules once.
#![allow(dead_code)] // each test crate uses a different subset
#![allow(clippy::panic, clippy::expect_used)] // test helpers fail loudly

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

use hrl_playground::{Host, LogLevel, Plugin};
use hrl_plugin_config::{Header, PluginConfig, RateLimit};

/// The seed plugin as a pluginConfig: four headers, 2 tokens/s, burst 2, IETF headers.
pub fn seed_config() -> PluginConfig {
    let mut rate_limit = RateLimit::new(2, 2);
    rate_limit.body = "rate limited, wait and retry.\n".into();
    rate_limit.headers = vec![Header::new("powered-by", "hrl-filter")];
    PluginConfig {
        policy: "default/httpbin".into(),
        response_headers: vec![
            Header::new("hally", "wang"),
            Header::new("injected-by", "istio-api!"),
            Header::new("wang", "1234567"),
            Header::new("who-am-i", "wasm-extension"),
        ],
        remove_response_headers: Vec::new(),
        rate_limit: Some(rate_limit),
        matches: None,
    }
}

/// A policy with only a rate limit.
pub fn limit_config(policy: &str, rate_limit: RateLimit) -> PluginConfig {
    PluginConfig {
        policy: policy.into(),
        response_headers: Vec::new(),
        remove_response_headers: Vec::new(),
        rate_limit: Some(rate_limit),
        matches: None,
    }
}

/// The plugin Istio would configure for this pluginConfig (named `namespace.name`).
pub fn plugin(config: &PluginConfig) -> Plugin {
    let json = config.to_json().expect("pluginConfig serializes");
    Plugin::new(&config.policy.replace('/', "."), json.into_bytes())
}

/// The real filter with these policies as a filter chain, on `workers` worker VMs.
pub fn filter_host(configs: &[PluginConfig], workers: usize) -> Host {
    let mut builder = Host::builder(filter())
        .workers(workers)
        .log_level(LogLevel::Debug);
    for config in configs {
        builder = builder.plugin(plugin(config));
    }
    builder
        .build()
        .unwrap_or_else(|e| panic!("filter host starts: {e}"))
}

/// The metric `hrl.<namespace>.<name>.<counter>` of a policy once every worker has ticked
/// (the filter hands its counts to the host on a tick), 0 when never defined.
pub fn counter(host: &mut Host, policy: &str, counter: &str) -> u64 {
    host.tick().unwrap_or_else(|e| panic!("tick: {e}"));
    host.metric(&format!("hrl.{}.{counter}", policy.replace('/', ".")))
        .unwrap_or(0)
}
