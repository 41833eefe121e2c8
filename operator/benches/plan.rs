//! `plan` + pluginConfig rendering per HeaderRateLimit (the reconcile's CPU cost).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hrl_operator::plan::{Observed, Settings, plan, plugin_config};
use hrl_operator::render::parse_documents;

fn example(name: &str) -> hrl_operator::crd::HeaderRateLimit {
    let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(&path).expect("example exists");
    let mut hrl = parse_documents(&yaml).expect("example parses").remove(0);
    hrl.metadata.uid = Some("0f3c4bde-1111-4a5e-9c57-000000000001".into());
    hrl
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    for name in [
        "seed-equivalent.yaml",
        "headers-only.yaml",
        "per-api-key.yaml",
    ] {
        let hrl = example(name);
        c.bench_function(&format!("plan/{name}"), |b| {
            b.iter(|| plan(black_box(&hrl), black_box(&settings), &Observed::default()))
        });
        c.bench_function(&format!("plugin_config+to_json/{name}"), |b| {
            b.iter(|| plugin_config(black_box(&hrl)).map(|c| c.to_json()))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
