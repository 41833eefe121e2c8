//! The few `wasi_snapshot_preview1` functions a Rust wasm32-wasip1 proxy-wasm module imports.
//!
//! Implemented here rather than with `wasmtime-wasi`: a module like ours needs environment
//! size/get (empty), `fd_write` to stdout/stderr (captured as log lines, as Envoy logs them),
//! `proc_exit`, and at most `clock_time_get`, `random_get` and args; `wasmtime-wasi` would add
//! a large dependency tree (component model, cap-std, async) to compile on every CI run for that.
//! Anything else a module imports from WASI fails loudly, naming the function.

use wasmtime::{Linker, Result};

use crate::abi::LogLevel;
use crate::guest::{Ctx, put, put_u32, put_u64, slice, with_memory};
use crate::state::VmState;

const ERRNO_SUCCESS: u32 = 0;
const ERRNO_BADF: u32 = 8;
const ERRNO_FAULT: u32 = 21;
const ERRNO_INVAL: u32 = 28;
const ERRNO_NOTSUP: u32 = 58;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const WASI: &str = "wasi_snapshot_preview1";

/// A module called `proc_exit`: its VM is finished (Envoy fails the VM too).
#[derive(Debug)]
pub(crate) struct ProcExit(pub i32);

impl std::fmt::Display for ProcExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the module called proc_exit({})", self.0)
    }
}

impl std::error::Error for ProcExit {}

pub(crate) fn link(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(WASI, "environ_sizes_get", empty_sizes)?;
    linker.func_wrap(WASI, "environ_get", empty_list)?;
    linker.func_wrap(WASI, "args_sizes_get", empty_sizes)?;
    linker.func_wrap(WASI, "args_get", empty_list)?;
    linker.func_wrap(WASI, "fd_write", fd_write)?;
    linker.func_wrap(WASI, "proc_exit", |_: Ctx<'_>, code: i32| -> Result<()> {
        Err(wasmtime::Error::new(ProcExit(code)))
    })?;
    linker.func_wrap(WASI, "clock_time_get", clock_time_get)?;
    linker.func_wrap(WASI, "random_get", random_get)?;
    Ok(())
}

fn empty_sizes(mut caller: Ctx<'_>, count_ptr: u32, size_ptr: u32) -> Result<u32> {
    with_memory(&mut caller, |data, _| {
        if put_u32(data, count_ptr, 0) && put_u32(data, size_ptr, 0) {
            ERRNO_SUCCESS
        } else {
            ERRNO_FAULT
        }
    })
}

fn empty_list(_: Ctx<'_>, _list_ptr: u32, _buf_ptr: u32) -> Result<u32> {
    Ok(ERRNO_SUCCESS)
}

fn fd_write(
    mut caller: Ctx<'_>,
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    written_ptr: u32,
) -> Result<u32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(ERRNO_BADF),
    };
    with_memory(&mut caller, |data, state| {
        let mut text = Vec::new();
        for index in 0..iovs_len {
            let Some(iov) = index.checked_mul(8).and_then(|o| iovs.checked_add(o)) else {
                return ERRNO_INVAL;
            };
            let Some(iov) = slice(data, iov, 8) else {
                return ERRNO_FAULT;
            };
            let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
            let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
            let Some(bytes) = slice(data, ptr, len) else {
                return ERRNO_FAULT;
            };
            text.extend_from_slice(bytes);
        }
        let written = u32::try_from(text.len()).unwrap_or(u32::MAX);
        let message = String::from_utf8_lossy(&text).trim_end().to_string();
        if !message.is_empty() {
            state.shared.log(state.worker, level, message);
        }
        if put_u32(data, written_ptr, written) {
            ERRNO_SUCCESS
        } else {
            ERRNO_FAULT
        }
    })
}

/// proxy-wasm-cpp-host's `wasi_unstable_clock_time_get`: realtime is the host's wall clock,
/// monotonic its steady clock (Envoy: `getMonotonicTimeNanoseconds`), CPU-time clocks are
/// `ENOTSUP`.
fn clock_time_get(
    mut caller: Ctx<'_>,
    clock_id: u32,
    _precision: u64,
    time_ptr: u32,
) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let clock = state.shared.clock();
        let now = match clock_id {
            CLOCK_REALTIME => clock.now_nanos(),
            CLOCK_MONOTONIC => clock.monotonic_nanos(),
            _ => return ERRNO_NOTSUP,
        };
        if put_u64(data, time_ptr, now) {
            ERRNO_SUCCESS
        } else {
            ERRNO_FAULT
        }
    })
}

fn random_get(mut caller: Ctx<'_>, buf: u32, len: u32) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        // xorshift64*: deterministic so ABI tests are reproducible; not for secrets.
        let mut bytes = Vec::with_capacity(len as usize);
        while bytes.len() < len as usize {
            state.rng ^= state.rng >> 12;
            state.rng ^= state.rng << 25;
            state.rng ^= state.rng >> 27;
            bytes.extend_from_slice(&state.rng.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        bytes.truncate(len as usize);
        if put(data, buf, &bytes) {
            ERRNO_SUCCESS
        } else {
            ERRNO_FAULT
        }
    })
}
