//! scope Cluster: what asking the rate limit service adds to a request. One playground host
//! (the real module) in front of hrl-rls (Limitador behind RLS v3) on a real redis-server, all
//! on loopback; the same policy with a local bucket for comparison. Prints the p50/p99 wall time
//! of a whole HTTP stream and the module's own fuel per request (the wait excluded: fuel counts
//! wasm instructions only). `cargo bench -p hrl-playground --bench cluster` (needs
//! redis-server).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use hrl_playground::{Clock, Host, Module, Request};
use hrl_plugin_config::{PluginConfig, RateLimit, RateLimitService};
use hrl_rls::testing::RlsWithRedis;

const CLUSTER: &str = "outbound|8081||hrl-rls.hrl-system.svc.cluster.local";
const STREAMS: usize = 5_000;

fn policy(service: bool) -> PluginConfig {
    let service = service
        .then(|| RateLimitService::new(CLUSTER, "hrl-rls.hrl-system.svc.cluster.local", "hrl"));
    common::limit_config(
        "default/api",
        // Never limited: the cost measured is asking, not refusing.
        RateLimit {
            service,
            ..RateLimit::per_period(1_000_000, 86_400, 1_000_000)
        },
    )
}

fn host(module: &Module, config: &PluginConfig, engine: &RlsWithRedis) -> Host {
    Host::builder(module)
        .clock(Clock::system())
        .grpc_cluster(CLUSTER, &engine.rls.addr().to_string())
        .plugin(common::plugin(config))
        .build()
        .unwrap()
}

/// p50 and p99 of `STREAMS` streams, after a warm-up.
fn latencies(host: &mut Host) -> (Duration, Duration) {
    for _ in 0..200 {
        assert_eq!(host.http_stream(Request::get("/")).unwrap().status, 200);
    }
    let mut times: Vec<Duration> = (0..STREAMS)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(host.http_stream(Request::get("/")).unwrap().status, 200);
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[STREAMS / 2], times[STREAMS * 99 / 100])
}

fn fuel(module: &Module, config: &PluginConfig, engine: &RlsWithRedis) -> u64 {
    let mut host = host(module, config, engine);
    let worker = host.worker(0);
    for _ in 0..50 {
        worker.http_stream(Request::get("/")).unwrap();
    }
    let before = worker.fuel_consumed().unwrap();
    for _ in 0..500 {
        worker.http_stream(Request::get("/")).unwrap();
    }
    (worker.fuel_consumed().unwrap() - before) / 500
}

fn main() {
    let path = common::module_path("HRL_FILTER_WASM", "plugin.wasm", "filter");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let module = Module::compile(&bytes).unwrap();
    let metered = Module::compile_metered(&bytes).unwrap();
    let engine = RlsWithRedis::start(&["hrl"]).unwrap_or_else(|e| panic!("redis + hrl-rls: {e}"));
    let (local, cluster) = (policy(false), policy(true));
    let (local_p50, local_p99) = latencies(&mut host(&module, &local, &engine));
    let (cluster_p50, cluster_p99) = latencies(&mut host(&module, &cluster, &engine));
    let (local_fuel, cluster_fuel) = (
        fuel(&metered, &local, &engine),
        fuel(&metered, &cluster, &engine),
    );
    println!(
        "{:<22} {:>10} {:>10} {:>14}",
        "policy", "p50", "p99", "fuel/request"
    );
    println!(
        "{:<22} {:>10.1?} {:>10.1?} {:>14}",
        "local bucket", local_p50, local_p99, local_fuel
    );
    println!(
        "{:<22} {:>10.1?} {:>10.1?} {:>14}",
        "scope Cluster", cluster_p50, cluster_p99, cluster_fuel
    );
    println!(
        "added by asking the service: p50 {:.1?}, p99 {:.1?}",
        cluster_p50.saturating_sub(local_p50),
        cluster_p99.saturating_sub(local_p99)
    );
}
