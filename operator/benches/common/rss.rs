//! The harness of the memory benches (`cache.rs`, `pods.rs`): each mode runs in a fresh child
//! process of the bench itself, so one mode's allocations do not count in the next one's
//! resident set (VmRSS).

use std::process::Command;
use std::sync::Arc;

use serde::Serialize;

/// How many objects to store: `bench` under `cargo bench` (which passes --bench), else
/// `smoke`: under `cargo test` a bench is a quick smoke run.
pub fn objects(bench: usize, smoke: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") {
        bench
    } else {
        smoke
    }
}

/// The mode this process measures, when it is a child started by [`each_mode_in_a_child`]
/// with the environment variable `var`.
pub fn child_mode(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Runs this bench again once per mode, in a child process whose `var` is the mode, with the
/// same arguments; prints what each child prints and fails when one fails.
pub fn each_mode_in_a_child(var: &str, modes: &[&str]) {
    for mode in modes {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .args(std::env::args().skip(1))
            .env(var, mode)
            .output()
            .expect("child ran");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// How much this process's resident set grows while `work` runs, in KiB.
pub fn growth_kib(work: impl FnOnce()) -> usize {
    let before = rss_kib();
    work();
    rss_kib().saturating_sub(before)
}

/// The mean size of the stored objects as JSON, in bytes (0 for none).
pub fn json_bytes_per_object<K: Serialize>(state: &[Arc<K>]) -> usize {
    let total: usize = state
        .iter()
        .map(|o| serde_json::to_vec(&**o).unwrap().len())
        .sum();
    total / state.len().max(1)
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
