//! `hrl-playground`: try a HeaderRateLimit on a laptop. Renders the policy file's pluginConfig
//! with the operator's own code, runs the filter module in N worker VMs on the playground host,
//! and serves HTTP/1.1 on loopback in front of an upstream (a built-in echo by default).

mod pool;
mod server;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hrl_operator::plan::{Observed, Settings};
use hrl_operator::rls::RlsSettings;
use hrl_playground::{Clock, Host, LogLevel, Module, Plugin};
use hrl_plugin_config::{FailureMode, Key, Match, PathMatch, PluginConfig, RateLimitHeaders};

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "hrl-playground", version, about)]
struct Args {
    /// HeaderRateLimit YAML (the file you would `kubectl apply`; several documents = a chain).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Address to serve HTTP/1.1 on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Upstream base URL (`http://host:port`); default: the built-in echo upstream.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The filter module.
    #[arg(long, value_name = "FILE", default_value = "dist/plugin.wasm")]
    module: PathBuf,
    /// Worker VMs (Envoy runs one per worker thread; they share one bucket).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Lowest module log level printed: trace, debug, info, warn, error, critical.
    #[arg(long, default_value = "info", value_parser = parse_level)]
    log_level: LogLevel,
    /// A cluster the module's proxy_grpc_call can reach (HTTP/2 without TLS), by the name
    /// the module passes (or the envoy_grpc.cluster_name of a GrpcService). Repeatable.
    #[arg(long = "grpc-cluster", value_name = "NAME=HOST:PORT", value_parser = parse_cluster)]
    grpc_clusters: Vec<(String, String)>,
    /// The rate limit service (Envoy RLS v3, e.g. hrl-rls or envoyproxy/ratelimit) that
    /// `scope: Cluster` policies ask, at this local address. Policies are rendered as the
    /// operator would with `--rls-service` set to the in-mesh name below, whose cluster maps
    /// here.
    #[arg(long, value_name = "HOST:PORT")]
    rls: Option<String>,
    /// The RLS domain of `scope: Cluster` policies.
    #[arg(long, default_value = hrl_operator::rls::DEFAULT_DOMAIN)]
    rls_domain: String,
}

/// The in-mesh name the playground renders `scope: Cluster` policies with (`--rls` maps its
/// cluster to the local address).
const RLS_SERVICE: &str = "hrl-rls.playground.svc.cluster.local:8081";

fn parse_cluster(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, address)) if !name.is_empty() && address.rsplit_once(':').is_some() => {
            Ok((name.to_owned(), address.to_owned()))
        }
        _ => Err(format!("{value:?} is not NAME=HOST:PORT")),
    }
}

fn parse_level(level: &str) -> Result<LogLevel, String> {
    Ok(match level {
        "trace" => LogLevel::Trace,
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "critical" => LogLevel::Critical,
        other => return Err(format!("unknown log level {other:?}")),
    })
}

/// Reads the policy file and renders each HeaderRateLimit's pluginConfig (operator code, with
/// the playground's rate limit service if there is one; one proxy of one for `Workload`).
fn load_policies(path: &Path, rls: Option<&RlsSettings>) -> Result<Vec<PluginConfig>> {
    let settings = Settings {
        rls: rls.cloned(),
        ..Settings::default()
    };
    let yaml = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read policy file {}", path.display()))?;
    let documents = hrl_operator::render::parse_documents(&yaml)
        .with_context(|| format!("invalid HeaderRateLimit in {}", path.display()))?;
    if documents.is_empty() {
        bail!("{}: no HeaderRateLimit in the file", path.display());
    }
    documents
        .iter()
        .map(|hrl| {
            hrl_operator::plan::scoped_plugin_config(hrl, &settings, &Observed::default())
                .map(|(config, _)| config)
                .with_context(|| format!("invalid HeaderRateLimit in {}", path.display()))
        })
        .collect()
}

fn load_module(path: &Path) -> Result<Module> {
    if !path.is_file() {
        bail!(
            "filter module {} not found: build it with `make filter` (or pass --module FILE)",
            path.display()
        );
    }
    Module::from_file(path).with_context(|| format!("cannot load {}", path.display()))
}

fn describe(config: &PluginConfig) -> String {
    let mut out = format!("  policy {}\n", config.policy);
    if let Some(matches) = &config.matches {
        out.push_str(&format!("    applies to    {}\n", describe_match(matches)));
    }
    for header in &config.response_headers {
        out.push_str(&format!(
            "    set header    {}: {}\n",
            header.name, header.value
        ));
    }
    for name in &config.remove_response_headers {
        out.push_str(&format!("    remove header {name}\n"));
    }
    match &config.rate_limit {
        None => out.push_str("    no rate limit (headers only)\n"),
        Some(limit) => {
            // A rate limit service keeps one count per key, with no maxKeys of the proxy's.
            let (unit, bound) = match &limit.service {
                None => ("bucket", format!(" (at most {} keys)", limit.max_keys)),
                Some(_) => ("count", String::new()),
            };
            let key = match &limit.key {
                Key::None => format!("one {unit} for all requests"),
                Key::Header(name) => format!("one {unit} per {name} header value{bound}"),
                Key::ClientAddress => format!("one {unit} per client address{bound}"),
            };
            let headers = match limit.rate_limit_headers {
                RateLimitHeaders::Ietf => "RateLimit and RateLimit-Policy on every response",
                RateLimitHeaders::Draft03 => {
                    "X-RateLimit-Limit/-Remaining/-Reset on every response"
                }
                RateLimitHeaders::None => "no rate-limit headers",
            };
            // As `kubectl get hrl` shows it (status.rate): 2/s, 5/1m.
            let rate = hrl_operator::rate::display(limit.tokens, limit.period_seconds);
            match &limit.service {
                None => out.push_str(&format!(
                    "    rate limit    {rate}, burst {}, {key}\n",
                    limit.burst
                )),
                Some(service) => out.push_str(&format!(
                    "    rate limit    {rate} in fixed windows, counted by the rate limit service \
                     {} (domain {}, timeout {} ms, on failure {}), {key}\n",
                    service.cluster,
                    service.domain,
                    service.timeout_ms,
                    match service.failure_mode {
                        FailureMode::Allow => "allow",
                        FailureMode::Deny => "deny",
                    }
                )),
            }
            out.push_str(&format!("    limit headers {headers}\n"));
            out.push_str(&format!(
                "    when limited  status {} with retry-after{}\n",
                limit.status_code,
                if limit.enforce {
                    ""
                } else {
                    ", DRY RUN (enforce: false): nothing is refused"
                }
            ));
        }
    }
    out
}

/// `methods POST; paths /login (prefix); hosts a.com, *.a.com; headers x-tenant: beta`: the
/// fields that are set, each any of, except headers (all of).
fn describe_match(matches: &Match) -> String {
    let mut parts = Vec::new();
    if !matches.methods.is_empty() {
        parts.push(format!("methods {}", matches.methods.join(", ")));
    }
    if !matches.paths.is_empty() {
        let paths: Vec<String> = matches
            .paths
            .iter()
            .map(|path| match path {
                PathMatch::Exact(p) => format!("{p} (exact)"),
                PathMatch::Prefix(p) => format!("{p} (prefix)"),
            })
            .collect();
        parts.push(format!("paths {}", paths.join(", ")));
    }
    if !matches.hosts.is_empty() {
        parts.push(format!("hosts {}", matches.hosts.join(", ")));
    }
    if !matches.headers.is_empty() {
        let headers: Vec<String> = matches
            .headers
            .iter()
            .map(|h| match &h.value {
                Some(value) => format!("{}: {value}", h.name),
                None => format!("{} (any value)", h.name),
            })
            .collect();
        parts.push(format!("headers {}", headers.join(" and ")));
    }
    parts.join("; ")
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let rls = match &args.rls {
        Some(address) => {
            let settings = RlsSettings::new(
                RLS_SERVICE,
                &args.rls_domain,
                hrl_operator::rls::DEFAULT_TIMEOUT,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            Some((settings, address.clone()))
        }
        None => None,
    };
    let mut clusters = args.grpc_clusters.clone();
    if let Some((settings, address)) = &rls {
        clusters.push((settings.cluster(), address.clone()));
    }
    let configs = load_policies(&args.policy, rls.as_ref().map(|(settings, _)| settings))?;
    let module = load_module(&args.module)?;
    let mut builder = Host::builder(&module)
        .workers(args.workers)
        .clock(Clock::system())
        .log_level(args.log_level)
        .echo_logs(true);
    for (name, address) in &clusters {
        builder = builder.grpc_cluster(name, address);
    }
    for config in &configs {
        let json = config.to_json().context("cannot serialize pluginConfig")?;
        builder = builder.plugin(Plugin::new(
            &config.policy.replace('/', "."),
            json.into_bytes(),
        ));
    }
    let host = builder.build().context("the filter did not start")?;
    let upstream = upstream::Upstream::parse(args.upstream.as_deref())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let listener = server::bind(args.listen).await?;
        let address = listener
            .local_addr()
            .context("cannot read the listening address")?;
        println!(
            "hrl-playground: module {} ({} workers)",
            args.module.display(),
            args.workers
        );
        let policies = match configs.len() {
            1 => "1 policy".to_string(),
            n => format!("{n} policies"),
        };
        println!("hrl-playground: {} ({policies})", args.policy.display());
        for config in &configs {
            print!("{}", describe(config));
        }
        println!("hrl-playground: upstream {upstream}");
        for (name, address) in &clusters {
            println!("hrl-playground: gRPC cluster {name} at {address} (h2c)");
        }
        println!("hrl-playground: listening on http://{address}");
        let (shared, workers) = host.into_parts();
        let pool = pool::Pool::start(workers);
        server::serve(listener, pool, upstream, shared).await
    })
}

#[cfg(test)]
mod tests {
    use hrl_plugin_config::{
        FailureMode, HeaderMatch, Key, Match, PathMatch, PluginConfig, RateLimit, RateLimitService,
    };

    use super::describe;

    fn config(matches: Option<Match>) -> PluginConfig {
        PluginConfig {
            policy: "default/login".into(),
            response_headers: Vec::new(),
            remove_response_headers: Vec::new(),
            rate_limit: Some(RateLimit::per_period(5, 60, 5)),
            matches,
        }
    }

    #[test]
    fn a_match_is_described_field_by_field_before_the_limit() {
        let matches = Match {
            methods: vec!["POST".into(), "PUT".into()],
            paths: vec![
                PathMatch::Exact("/login".into()),
                PathMatch::Prefix("/api".into()),
            ],
            hosts: vec!["a.com".into(), "*.a.com".into()],
            headers: vec![
                HeaderMatch {
                    name: "x-tenant".into(),
                    value: Some("beta".into()),
                },
                HeaderMatch {
                    name: "authorization".into(),
                    value: None,
                },
            ],
        };
        let described = describe(&config(Some(matches)));
        let lines: Vec<&str> = described.lines().take(3).collect();
        assert_eq!(
            lines,
            [
                "  policy default/login",
                "    applies to    methods POST, PUT; paths /login (exact), /api (prefix); \
                 hosts a.com, *.a.com; headers x-tenant: beta and authorization (any value)",
                "    rate limit    5/1m, burst 5, one bucket for all requests",
            ]
        );
    }

    #[test]
    fn only_the_fields_a_match_sets_are_described_and_no_match_says_nothing() {
        let paths_only = Match {
            paths: vec![PathMatch::Prefix("/login".into())],
            ..Match::default()
        };
        let described = describe(&config(Some(paths_only)));
        assert!(
            described.contains("\n    applies to    paths /login (prefix)\n"),
            "{described}"
        );
        assert!(!describe(&config(None)).contains("applies to"));
    }

    #[test]
    fn a_cluster_limit_names_its_service_and_counts_without_a_key_bound() {
        let mut config = config(None);
        config.rate_limit = Some(RateLimit {
            key: Key::ClientAddress,
            service: Some(RateLimitService {
                failure_mode: FailureMode::Deny,
                ..RateLimitService::new("outbound|8081||rls.example", "rls.example", "hrl")
            }),
            ..RateLimit::per_period(5, 60, 5)
        });
        let described = describe(&config);
        assert!(
            described.contains(
                "\n    rate limit    5/1m in fixed windows, counted by the rate limit service \
                 outbound|8081||rls.example (domain hrl, timeout 100 ms, on failure deny), one \
                 count per client address\n"
            ),
            "{described}"
        );
    }
}
