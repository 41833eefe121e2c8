//! hrl-operator: the `HeaderRateLimit` CRD and the controller that turns each one into an
//! Istio WasmPlugin running the hrl filter.
#![forbid(unsafe_code)]

pub mod cache;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod rate;
pub mod rbac;
pub mod render;
pub mod report;
pub mod rls;
pub mod run;
pub mod scope;
mod target;
pub mod throttle;
pub mod wasm_plugin;
pub mod watch;
