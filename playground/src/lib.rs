//! hrl-playground: a proxy-wasm ABI 0.2.1 host on wasmtime.
//!
//! It runs a compiled proxy-wasm module (our filter, `dist/plugin.wasm`) the way Envoy does:
//! one VM per worker, one shared-data store for all of them with Envoy's compare-and-swap
//! numbering, HTTP streams with local replies that go back through the response callbacks,
//! a clock tests can drive, captured logs and metrics. Imports the host does not implement
//! are linked to traps that name them.
//!
//! ```no_run
//! # fn main() -> Result<(), hrl_playground::Error> {
//! use hrl_playground::{Host, Module, Plugin, Request};
//! let module = Module::compile(&std::fs::read("dist/plugin.wasm").unwrap_or_default())?;
//! let mut host = Host::builder(&module)
//!     .plugin(Plugin::new("default.httpbin", br#"{"policy":"default/httpbin"}"#.to_vec()))
//!     .workers(2)
//!     .build()?;
//! let response = host.worker(0).http_stream(Request::get("/"))?;
//! host.clock().advance(std::time::Duration::from_secs(1));
//! # let _ = response; Ok(()) }
//! ```

mod abi;
mod clock;
mod error;
mod grpc;
mod guest;
mod header_map;
mod host;
mod http;
mod imports;
mod local_reply;
mod module;
mod shared;
mod state;
mod worker;

pub use abi::LogLevel;
pub use clock::{Clock, MANUAL_EPOCH_NANOS, MANUAL_MONOTONIC_START_NANOS};
pub use error::Error;
pub use host::{Host, HostBuilder, Plugin};
pub use http::{Headers, Request, Response, ResponseView};
pub use module::Module;
pub use shared::{LogLine, MAX_CAPTURED_LOGS, MetricKind, Shared};
pub use worker::{Started, Worker};
