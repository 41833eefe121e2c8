//! The built module (`make filter` -> dist/plugin.wasm) speaks the proxy-wasm 0.2.1 ABI and
//! imports nothing a proxy does not provide.

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::panic, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// The size budget `make filter` enforces: the Makefile's `FILTER_MAX_BYTES`, one source.
fn max_bytes() -> usize {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Makefile");
    let makefile = std::fs::read_to_string(path).expect("the workspace Makefile");
    makefile
        .lines()
        .find_map(|line| line.strip_prefix("FILTER_MAX_BYTES := "))
        .and_then(|value| value.trim().parse().ok())
        .expect("FILTER_MAX_BYTES := <bytes> in the Makefile")
}

/// Host functions of proxy-wasm ABI 0.2.1 (module `env`).
const PROXY_ABI_0_2_1: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_add_header_map_value",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_get_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
];

/// The WASI preview 1 functions Envoy implements for proxy-wasm modules.
const WASI_IN_ENVOY: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "environ_get",
    "environ_sizes_get",
    "fd_close",
    "fd_fdstat_get",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_read",
    "fd_seek",
    "fd_write",
    "poll_oneoff",
    "proc_exit",
    "random_get",
    "sched_yield",
];

/// The filter's own host calls: if one of these is missing the filter cannot work.
const USED_BY_FILTER: &[&str] = &[
    "proxy_get_buffer_bytes",
    "proxy_get_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_add_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_send_local_response",
    "proxy_set_tick_period_milliseconds",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_log",
];

/// WASI functions the filter relies on: the monotonic clock buckets refill from.
const WASI_USED_BY_FILTER: &[&str] = &["clock_time_get"];

/// Exports a proxy-wasm 0.2.1 host needs from an HTTP filter.
const REQUIRED_EXPORTS: &[&str] = &[
    "memory",
    "_initialize",
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_request_headers",
    "proxy_on_response_headers",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_delete",
];

fn module_path() -> PathBuf {
    std::env::var_os("HRL_FILTER_WASM").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/plugin.wasm")),
        PathBuf::from,
    )
}

fn module() -> Vec<u8> {
    let path = module_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the filter module {} ({e}): run `make filter` first (or set HRL_FILTER_WASM)",
            path.display()
        )
    })
}

struct Surface {
    imports: Vec<(String, String, bool)>,
    exports: Vec<(String, ExternalKind)>,
}

fn surface(bytes: &[u8]) -> Surface {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("a well-formed wasm module") {
            Payload::ImportSection(reader) => {
                for import in reader {
                    let import = import.expect("import");
                    let is_func = matches!(import.ty, TypeRef::Func(_));
                    imports.push((import.module.to_string(), import.name.to_string(), is_func));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.expect("export");
                    exports.push((export.name.to_string(), export.kind));
                }
            }
            _ => {}
        }
    }
    Surface { imports, exports }
}

#[test]
fn module_fits_the_size_budget() {
    let (bytes, max_bytes) = (module(), max_bytes());
    assert!(
        bytes.len() <= max_bytes,
        "{} is {} bytes, over the {max_bytes} byte budget",
        module_path().display(),
        bytes.len()
    );
}

#[test]
fn module_exports_the_proxy_wasm_abi() {
    let exports = surface(&module()).exports;
    let names: BTreeSet<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    for name in REQUIRED_EXPORTS {
        assert!(
            names.contains(name),
            "missing export {name}; exports: {names:?}"
        );
    }
    assert!(exports.contains(&("memory".to_string(), ExternalKind::Memory)));
    assert!(exports.contains(&("proxy_on_request_headers".to_string(), ExternalKind::Func)));
    assert!(
        !names.contains("_start"),
        "a reactor module: _initialize, not a command's _start"
    );
}

#[test]
fn module_imports_only_proxy_abi_and_envoy_wasi_functions() {
    let imports = surface(&module()).imports;
    assert!(!imports.is_empty());
    for (module, name, is_func) in &imports {
        assert!(is_func, "{module}.{name} is imported but is not a function");
        let known = match module.as_str() {
            "env" => PROXY_ABI_0_2_1.contains(&name.as_str()),
            "wasi_snapshot_preview1" => WASI_IN_ENVOY.contains(&name.as_str()),
            _ => false,
        };
        assert!(known, "unexpected import {module}.{name}");
    }
    for name in USED_BY_FILTER {
        assert!(
            imports.iter().any(|(m, n, _)| m == "env" && n == name),
            "the filter calls {name} but the module does not import it"
        );
    }
    for name in WASI_USED_BY_FILTER {
        assert!(
            imports
                .iter()
                .any(|(m, n, _)| m == "wasi_snapshot_preview1" && n == name),
            "the filter reads the monotonic clock through {name}, which it does not import"
        );
    }
}
