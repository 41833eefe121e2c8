//! A proxy-wasm HTTP filter that does nothing: every callback continues.
//!
//! It is the floor of the playground benchmarks: the cost of one HTTP stream through the
//! host with this module is the host's own overhead, so `filter - noop` is the filter's cost.
//! Built with the same SDK (proxy-wasm 0.2.5) and the same `wasm-release` profile as the filter.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

/// The root context: accepts any configuration and creates do-nothing HTTP contexts.
struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp))
    }
}

/// An HTTP context whose callbacks are the SDK defaults (continue).
struct NoopHttp;

impl Context for NoopHttp {}

impl HttpContext for NoopHttp {}
