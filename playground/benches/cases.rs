//! The benchmark cases, shared by the wall-time bench (`stream`) and the fuel bench (`fuel`).
#![allow(clippy::panic)] // a bench without its module fails loudly

use hrl_playground::{Clock, Host, Module, Plugin, Request, ResponseView};
use hrl_plugin_config::{Key, Match, PathMatch, PluginConfig, RateLimit};

#[path = "../tests/common/mod.rs"]
pub mod common;

/// One scenario: a module with its plugin configurations (a filter chain of one or more
/// policies on one workload).
#[derive(Debug)]
pub struct Case {
    pub name: &'static str,
    /// Empty: the do-nothing module.
    pub configs: Vec<PluginConfig>,
    /// Keep the clock still so the bucket stays empty (the 429 local-reply path).
    pub frozen: bool,
}

pub fn cases() -> Vec<Case> {
    let seed = common::seed_config();
    let headers_only = PluginConfig {
        rate_limit: None,
        ..seed.clone()
    };
    let mut per_key = seed.clone();
    if let Some(rate_limit) = per_key.rate_limit.as_mut() {
        rate_limit.key = Key::Header("x-api-key".into());
    }
    // Several limits on one workload are several policies (e.g. 10/s and 10000/24h): the seed
    // policy plus rate-limit-only policies over other periods, none of which limits here.
    let chain = |n: usize| -> Vec<PluginConfig> {
        let mut configs = vec![seed.clone()];
        for i in 1..n {
            let period = [60, 3600, 86_400, 30][(i - 1) % 4];
            configs.push(PluginConfig {
                policy: format!("default/limit-{i}"),
                response_headers: Vec::new(),
                remove_response_headers: Vec::new(),
                rate_limit: Some(RateLimit::per_period(1_000_000, period, 1_000_000)),
                matches: None,
            });
        }
        configs
    };
    // The seed policy restricted by a method and two paths: every request matches (on the
    // second path), or none does (method matches, neither path does: both rules are read).
    let with_match = |prefix: &str| PluginConfig {
        matches: Some(Match {
            methods: vec!["GET".into(), "POST".into()],
            paths: vec![
                PathMatch::Exact("/login".into()),
                PathMatch::Prefix(prefix.into()),
            ],
            ..Match::default()
        }),
        ..seed.clone()
    };
    vec![
        Case {
            name: "noop",
            configs: Vec::new(),
            frozen: false,
        },
        Case {
            name: "headers_only",
            configs: vec![headers_only],
            frozen: false,
        },
        Case {
            name: "global_bucket_ietf",
            configs: vec![seed.clone()],
            frozen: false,
        },
        Case {
            name: "match_2_paths_method",
            configs: vec![with_match("/headers")],
            frozen: false,
        },
        Case {
            name: "match_skipped",
            configs: vec![with_match("/api")],
            frozen: false,
        },
        Case {
            name: "per_key_header",
            configs: vec![per_key],
            frozen: false,
        },
        Case {
            name: "global_bucket_limited_429",
            configs: vec![seed.clone()],
            frozen: true,
        },
        Case {
            name: "policies_3",
            configs: chain(3),
            frozen: false,
        },
        Case {
            name: "policies_5",
            configs: chain(5),
            frozen: false,
        },
    ]
}

/// A host with one worker for the case; `metered` counts fuel and host calls.
pub fn host(case: &Case, metered: bool) -> Host {
    let bytes_of = |env: &str, file: &str, target: &str| {
        let path = common::module_path(env, file, target);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let (bytes, plugins) = if case.configs.is_empty() {
        (
            bytes_of("HRL_NOOP_WASM", "noop.wasm", "noop"),
            vec![Plugin::new("noop", b"{}".to_vec())],
        )
    } else {
        (
            bytes_of("HRL_FILTER_WASM", "plugin.wasm", "filter"),
            case.configs.iter().map(common::plugin).collect(),
        )
    };
    let module = if metered {
        Module::compile_metered(&bytes)
    } else {
        Module::compile(&bytes)
    };
    let module = module.unwrap_or_else(|e| panic!("compile: {e}"));
    let mut builder = Host::builder(&module);
    for plugin in plugins {
        builder = builder.plugin(plugin);
    }
    builder
        .clock(Clock::manual())
        .count_host_calls(metered)
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// The requests every case sends, in a cycle: the same for all, so differences are the filter's.
pub fn requests() -> Vec<Request> {
    (0..1000)
        .map(|i| {
            Request::get("/headers")
                .with_header("user-agent", "bench/1.0")
                .with_header("accept", "*/*")
                .with_header("x-api-key", &format!("key-{i}"))
        })
        .collect()
}

/// What each benchmarked stream's response is read for: its status and the size of its
/// headers, walked the way a codec writing them out would (nothing is copied).
pub fn read(response: &ResponseView<'_>) -> (u16, usize) {
    let size = response.headers().map(|(n, v)| n.len() + v.len()).sum();
    (response.status(), size)
}
