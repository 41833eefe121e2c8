//! The crate's one error type.

use std::net::SocketAddr;
use std::time::Duration;

/// What failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `domain` is empty (envoyproxy/ratelimit: "rate limit domain must not be empty").
    #[error("domain: must not be empty")]
    EmptyDomain,
    /// `descriptors` is empty (envoyproxy/ratelimit: "rate limit descriptor list must not be
    /// empty").
    #[error("descriptors: must not be empty")]
    NoDescriptors,
    /// A descriptor's `limit.unit` is not a unit with a window length.
    #[error(
        "descriptors[{index}].limit.unit: {unit} is not SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR"
    )]
    UnknownUnit {
        /// Index of the descriptor.
        index: usize,
        /// The unit's wire value.
        unit: i32,
    },
    /// Connecting to Redis (and loading Limitador's scripts) failed.
    #[error("redis {url}: cannot connect: {message}")]
    ConnectRedis {
        /// The Redis URL.
        url: String,
        /// Redis' error.
        message: String,
    },
    /// Limitador could not build the counter of a descriptor.
    #[error("descriptors[{index}]: cannot build the counter: {message}")]
    BuildCounter {
        /// Index of the descriptor.
        index: usize,
        /// Limitador's error.
        message: String,
    },
    /// The counter storage failed (Redis down, a script error).
    #[error("counter storage: {message}")]
    Count {
        /// A connection-level failure that may pass (refused, dropped, timed out).
        transient: bool,
        /// Limitador's error.
        message: String,
    },
    /// Binding the gRPC listener failed.
    #[error("listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// `redis-server` is not on PATH (testing).
    #[error(
        "redis-server is not installed (not on PATH): install it (Debian: apt-get install -y redis-server); the RLS tests need a real Redis"
    )]
    RedisNotInstalled,
    /// `redis-server` could not be started or did not answer PING (testing).
    #[error("redis-server on 127.0.0.1:{port}: {message}")]
    StartRedis {
        /// The port given to it.
        port: u16,
        /// What went wrong.
        message: String,
    },
    /// A thread or runtime for the in-process server could not be made (testing).
    #[error("rls server thread: {0}")]
    Thread(String),
    /// A wait ran out.
    #[error("{what}: no answer within {waited:?}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        waited: Duration,
    },
}
