//! Reading and writing the module's linear memory from host functions.

use wasmtime::Caller;

use crate::abi::status;
use crate::state::VmState;

pub(crate) type Ctx<'a> = Caller<'a, VmState>;

/// A missing `memory` export is a host setup bug caught at instantiation; treat it as a trap.
fn no_memory() -> wasmtime::Error {
    wasmtime::Error::msg("the module has no exported memory")
}

/// Runs `f` over the guest memory and the host state together.
pub(crate) fn with_memory<R>(
    caller: &mut Ctx<'_>,
    f: impl FnOnce(&mut [u8], &mut VmState) -> R,
) -> wasmtime::Result<R> {
    let memory = caller.data().memory.ok_or_else(no_memory)?;
    let (data, state) = memory.data_and_store_mut(caller);
    Ok(f(data, state))
}

/// The guest bytes at `ptr..ptr+len`, if in bounds.
pub(crate) fn slice(data: &[u8], ptr: u32, len: u32) -> Option<&[u8]> {
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end)
}

/// Writes a little-endian u32 at `ptr`; false when out of bounds.
pub(crate) fn put_u32(data: &mut [u8], ptr: u32, value: u32) -> bool {
    put(data, ptr, &value.to_le_bytes())
}

/// Writes a little-endian u64 at `ptr`; false when out of bounds.
pub(crate) fn put_u64(data: &mut [u8], ptr: u32, value: u64) -> bool {
    put(data, ptr, &value.to_le_bytes())
}

pub(crate) fn put(data: &mut [u8], ptr: u32, bytes: &[u8]) -> bool {
    let Ok(start) = usize::try_from(ptr) else {
        return false;
    };
    match start
        .checked_add(bytes.len())
        .and_then(|end| data.get_mut(start..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// Copies `src` into `dst` when both are there and the same length; false otherwise.
pub(crate) fn copy_exact(dst: &mut [u8], src: Option<&[u8]>) -> bool {
    match src {
        Some(src) if src.len() == dst.len() => {
            dst.copy_from_slice(src);
            true
        }
        _ => false,
    }
}

/// Returns `len` bytes to the module the way Envoy's `copyToPointerSize` does: allocate with
/// the module's `proxy_on_memory_allocate`, let `fill` write them, store pointer and size.
/// Zero bytes are returned as a null pointer and size 0 (the SDK reads that as "no value").
/// `fill` returns false when the value changed while the module allocated (its allocator can
/// call the host): `InternalFailure`, rather than a wrong copy.
pub(crate) fn return_bytes(
    caller: &mut Ctx<'_>,
    len: usize,
    ptr_ptr: u32,
    size_ptr: u32,
    fill: impl FnOnce(&VmState, &mut [u8]) -> bool,
) -> wasmtime::Result<u32> {
    let Ok(len32) = u32::try_from(len) else {
        return Ok(status::INVALID_MEMORY_ACCESS);
    };
    let pointer = if len32 == 0 {
        0
    } else {
        // Taken out for the call (TypedFunc is not Copy) and put back: no clone per call.
        let malloc =
            caller.data_mut().malloc.take().ok_or_else(|| {
                wasmtime::Error::msg("the module has no proxy_on_memory_allocate")
            })?;
        let pointer = malloc.call(&mut *caller, len32);
        caller.data_mut().malloc = Some(malloc);
        pointer?
    };
    with_memory(caller, |data, state| {
        if len32 != 0 {
            let Some(dst) = usize::try_from(pointer)
                .ok()
                .and_then(|start| data.get_mut(start..start.checked_add(len)?))
            else {
                return status::INVALID_MEMORY_ACCESS;
            };
            if !fill(state, dst) {
                return status::INTERNAL_FAILURE;
            }
        }
        if put_u32(data, ptr_ptr, pointer) && put_u32(data, size_ptr, len32) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}
