//! What all worker VMs of one host share: shared data (one store per VM id), metrics by name,
//! captured logs and the clock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::abi::LogLevel;
use crate::clock::Clock;
use crate::grpc::Upstreams;

use rustc_hash::FxHashMap;

/// At most this many log lines are kept; older ones are dropped (long benchmarks log too).
pub const MAX_CAPTURED_LOGS: usize = 100_000;

/// One line the module logged through `proxy_log` (or wrote to stdout/stderr through WASI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Index of the worker VM that logged it.
    pub worker: usize,
    /// Its level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[worker {}] {}: {}",
            self.worker, self.level, self.message
        )
    }
}

/// The kind of a metric, as `proxy_define_metric` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down, or is set.
    Gauge,
    /// Records values; the host keeps the count of recorded values.
    Histogram,
}

/// A metric shared by name by all workers (Envoy keeps stats by name in one store).
#[derive(Debug)]
pub(crate) struct Metric {
    pub kind: MetricKind,
    pub value: AtomicU64,
}

/// Shared data of one VM id: key -> (value, cas), with Envoy's cas numbering. Keys are bytes,
/// as Envoy's are, hashed with FxHash: the module reads and writes them on every request.
#[derive(Debug, Clone)]
pub(crate) struct SharedStore {
    entries: FxHashMap<Box<[u8]>, (Vec<u8>, u32)>,
    next_cas: u32,
}

/// Result of [`SharedStore::set`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SetOutcome {
    Stored,
    CasMismatch,
}

impl SharedStore {
    fn new() -> SharedStore {
        SharedStore {
            entries: FxHashMap::default(),
            next_cas: 1,
        }
    }

    /// The value and cas of `key` (Envoy returns NotFound for absent keys).
    pub fn get(&self, key: &[u8]) -> Option<(&[u8], u32)> {
        self.entries
            .get(key)
            .map(|(value, cas)| (value.as_slice(), *cas))
    }

    /// Envoy's `SharedData::set`: a non-zero cas must match an existing entry's; an absent key
    /// is created whatever the cas; every write gets a fresh cas (never 0).
    pub fn set(&mut self, key: &[u8], value: &[u8], cas: u32) -> SetOutcome {
        let fresh = self.next_cas;
        match self.entries.get_mut(key) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return SetOutcome::CasMismatch;
                }
                entry.0.clear();
                entry.0.extend_from_slice(value);
                entry.1 = fresh;
            }
            None => {
                self.entries.insert(key.into(), (value.to_vec(), fresh));
            }
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        SetOutcome::Stored
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// State shared by all workers of a host. Cheap to clone through `Arc`.
#[derive(Debug)]
pub struct Shared {
    vm_id: String,
    clock: Clock,
    store: Mutex<SharedStore>,
    metrics: Mutex<HashMap<String, Arc<Metric>>>,
    logs: Mutex<VecDeque<LogLine>>,
    log_level: LogLevel,
    echo_logs: bool,
    grpc: Upstreams,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        vm_id: String,
        clock: Clock,
        log_level: LogLevel,
        echo_logs: bool,
        grpc_clusters: HashMap<String, String>,
    ) -> Shared {
        Shared {
            vm_id,
            clock,
            store: Mutex::new(SharedStore::new()),
            metrics: Mutex::new(HashMap::new()),
            logs: Mutex::new(VecDeque::new()),
            log_level,
            echo_logs,
            grpc: Upstreams::new(grpc_clusters),
        }
    }

    /// The gRPC clusters and the runtime of `proxy_grpc_call`.
    pub(crate) fn grpc(&self) -> &Upstreams {
        &self.grpc
    }

    /// The VM id whose shared data this is (Istio leaves it empty, so all plugins of one
    /// module in a proxy share it).
    pub fn vm_id(&self) -> &str {
        &self.vm_id
    }

    /// The clock the modules see.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Replaces the shared data with `data` (a reconfigured host keeps its VM id's data).
    pub(crate) fn restore(&self, data: SharedStore) {
        *self.store() = data;
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, SharedStore> {
        lock(&self.store)
    }

    /// Number of shared-data entries.
    pub fn shared_data_len(&self) -> usize {
        self.store().len()
    }

    /// The value and cas of one shared-data key.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.store()
            .get(key.as_bytes())
            .map(|(value, cas)| (value.to_vec(), cas))
    }

    /// All shared-data keys, sorted.
    pub fn shared_data_keys(&self) -> Vec<String> {
        let store = self.store();
        let mut keys: Vec<String> = store
            .entries
            .keys()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect();
        keys.sort();
        keys
    }

    /// The lowest level that is recorded; lower lines are dropped, as Envoy drops them.
    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    pub(crate) fn log(&self, worker: usize, level: LogLevel, message: String) {
        if level < self.log_level {
            return;
        }
        let line = LogLine {
            worker,
            level,
            message,
        };
        if self.echo_logs {
            eprintln!("{line}");
        }
        let mut logs = lock(&self.logs);
        if logs.len() >= MAX_CAPTURED_LOGS {
            logs.pop_front();
        }
        logs.push_back(line);
    }

    /// Captured log lines, oldest first.
    pub fn logs(&self) -> Vec<LogLine> {
        lock(&self.logs).iter().cloned().collect()
    }

    pub(crate) fn log_count(&self) -> usize {
        lock(&self.logs).len()
    }

    pub(crate) fn logs_since(&self, start: usize, worker: usize) -> Vec<String> {
        lock(&self.logs)
            .iter()
            .skip(start)
            .filter(|line| line.worker == worker)
            .map(|line| format!("{}: {}", line.level, line.message))
            .collect()
    }

    /// Forgets the captured log lines.
    pub fn clear_logs(&self) {
        lock(&self.logs).clear();
    }

    pub(crate) fn define_metric(&self, kind: MetricKind, name: &str) -> Arc<Metric> {
        let mut metrics = lock(&self.metrics);
        Arc::clone(metrics.entry(name.to_string()).or_insert_with(|| {
            Arc::new(Metric {
                kind,
                value: AtomicU64::new(0),
            })
        }))
    }

    /// The value of a metric by the name the module defined it with (for a histogram, the
    /// number of recorded values).
    pub fn metric(&self, name: &str) -> Option<u64> {
        lock(&self.metrics)
            .get(name)
            .map(|metric| metric.value.load(Ordering::SeqCst))
    }

    /// All metrics, sorted by name.
    pub fn metrics(&self) -> Vec<(String, MetricKind, u64)> {
        let mut all: Vec<_> = lock(&self.metrics)
            .iter()
            .map(|(name, m)| (name.clone(), m.kind, m.value.load(Ordering::SeqCst)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_cas_follows_envoy() {
        let mut store = SharedStore::new();
        assert_eq!(
            store.set(b"k", b"a", 7),
            SetOutcome::Stored,
            "absent keys ignore the cas"
        );
        let (_, cas) = store
            .get(b"k")
            .map(|(v, c)| (v.to_vec(), c))
            .unwrap_or_default();
        assert_eq!(cas, 1);
        assert_eq!(store.set(b"k", b"b", cas + 5), SetOutcome::CasMismatch);
        assert_eq!(store.get(b"k"), Some((&b"a"[..], 1)));
        assert_eq!(store.set(b"k", b"c", cas), SetOutcome::Stored);
        assert_eq!(store.get(b"k"), Some((&b"c"[..], 2)));
        assert_eq!(
            store.set(b"k", b"d", 0),
            SetOutcome::Stored,
            "cas 0 writes unconditionally"
        );
        assert_eq!(store.get(b"k"), Some((&b"d"[..], 3)));
    }
}
