//! `hrl-operator`: `run` (default), `crd`, `render -f FILE`.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hrl_operator::leader::{self, LeaderElector, stopped};
use hrl_operator::metrics::{self, Metrics};
use hrl_operator::plan::{DEFAULT_FILTER_URL, Observed, Settings};
use hrl_operator::rls::{self, RlsSettings};
use hrl_operator::run::{RunConfig, run};
use hrl_plugin_config::CONTRACT_VERSION;
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
        /// For scope: Workload policies, the serving pods to split the rate across (the
        /// controller counts them; without this flag each proxy gets the whole rate).
        #[arg(long)]
        replicas: Option<u32>,
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
    /// The pluginConfig contract version the filter at --filter-url reads (its release's).
    /// Policies that need a newer one are reported Accepted=False instead of being sent to a
    /// filter that would refuse them.
    #[arg(long, env = "HRL_FILTER_CONTRACT_VERSION", default_value_t = CONTRACT_VERSION,
          value_parser = clap::value_parser!(u32).range(1..))]
    filter_contract_version: u32,
    /// The rate limit service (Envoy RLS v3, e.g. envoyproxy/ratelimit) that scope: Cluster
    /// policies use, as the FQDN and port of its Service:
    /// ratelimit.hrl-system.svc.cluster.local:8081. Unset: Cluster policies are not accepted.
    #[arg(long, env = "HRL_RLS_SERVICE")]
    rls_service: Option<String>,
    /// The RLS domain the limits live in (the service's config must have it).
    #[arg(long, env = "HRL_RLS_DOMAIN", default_value = rls::DEFAULT_DOMAIN)]
    rls_domain: String,
    /// How long a request waits for the rate limit service (1ms to 10s, e.g. 100ms or 1s);
    /// then the policy's failureMode decides.
    #[arg(long, env = "HRL_RLS_TIMEOUT", default_value = rls::DEFAULT_TIMEOUT)]
    rls_timeout: String,
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

/// The settings the flags give; Err names the flag and the rule.
fn settings(filter: FilterArgs) -> anyhow::Result<Settings> {
    let rls = filter
        .rls_service
        .as_deref()
        .filter(|address| !address.is_empty())
        .map(|address| RlsSettings::new(address, &filter.rls_domain, &filter.rls_timeout))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    Ok(Settings {
        filter_url: filter.filter_url,
        filter_sha256: filter.filter_sha256,
        filter_contract: filter.filter_contract_version,
        rls,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            print!("{}", hrl_operator::crd::crd_yaml()?);
            Ok(())
        }
        Some(Command::Render {
            file,
            filter,
            replicas,
        }) => {
            let yaml = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let observed = Observed { replicas };
            print!(
                "{}",
                hrl_operator::render::render(&yaml, &settings(filter)?, &observed)?
            );
            Ok(())
        }
        Some(Command::Run(args)) => run_operator(args).await,
        None => run_operator(cli.run).await,
    }
}

/// Logs go to stderr, with ANSI colour only when it is a terminal (not in `kubectl logs`) and
/// `NO_COLOR` is unset or empty (no-color.org).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = use_colour(
        format,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// PURE: whether log lines carry ANSI colour.
fn use_colour(format: LogFormat, is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    matches!(format, LogFormat::Text) && is_terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let settings = settings(args.filter.clone())?;
    if let Some(rls) = &settings.rls {
        tracing::info!(service = %rls.describe(), timeout_ms = rls.timeout_ms, "scope: Cluster policies use this rate limit service");
    }
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
    let pod_name = std::env::var("POD_NAME").ok();
    let host_name = std::fs::read_to_string("/etc/hostname").ok();
    let config = RunConfig {
        settings,
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect(),
        instance: leader::base_name(pod_name.as_deref(), host_name.as_deref()),
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
        leader::identity(pod_name.as_deref(), host_name.as_deref()),
    );
    let term_metrics = metrics.clone();
    leader::lead(&mut elector, &metrics, stop_rx, |shutdown| {
        run(
            client.clone(),
            config.clone(),
            term_metrics.clone(),
            shutdown,
        )
    })
    .await;
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "could not release the leader lease");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_logs_are_coloured_only_on_a_terminal_without_no_color() {
        let set = std::ffi::OsStr::new("1");
        let empty = std::ffi::OsStr::new("");
        assert!(use_colour(LogFormat::Text, true, None));
        assert!(use_colour(LogFormat::Text, true, Some(empty)));
        assert!(
            !use_colour(LogFormat::Text, false, None),
            "kubectl logs: no escapes"
        );
        assert!(!use_colour(LogFormat::Text, true, Some(set)));
        assert!(!use_colour(LogFormat::Json, true, None));
    }
}
