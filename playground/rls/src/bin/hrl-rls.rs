//! `hrl-rls`: Envoy's rate limit service (RLS v3 gRPC) counting with Limitador in Redis.
//! Each descriptor's `limit` override is its limit, as in envoyproxy/ratelimit; no limits
//! file.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use hrl_rls::{Engine, RateLimitServer, Storage};
use tokio::signal::unix::{SignalKind, signal};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "hrl-rls",
    version,
    about = "Envoy's rate limit service (RLS v3 gRPC) on Kuadrant's Limitador, counting in Redis.",
    long_about = "Envoy's rate limit service (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit, \
gRPC over HTTP/2 without TLS) on Kuadrant's Limitador, counting in Redis.\n\n\
Like envoyproxy/ratelimit, a descriptor's `limit` override is its limit: fixed windows aligned to \
the Unix epoch, one counter per domain and descriptor entries. A descriptor without an override, \
and every descriptor of a domain not given with --domain, answers OK without counting. \
There is no limits file."
)]
struct Args {
    /// Address to serve gRPC on (port 0 picks a free port; the address is logged).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Redis to count in (Limitador's AsyncRedisStorage); several servers may share it.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Count in this process' memory instead of Redis.
    #[arg(long, conflicts_with = "redis")]
    memory: bool,
    /// A domain whose limit overrides are honoured. Repeatable.
    #[arg(
        long = "domain",
        value_name = "DOMAIN",
        default_value = "hrl",
        num_args = 1
    )]
    domains: Vec<String>,
    /// Give up on a count after this long and answer UNAVAILABLE (Redis unreachable).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    storage_timeout_ms: u64,
    /// Debug: wait this long before each answer (a slow rate limit service).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay_ms: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let storage = if args.memory {
        Storage::memory()
    } else {
        Storage::redis(&args.redis).await?
    };
    let engine = Engine::new(storage, args.domains.clone())
        .with_timeout(Duration::from_millis(args.storage_timeout_ms));
    let running = RateLimitServer::new(engine)
        .with_delay(Duration::from_millis(args.delay_ms))
        .spawn(args.listen)
        .await?;
    tracing::info!(
        listen = %running.addr(),
        counters = if args.memory { "memory" } else { args.redis.as_str() },
        domains = ?args.domains,
        "serving envoy.service.ratelimit.v3.RateLimitService"
    );
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("SIGINT handler")?,
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    running.stop().await?;
    Ok(())
}
