//! Header maps, buffers, properties and local replies: the per-stream host functions.

use wasmtime::{Linker, Result};

use crate::abi::{Pairs, buffer_type, map_type, pairs_size, status, text, write_pairs};
use crate::guest::{Ctx, copy_exact, return_bytes, slice, with_memory};
use crate::header_map::HeaderMap;
use crate::http::parse_status;
use crate::local_reply::MAX_KNOWN_GRPC_STATUS;
use crate::state::{StreamData, VmState};

pub(crate) fn link(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap("env", "proxy_get_header_map_pairs", get_header_map_pairs)?;
    linker.func_wrap("env", "proxy_set_header_map_pairs", set_header_map_pairs)?;
    linker.func_wrap("env", "proxy_get_header_map_value", get_header_map_value)?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        replace_header_map_value,
    )?;
    linker.func_wrap("env", "proxy_add_header_map_value", add_header_map_value)?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        remove_header_map_value,
    )?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", get_buffer_bytes)?;
    linker.func_wrap("env", "proxy_get_property", get_property)?;
    linker.func_wrap("env", "proxy_send_local_response", send_local_response)?;
    Ok(())
}

/// The map a callback may see: request headers during the whole stream, response headers once
/// the response exists; trailers and call maps never exist here (Envoy: null map).
fn map(state: &VmState, kind: u32) -> Option<&HeaderMap> {
    let stream = state.active.stream.as_deref()?;
    match kind {
        map_type::HTTP_REQUEST_HEADERS => Some(&stream.request_headers),
        map_type::HTTP_RESPONSE_HEADERS if stream.responding => Some(&stream.response_headers),
        _ => None,
    }
}

fn map_mut(state: &mut VmState, kind: u32) -> Option<&mut HeaderMap> {
    let stream = state.active.stream.as_deref_mut()?;
    match kind {
        map_type::HTTP_REQUEST_HEADERS => Some(&mut stream.request_headers),
        map_type::HTTP_RESPONSE_HEADERS if stream.responding => Some(&mut stream.response_headers),
        _ => None,
    }
}

fn get_header_map_pairs(
    mut caller: Ctx<'_>,
    kind: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<u32> {
    if kind > map_type::MAX {
        return Ok(status::BAD_ARGUMENT);
    }
    // Envoy returns an absent map as an empty one (null pointer, size 0).
    let len = map(caller.data(), kind)
        .filter(|m| !m.is_empty())
        .map_or(0, pairs_size);
    return_bytes(
        &mut caller,
        len,
        ptr_ptr,
        size_ptr,
        |state, dst| match map(state, kind).filter(|pairs| pairs_size(pairs) == dst.len()) {
            Some(pairs) => {
                write_pairs(pairs, dst);
                true
            }
            None => false,
        },
    )
}

fn set_header_map_pairs(mut caller: Ctx<'_>, kind: u32, ptr: u32, size: u32) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let Some(bytes) = slice(data, ptr, size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        let Some(pairs) = Pairs::parse(bytes) else {
            return status::SERIALIZATION_FAILURE;
        };
        let Some(headers) = map_mut(state, kind) else {
            return status::BAD_ARGUMENT;
        };
        // Envoy removes every header, then adds the pairs with lowercased names.
        headers.clear();
        pairs.for_each(|name, value| headers.add(name, value));
        status::OK
    })
}

fn get_header_map_value(
    mut caller: Ctx<'_>,
    kind: u32,
    key_ptr: u32,
    key_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<u32> {
    let found = with_memory(&mut caller, |data, state| {
        let Some(name) = slice(data, key_ptr, key_size) else {
            return Err(status::INVALID_MEMORY_ACCESS);
        };
        let Some(headers) = map(state, kind) else {
            return Err(status::BAD_ARGUMENT);
        };
        // Envoy returns the first value only.
        let index = headers.position(name).ok_or(status::NOT_FOUND)?;
        let len = headers.get(index).map_or(0, |(_, value)| value.len());
        Ok((index, len))
    })?;
    let (index, len) = match found {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    return_bytes(&mut caller, len, ptr_ptr, size_ptr, |state, dst| {
        let value = map(state, kind).and_then(|h| h.get(index)).map(|(_, v)| v);
        copy_exact(dst, value)
    })
}

fn edit_header(
    mut caller: Ctx<'_>,
    kind: u32,
    key_ptr: u32,
    key_size: u32,
    value: Option<(u32, u32)>,
    edit: fn(&mut HeaderMap, &[u8], &[u8]),
) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let Some(name) = slice(data, key_ptr, key_size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        let value = match value {
            Some((ptr, len)) => match slice(data, ptr, len) {
                Some(bytes) => bytes,
                None => return status::INVALID_MEMORY_ACCESS,
            },
            None => &[],
        };
        let Some(headers) = map_mut(state, kind) else {
            return status::BAD_ARGUMENT;
        };
        edit(headers, name, value);
        status::OK
    })
}

fn replace_header_map_value(
    caller: Ctx<'_>,
    kind: u32,
    key_ptr: u32,
    key_size: u32,
    value_ptr: u32,
    value_size: u32,
) -> Result<u32> {
    // Envoy's setCopy: replace the first value if present, otherwise add.
    let value = Some((value_ptr, value_size));
    edit_header(caller, kind, key_ptr, key_size, value, HeaderMap::replace)
}

fn add_header_map_value(
    caller: Ctx<'_>,
    kind: u32,
    key_ptr: u32,
    key_size: u32,
    value_ptr: u32,
    value_size: u32,
) -> Result<u32> {
    let value = Some((value_ptr, value_size));
    edit_header(caller, kind, key_ptr, key_size, value, HeaderMap::add)
}

fn remove_header_map_value(caller: Ctx<'_>, kind: u32, key_ptr: u32, key_size: u32) -> Result<u32> {
    edit_header(caller, kind, key_ptr, key_size, None, |h, n, _| h.remove(n))
}

/// The readable buffer of that type, if the running callback may see one.
fn buffer(state: &VmState, kind: u32) -> Option<&[u8]> {
    let active = &state.active;
    match kind {
        buffer_type::PLUGIN_CONFIGURATION if active.configuring => state
            .plugins
            .get(active.plugin)
            .map(|p| p.configuration.as_slice()),
        buffer_type::VM_CONFIGURATION => Some(&[]),
        // Envoy: the root context's buffer, set during `on_grpc_receive` only.
        buffer_type::GRPC_RECEIVE_BUFFER => state.grpc.received.as_deref(),
        buffer_type::HTTP_REQUEST_BODY | buffer_type::HTTP_RESPONSE_BODY
            if active.body == Some(kind) =>
        {
            let stream = active.stream.as_deref()?;
            Some(if kind == buffer_type::HTTP_REQUEST_BODY {
                &stream.request_body
            } else {
                &stream.response_body
            })
        }
        _ => None,
    }
}

fn get_buffer_bytes(
    mut caller: Ctx<'_>,
    kind: u32,
    start: u32,
    max_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<u32> {
    if kind > buffer_type::MAX {
        return Ok(status::BAD_ARGUMENT);
    }
    let Some(size) = buffer(caller.data(), kind).map(<[u8]>::len) else {
        return Ok(status::NOT_FOUND);
    };
    let start = start as usize;
    if start > size {
        return Ok(status::BAD_ARGUMENT);
    }
    let len = (max_size as usize).min(size - start);
    if len == 0 {
        // Envoy returns Ok without touching the pointers.
        return Ok(status::OK);
    }
    return_bytes(&mut caller, len, ptr_ptr, size_ptr, |state, dst| {
        copy_exact(
            dst,
            buffer(state, kind).and_then(|b| b.get(start..start + len)),
        )
    })
}

fn port_of(address: &str) -> Option<Vec<u8>> {
    let port: i64 = address.rsplit_once(':')?.1.parse().ok()?;
    Some(port.to_le_bytes().to_vec())
}

fn stream_property(stream: &StreamData, path: &[&str]) -> Option<Vec<u8>> {
    let request = |name: &str| {
        stream
            .request_headers
            .first(name.as_bytes())
            .map(<[u8]>::to_vec)
    };
    match path {
        ["source", "address"] => Some(stream.source_address.as_bytes().to_vec()),
        ["source", "port"] => port_of(&stream.source_address),
        ["destination", "address"] => Some(stream.destination_address.as_bytes().to_vec()),
        ["destination", "port"] => port_of(&stream.destination_address),
        ["request", "path"] => request(":path"),
        ["request", "method"] => request(":method"),
        ["request", "host"] => request(":authority"),
        ["request", "scheme"] => request(":scheme"),
        ["response", "code"] if stream.responding => {
            let status = stream.response_headers.first(b":status")?;
            let code = i64::from(parse_status(status)?);
            Some(code.to_le_bytes().to_vec())
        }
        _ => None,
    }
}

/// Properties as Envoy encodes them: strings as bytes, integers as 8 little-endian bytes.
fn property(state: &VmState, path: &[&str]) -> Option<Vec<u8>> {
    let plugin = state.plugins.get(state.active.plugin);
    match path {
        ["plugin_name"] => plugin.map(|p| p.name.as_bytes().to_vec()),
        ["plugin_root_id"] => plugin.map(|p| p.root_id.as_bytes().to_vec()),
        ["plugin_vm_id"] => Some(state.shared.vm_id().as_bytes().to_vec()),
        _ => stream_property(state.active.stream.as_deref()?, path),
    }
}

fn get_property(
    mut caller: Ctx<'_>,
    path_ptr: u32,
    path_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
) -> Result<u32> {
    let value = with_memory(&mut caller, |data, state| {
        let Some(path) = slice(data, path_ptr, path_size) else {
            return Err(status::INVALID_MEMORY_ACCESS);
        };
        let path = text(path);
        // Every known property has at most two segments: no Vec per lookup.
        let mut parts = [""; 3];
        let mut count = 0;
        for part in path.split('\0') {
            let Some(slot) = parts.get_mut(count) else {
                return Err(status::NOT_FOUND);
            };
            *slot = part;
            count += 1;
        }
        property(state, &parts[..count]).ok_or(status::NOT_FOUND)
    })?;
    match value {
        Ok(value) => return_bytes(&mut caller, value.len(), ptr_ptr, size_ptr, |_, dst| {
            copy_exact(dst, Some(&value))
        }),
        Err(code) => Ok(code),
    }
}

#[allow(clippy::too_many_arguments)] // the ABI's signature
fn send_local_response(
    mut caller: Ctx<'_>,
    status_code: u32,
    _details_ptr: u32,
    _details_size: u32,
    body_ptr: u32,
    body_size: u32,
    headers_ptr: u32,
    headers_size: u32,
    grpc_status: i32,
) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let Some(body) = slice(data, body_ptr, body_size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        let Some(headers) = slice(data, headers_ptr, headers_size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        let Some(headers) = Pairs::parse(headers) else {
            return status::SERIALIZATION_FAILURE;
        };
        // Outside a stream Envoy has no decoder callbacks and does nothing.
        if let Some(stream) = state.active.stream.as_deref_mut() {
            // Envoy sends the reply after the callback returns; a second one is ignored.
            if !stream.reply_pending {
                stream.reply_pending = true;
                let reply = &mut stream.reply;
                reply.status = status_code;
                reply.body.clear();
                reply.body.extend_from_slice(body);
                reply.headers.clear();
                headers.for_each(|name, value| reply.headers.add(name, value));
                reply.grpc_status = u32::try_from(grpc_status)
                    .ok()
                    .filter(|_| grpc_status <= MAX_KNOWN_GRPC_STATUS);
            }
        }
        status::OK
    })
}
