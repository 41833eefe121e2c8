//! Prometheus metrics and the HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::watch::WatchHealth;

/// The bounded label of a failed reconciliation (a condition reason or `PatchStatus`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// One of Invalid, IstioNotInstalled, ApplyFailed, PatchStatus.
    pub reason: &'static str,
}

/// The bounded label of a failed watch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// `headerratelimits` or `wasmplugins`.
    pub resource: &'static str,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations started.
    pub reconciliations: Counter,
    /// Reconciliations that did not reach Ready, by reason.
    pub failures: Family<FailureLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
    /// Watch errors (list or watch refused or failed), by resource.
    pub watch_errors: Family<WatchLabels, Counter>,
    /// HeaderRateLimits skipped because they could not be decoded.
    pub undecodable: Counter,
    /// Set once the API server answered (standby or leader).
    pub ready: AtomicBool,
    /// Whether every running HeaderRateLimit and pod watch has its list; with `ready`, gates
    /// `/readyz`.
    pub watches: Arc<WatchHealth>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hrl_operator");
        let reconciliations = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let buckets = [
            0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let duration = Histogram::new(buckets);
        let leader = Gauge::default();
        let watch_errors = Family::<WatchLabels, Counter>::default();
        let undecodable = Counter::default();
        registry.register(
            "reconciliations",
            "Reconciliations of HeaderRateLimits",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciliations that did not end Ready, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            "watch_errors",
            "Failed lists or watches, by resource (retried with backoff)",
            watch_errors.clone(),
        );
        registry.register(
            "undecodable_objects",
            "HeaderRateLimits skipped because they could not be decoded",
            undecodable.clone(),
        );
        Metrics {
            registry,
            reconciliations,
            failures,
            duration,
            leader,
            watch_errors,
            undecodable,
            ready: AtomicBool::new(false),
            watches: Arc::default(),
        }
    }
}

impl Metrics {
    /// Counts a failure with a bounded reason label.
    pub fn failed(&self, reason: &'static str) {
        self.failures.get_or_create(&FailureLabels { reason }).inc();
    }

    /// Counts a failed list or watch of `resource`.
    pub fn watch_failed(&self, resource: &'static str) {
        self.watch_errors
            .get_or_create(&WatchLabels { resource })
            .inc();
    }

    /// What `/readyz` answers: the API server answered, and every running HeaderRateLimit and
    /// pod watch has its list (a standby replica runs none).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.watches.all_synced()
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "metrics server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&req, &metrics)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = conn.await {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

fn respond(req: &http::Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET, "/readyz") if metrics.is_ready() => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}
