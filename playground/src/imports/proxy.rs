//! Logs, time, ticks, shared data and metrics: the host functions that are not per stream.

use std::sync::atomic::Ordering;

use wasmtime::{Linker, Result};

use crate::abi::{LogLevel, lossy, status};
use crate::guest::{Ctx, copy_exact, put_u32, put_u64, return_bytes, slice, with_memory};
use crate::shared::{MetricKind, SetOutcome};
use crate::state::VmState;

pub(crate) fn link(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap("env", "proxy_log", log)?;
    linker.func_wrap("env", "proxy_get_log_level", get_log_level)?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        get_current_time,
    )?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", set_tick_period)?;
    linker.func_wrap("env", "proxy_get_shared_data", get_shared_data)?;
    linker.func_wrap("env", "proxy_set_shared_data", set_shared_data)?;
    linker.func_wrap("env", "proxy_define_metric", define_metric)?;
    linker.func_wrap("env", "proxy_get_metric", get_metric)?;
    linker.func_wrap("env", "proxy_record_metric", record_metric)?;
    linker.func_wrap("env", "proxy_increment_metric", increment_metric)?;
    Ok(())
}

fn log(mut caller: Ctx<'_>, level: u32, ptr: u32, size: u32) -> Result<u32> {
    let Some(level) = LogLevel::from_abi(level) else {
        return Ok(status::BAD_ARGUMENT);
    };
    if level < caller.data().shared.log_level() {
        return Ok(status::OK);
    }
    with_memory(&mut caller, |data, state| {
        let Some(bytes) = slice(data, ptr, size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        state.shared.log(state.worker, level, lossy(bytes));
        status::OK
    })
}

fn get_log_level(mut caller: Ctx<'_>, ptr: u32) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let level = state.shared.log_level().to_abi();
        if put_u32(data, ptr, level) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}

fn get_current_time(mut caller: Ctx<'_>, ptr: u32) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let now = state.shared.clock().now_nanos();
        if put_u64(data, ptr, now) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}

fn set_tick_period(mut caller: Ctx<'_>, period_ms: u32) -> Result<u32> {
    let state = caller.data_mut();
    let context = state.active.context;
    state.ticks.insert(context, period_ms);
    Ok(status::OK)
}

fn get_shared_data(
    mut caller: Ctx<'_>,
    key_ptr: u32,
    key_size: u32,
    ptr_ptr: u32,
    size_ptr: u32,
    cas_ptr: u32,
) -> Result<u32> {
    let found = with_memory(&mut caller, |data, state| {
        let key = slice(data, key_ptr, key_size).ok_or(status::INVALID_MEMORY_ACCESS)?;
        let store = state.shared.store();
        let (value, cas) = store.get(key).ok_or(status::NOT_FOUND)?;
        // Copied into the VM's reusable scratch buffer: no allocation per read, and the lock
        // is not held while the module allocates.
        state.scratch.clear();
        state.scratch.extend_from_slice(value);
        Ok(cas)
    })?;
    let cas = match found {
        Ok(cas) => cas,
        Err(code) => return Ok(code),
    };
    let len = caller.data().scratch.len();
    let code = return_bytes(&mut caller, len, ptr_ptr, size_ptr, |state, dst| {
        copy_exact(dst, Some(&state.scratch))
    })?;
    if code != status::OK {
        return Ok(code);
    }
    with_memory(&mut caller, |data, _| {
        if put_u32(data, cas_ptr, cas) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}

fn set_shared_data(
    mut caller: Ctx<'_>,
    key_ptr: u32,
    key_size: u32,
    value_ptr: u32,
    value_size: u32,
    cas: u32,
) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let Some(key) = slice(data, key_ptr, key_size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        // The SDK passes a null pointer and size 0 for "no value": Envoy stores "".
        let value = if value_size == 0 {
            Some(&[][..])
        } else {
            slice(data, value_ptr, value_size)
        };
        let Some(value) = value else {
            return status::INVALID_MEMORY_ACCESS;
        };
        match state.shared.store().set(key, value, cas) {
            SetOutcome::Stored => status::OK,
            SetOutcome::CasMismatch => status::CAS_MISMATCH,
        }
    })
}

fn define_metric(
    mut caller: Ctx<'_>,
    kind: u32,
    name_ptr: u32,
    name_size: u32,
    id_ptr: u32,
) -> Result<u32> {
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return Ok(status::BAD_ARGUMENT),
    };
    with_memory(&mut caller, |data, state| {
        let Some(name) = slice(data, name_ptr, name_size) else {
            return status::INVALID_MEMORY_ACCESS;
        };
        // Like Envoy, every definition gets a fresh id; the value is shared by name.
        let metric = state.shared.define_metric(kind, &lossy(name));
        state.metrics.push(metric);
        let id = u32::try_from(state.metrics.len()).unwrap_or(u32::MAX);
        if put_u32(data, id_ptr, id) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}

fn metric(state: &VmState, id: u32) -> Option<&crate::shared::Metric> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    state.metrics.get(index).map(|m| &**m)
}

fn get_metric(mut caller: Ctx<'_>, id: u32, ptr: u32) -> Result<u32> {
    with_memory(&mut caller, |data, state| {
        let Some(metric) = metric(state, id) else {
            return status::NOT_FOUND;
        };
        if metric.kind == MetricKind::Histogram {
            return status::BAD_ARGUMENT;
        }
        let value = metric.value.load(Ordering::SeqCst);
        if put_u64(data, ptr, value) {
            status::OK
        } else {
            status::INVALID_MEMORY_ACCESS
        }
    })
}

fn record_metric(caller: Ctx<'_>, id: u32, value: u64) -> Result<u32> {
    let Some(metric) = metric(caller.data(), id) else {
        return Ok(status::NOT_FOUND);
    };
    match metric.kind {
        MetricKind::Counter => metric.value.fetch_add(value, Ordering::SeqCst),
        MetricKind::Gauge => metric.value.swap(value, Ordering::SeqCst),
        MetricKind::Histogram => metric.value.fetch_add(1, Ordering::SeqCst),
    };
    Ok(status::OK)
}

fn increment_metric(caller: Ctx<'_>, id: u32, offset: i64) -> Result<u32> {
    let Some(metric) = metric(caller.data(), id) else {
        return Ok(status::NOT_FOUND);
    };
    let magnitude = offset.unsigned_abs();
    match metric.kind {
        // Envoy refuses to move a counter by zero or backwards.
        MetricKind::Counter if offset > 0 => metric.value.fetch_add(magnitude, Ordering::SeqCst),
        MetricKind::Counter | MetricKind::Histogram => return Ok(status::BAD_ARGUMENT),
        MetricKind::Gauge if offset > 0 => metric.value.fetch_add(magnitude, Ordering::SeqCst),
        MetricKind::Gauge => metric.value.fetch_sub(magnitude, Ordering::SeqCst),
    };
    Ok(status::OK)
}
