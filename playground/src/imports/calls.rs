//! gRPC calls and what their callbacks need: the call status, the effective context, and
//! resuming the paused stream (proxy-wasm-cpp-host `src/exports.cc`, Envoy `context.cc`).

use wasmtime::{Linker, Result};

use crate::abi::{Pairs, lossy, status, stream_type};
use crate::grpc::{self, Outcome, Service, code};
use crate::guest::{Ctx, copy_exact, put_u32, return_bytes, slice, with_memory};
use crate::state::VmState;

pub(crate) fn link(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap("env", "proxy_grpc_call", grpc_call)?;
    linker.func_wrap("env", "proxy_grpc_cancel", grpc_cancel)?;
    linker.func_wrap("env", "proxy_grpc_close", grpc_cancel)?;
    linker.func_wrap("env", "proxy_get_status", get_status)?;
    linker.func_wrap("env", "proxy_set_effective_context", set_effective_context)?;
    linker.func_wrap("env", "proxy_continue_stream", continue_stream)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)] // the ABI's signature
fn grpc_call(
    mut caller: Ctx<'_>,
    service_ptr: u32,
    service_size: u32,
    service_name_ptr: u32,
    service_name_size: u32,
    method_ptr: u32,
    method_size: u32,
    metadata_ptr: u32,
    metadata_size: u32,
    message_ptr: u32,
    message_size: u32,
    timeout_ms: u32,
    token_ptr: u32,
) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let (Some(service), Some(name), Some(method), Some(metadata), Some(message)) = (
            slice(data, service_ptr, service_size),
            slice(data, service_name_ptr, service_name_size),
            slice(data, method_ptr, method_size),
            slice(data, metadata_ptr, metadata_size),
            slice(data, message_ptr, message_size),
        ) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        let plugin = state.active.plugin;
        let upstreams = state.shared.grpc();
        // Envoy (`Context::grpcCall`): a serialized GrpcService names its cluster; other bytes
        // are a cluster name, ParseFailure when unknown. A GrpcService's cluster is not checked
        // there: the call fails later with UNAVAILABLE, and `sendRaw` returns no request.
        let (cluster, authority, plain_name) = match grpc::parse(service) {
            Service::ClusterName(name) => (name, String::new(), true),
            Service::EnvoyGrpc { cluster, authority } => (cluster, authority, false),
            // google_grpc (or no target): not something the playground can reach.
            Service::Other => return status::INTERNAL_FAILURE,
        };
        let Some(address) = upstreams.address(&cluster) else {
            if plain_name {
                return status::PARSE_FAILURE;
            }
            let closed = Outcome::closed(code::UNAVAILABLE, "Cluster not available");
            state.grpc.fail(plugin, closed);
            return status::INTERNAL_FAILURE;
        };
        // `AsyncClientImpl`: `:authority` is `envoy_grpc.authority`, else the cluster name.
        let authority = if authority.is_empty() {
            &cluster
        } else {
            &authority
        };
        // Envoy reads malformed pairs as none (`PairsUtil::toPairs`).
        let mut pairs = Vec::new();
        if let Some(parsed) = Pairs::parse(metadata) {
            parsed.for_each(|name, value| pairs.push((name.to_vec(), value.to_vec())));
        }
        let path = format!("/{}/{}", lossy(name), lossy(method));
        let call = grpc::build(address, authority, &path, timeout_ms, &pairs, message);
        let Some(token) = call.and_then(|call| state.grpc.start(upstreams, plugin, call)) else {
            return status::INTERNAL_FAILURE;
        };
        if put_u32(data, token_ptr, token) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}

/// `proxy_grpc_cancel` and `proxy_grpc_close` do the same to a unary call (Envoy's
/// `grpcCancel`/`grpcClose`): cancel it, no callback follows; NotFound when not outstanding.
fn grpc_cancel(mut caller: Ctx<'_>, token: u32) -> Result<u32> {
    Ok(if caller.data_mut().grpc.cancel(token) {
        status::OK
    } else {
        status::NOT_FOUND
    })
}

/// The root context's status: the last `on_grpc_close` code (0 before any), and its message
/// during that callback only.
fn get_status(mut caller: Ctx<'_>, code_ptr: u32, ptr_ptr: u32, size_ptr: u32) -> Result<u32> {
    let written = with_memory(&mut caller, |data, state| {
        let code = state.grpc.status(state.active.plugin);
        put_u32(data, code_ptr, code)
    })?;
    if !written {
        return Ok(status::INVALID_MEMORY_ACCESS);
    }
    let len = caller.data().grpc.message.len();
    return_bytes(&mut caller, len, ptr_ptr, size_ptr, |state, dst| {
        copy_exact(dst, Some(&state.grpc.message))
    })
}

/// The SDK calls this in every gRPC callback with the context that made the call, before
/// the module's code runs. Any living context is accepted (BadArgument otherwise); the
/// stream's maps and replies are reachable only through one of its own contexts.
fn set_effective_context(mut caller: Ctx<'_>, context: u32) -> Result<u32> {
    let state = caller.data_mut();
    let active = &mut state.active;
    let of_stream = active
        .stream
        .as_deref()
        .or(active.hidden.as_deref())
        .and_then(|stream| stream.contexts.iter().position(|c| *c == context));
    let target = of_stream
        .map(|plugin| (plugin, true))
        .or_else(|| {
            let root = state.roots.iter().position(|r| *r == context);
            root.map(|plugin| (plugin, false))
        })
        .or_else(|| {
            let parked = state.grpc.parked.iter().find(|(c, _)| *c == context);
            parked.map(|(_, plugin)| (*plugin, false))
        });
    let Some((plugin, visible)) = target else {
        return Ok(status::BAD_ARGUMENT);
    };
    let stream = active.stream.take().or_else(|| active.hidden.take());
    if visible {
        active.stream = stream;
    } else {
        active.hidden = stream;
    }
    active.context = context;
    active.plugin = plugin;
    Ok(status::OK)
}

/// Envoy's `continueStream`: request and response resume the stream once the callback
/// returns (outside a stream nothing happens), downstream is accepted, upstream is
/// Unimplemented, anything else BadArgument.
fn continue_stream(mut caller: Ctx<'_>, kind: u32) -> Result<u32> {
    let direction = match kind {
        stream_type::HTTP_REQUEST => 0,
        stream_type::HTTP_RESPONSE => 1,
        stream_type::DOWNSTREAM => return Ok(status::OK),
        stream_type::UPSTREAM => return Ok(status::UNIMPLEMENTED),
        _ => return Ok(status::BAD_ARGUMENT),
    };
    if let Some(stream) = caller.data_mut().active.stream.as_deref_mut()
        && let Some(resume) = stream.resume.get_mut(direction)
    {
        *resume = true;
    }
    Ok(status::OK)
}
