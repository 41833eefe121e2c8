//! The gRPC service and a server running it on a listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::{Engine, Error};

/// `envoy.service.ratelimit.v3.RateLimitService` on an [`Engine`].
#[derive(Debug, Clone)]
pub struct RateLimitServer {
    engine: Arc<Engine>,
    delay: Duration,
}

impl RateLimitServer {
    /// Serves `engine`.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine: Arc::new(engine),
            delay: Duration::ZERO,
        }
    }

    /// Waits `delay` before each answer: a slow engine, for timeout tests.
    pub fn with_delay(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }

    /// Serves on `listen` (port 0: a free port) until [`Running::stop`].
    pub async fn spawn(self, listen: SocketAddr) -> Result<Running, Error> {
        let bind = |source| Error::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        // The filter's calls are small and latency-bound.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            // One service: no router needed (tonic's `router` feature would add axum).
            Server::builder().serve_with_incoming_shutdown(
                RateLimitServiceServer::new(self),
                incoming,
                async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                },
            ),
        );
        Ok(Running {
            addr,
            shutdown: Some(shutdown),
            task,
        })
    }
}

#[tonic::async_trait]
impl RateLimitService for RateLimitServer {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.engine.should_rate_limit(request.into_inner()).await {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => {
                tracing::warn!(error = %error, "ShouldRateLimit failed");
                Err(status(&error))
            }
        }
    }
}

/// The gRPC status of a failed request. Limitador's own server answers every storage error
/// `UNAVAILABLE` (so Envoy's `failure_mode_deny` applies); a storage error that is not about
/// the connection is `INTERNAL` here.
pub fn status(error: &Error) -> Status {
    let message = error.to_string();
    match error {
        Error::EmptyDomain | Error::NoDescriptors | Error::UnknownUnit { .. } => {
            Status::invalid_argument(message)
        }
        Error::Count {
            transient: true, ..
        } => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

/// A server task; [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, tells clients to go away (HTTP/2 GOAWAY), and waits for calls under
    /// way to finish.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match (&mut self.task).await {
            Ok(served) => served.map_err(Error::Serve),
            Err(join) => Err(Error::Thread(join.to_string())),
        }
    }
}
