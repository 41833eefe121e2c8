//! Envoy's rate limit service (RLS v3, `envoy.service.ratelimit.v3.RateLimitService`) with
//! Kuadrant's Limitador counting in Redis: the engine behind `scope: Cluster` for tests and
//! the demo. It answers the way envoyproxy/ratelimit answers a descriptor that carries a
//! `limit` override (see README.md for what is mirrored and where it differs).
//!
//! - [`request`]: the request parsed once (domain, limits, hits, windows); pure.
//! - [`engine`]: counts in Limitador's storage (Redis or memory) and builds the answer.
//! - [`server`]: the tonic gRPC service and a server on a listener.
//! - [`testing`]: `redis-server` and the RLS server on loopback, for tests.
#![forbid(unsafe_code)]

pub mod engine;
mod error;
pub mod request;
pub mod server;
pub mod testing;

pub use engine::{Engine, Storage};
pub use error::Error;
pub use server::{RateLimitServer, Running};
