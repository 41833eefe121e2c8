//! `hrl-operator`: `run` (default), `crd`, `render -f FILE`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hrl_operator::leader::{LeaderElector, RENEW_DEADLINE, RENEW_EVERY};
use hrl_operator::metrics::{self, Metrics};
use hrl_operator::plan::{DEFAULT_FILTER_URL, Settings};
use hrl_operator::run::{RunConfig, run};
use kube::{Api, Client};
use tokio::sync::watch;

/// Kubernetes operator that turns HeaderRateLimit resources into Istio WasmPlugins.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
    /// Print the HeaderRateLimit CustomResourceDefinition as YAML.
    Crd,
    /// Print the WasmPlugins the controller would apply for the HeaderRateLimits in FILE.
    Render {
        /// YAML file with one or more HeaderRateLimits (`-` reads stdin).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

#[derive(Debug, Args, Clone)]
struct FilterArgs {
    /// URL of the filter module proxies load (oci://, https://, file://).
    #[arg(long, env = "HRL_FILTER_URL", default_value = DEFAULT_FILTER_URL)]
    filter_url: String,
    /// SHA-256 (64 lowercase hex) that pins the module: for oci:// the image manifest digest,
    /// for http(s):// the checksum of plugin.wasm. Required by `run` unless
    /// --allow-unpinned-filter.
    #[arg(long, env = "HRL_FILTER_SHA256", value_parser = parse_sha256)]
    filter_sha256: Option<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Run without --filter-sha256. Proxies then fetch the module by URL once and keep it:
    /// a new module pushed under the same tag reaches a proxy only when its pod restarts.
    #[arg(long, env = "HRL_ALLOW_UNPINNED_FILTER", default_value_t = false, action = clap::ArgAction::Set)]
    allow_unpinned_filter: bool,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "HRL_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "HRL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Take a Lease before writing, so only one replica acts.
    #[arg(long, env = "HRL_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader election Lease.
    #[arg(long, env = "HRL_LEASE_NAME", default_value = "hrl-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the client's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Namespaces to watch, comma-separated; empty watches all.
    #[arg(long, env = "HRL_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

fn parse_sha256(s: &str) -> Result<String, String> {
    let ok = s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 64 lowercase hex characters".into())
    }
}

fn settings(filter: FilterArgs) -> Settings {
    Settings {
        filter_url: filter.filter_url,
        filter_sha256: filter.filter_sha256,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            print!("{}", hrl_operator::crd::crd_yaml()?);
            Ok(())
        }
        Some(Command::Render { file, filter }) => {
            let yaml = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            print!(
                "{}",
                hrl_operator::render::render(&yaml, &settings(filter))?
            );
            Ok(())
        }
        Some(Command::Run(args)) => run_operator(args).await,
        None => run_operator(cli.run).await,
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    if args.filter.filter_sha256.is_none() && !args.allow_unpinned_filter {
        anyhow::bail!(
            "--filter-sha256 (HRL_FILTER_SHA256) is not set: pin the filter module with its \
             digest (chart value filter.sha256), or accept an unpinned module with \
             --allow-unpinned-filter=true (chart value filter.allowUnpinned)"
        );
    }
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let addr = args.metrics_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(metrics::serve(
        listener,
        metrics.clone(),
        stopped(stop_rx.clone()),
    ));

    let client = Client::try_default()
        .await
        .context("building the Kubernetes client")?;
    let identity = std::env::var("POD_NAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hrl-operator".into());
    let config = RunConfig {
        settings: settings(args.filter),
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
        instance: identity.clone(),
    };
    if !args.leader_election {
        metrics.ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        run(client, config, metrics, stopped(stop_rx)).await;
        return Ok(());
    }
    let namespace = args
        .lease_namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut elector = LeaderElector::new(
        Api::namespaced(client.clone(), &namespace),
        args.lease_name,
        identity,
    );
    lead_while_elected(&mut elector, client, config, metrics, stop_rx).await;
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "could not release the leader lease");
    }
    Ok(())
}

/// Standby until elected, run the controllers while the Lease is renewed, back to standby when
/// it is lost; returns on shutdown.
async fn lead_while_elected(
    elector: &mut LeaderElector,
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        match elector.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                metrics.ready.store(true, Ordering::Relaxed);
                sleep_or_stop(RENEW_EVERY, &stop).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "leader election: cannot read the Lease");
                sleep_or_stop(RENEW_EVERY, &stop).await;
                continue;
            }
        }
        tracing::info!(identity = elector.identity(), "became leader");
        metrics.ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        let (lost_tx, lost_rx) = watch::channel(false);
        let controllers = run(
            client.clone(),
            config.clone(),
            metrics.clone(),
            stopped_either(stop.clone(), lost_rx),
        );
        let mut controllers = std::pin::pin!(controllers);
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                () = &mut controllers => break,
                () = tokio::time::sleep(RENEW_EVERY) => {}
            }
            match elector.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!("lost the leader lease; stopping the controllers");
                    let _ = lost_tx.send(true);
                }
                Err(error) if last_renewed.elapsed() > RENEW_DEADLINE => {
                    tracing::warn!(%error, "could not renew the leader lease in time; stopping the controllers");
                    let _ = lost_tx.send(true);
                }
                Err(error) => tracing::warn!(%error, "could not renew the leader lease; retrying"),
            }
        }
        metrics.leader.set(0);
    }
}

async fn sleep_or_stop(duration: Duration, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn stopped_either(a: watch::Receiver<bool>, b: watch::Receiver<bool>) {
    tokio::select! {
        () = stopped(a) => {}
        () = stopped(b) => {}
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
