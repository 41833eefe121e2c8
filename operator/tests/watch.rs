//! The HeaderRateLimit watch decodes object by object, and watch health gates readiness.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use std::sync::Arc;

use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::metrics::Metrics;
use hrl_operator::watch::{WatchHealth, decode};
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

fn object(name: &str, spec: Value) -> DynamicObject {
    let value = json!({
        "apiVersion": "hrl.dev/v1alpha1",
        "kind": "HeaderRateLimit",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "7"},
        "spec": spec,
    });
    match serde_json::from_value(value) {
        Ok(object) => object,
        Err(error) => panic!("test object: {error}"),
    }
}

fn good(name: &str) -> DynamicObject {
    object(
        name,
        json!({"selector": {"matchLabels": {"app": "web"}}, "headers": {"x-a": "1"}}),
    )
}

/// A value this operator's types cannot hold (a newer CRD's enum value, a type change).
fn bad(name: &str) -> DynamicObject {
    object(
        name,
        json!({"selector": {"matchLabels": {"app": "web"}}, "rateLimit": {"tokensPerSecond": "ten"}}),
    )
}

fn name(event: &Event<HeaderRateLimit>) -> String {
    match event {
        Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => {
            format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
        }
        Event::Init => "Init".into(),
        Event::InitDone => "InitDone".into(),
    }
}

#[test]
fn a_decodable_object_passes_through_with_its_spec() {
    let (event, bad) = decode(Event::Apply(good("web")));
    assert_eq!(bad, None);
    match event {
        Some(Event::Apply(hrl)) => {
            assert_eq!(hrl.name_any(), "web");
            assert_eq!(hrl.spec.headers.get("x-a").map(String::as_str), Some("1"));
        }
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[test]
fn an_undecodable_object_in_a_list_is_left_out_and_reported_with_its_field() {
    let (event, bad) = decode(Event::InitApply(bad("broken")));
    assert!(
        event.is_none(),
        "a bad object must not restart or join the list"
    );
    let Some(bad) = bad else {
        panic!("the bad object must be reported")
    };
    assert_eq!(
        (bad.namespace.as_str(), bad.name.as_str()),
        ("shop", "broken")
    );
    assert!(
        bad.error.starts_with("spec.rateLimit.tokensPerSecond: "),
        "the error names the field: {}",
        bad.error
    );
    // The rest of the list still decodes.
    let (event, bad) = decode(Event::InitApply(good("web")));
    assert_eq!(bad, None);
    assert_eq!(event.as_ref().map(name), Some("shop/web".to_string()));
}

#[test]
fn an_update_that_no_longer_decodes_removes_the_cached_version_so_nothing_reconciles_it() {
    let (event, bad) = decode(Event::Apply(bad("web")));
    assert!(bad.is_some());
    match event {
        Some(Event::Delete(stub)) => {
            assert_eq!(name(&Event::Delete(stub)), "shop/web");
        }
        other => panic!("expected a Delete of the cached version, got {other:?}"),
    }
}

#[test]
fn a_deleted_object_leaves_the_cache_even_when_it_does_not_decode() {
    let (event, bad) = decode(Event::Delete(bad("web")));
    assert_eq!(bad, None, "a deletion is not worth a report");
    assert!(matches!(event, Some(Event::Delete(_))));
    assert!(matches!(decode(Event::Init).0, Some(Event::Init)));
    assert!(matches!(decode(Event::InitDone).0, Some(Event::InitDone)));
}

#[test]
fn readiness_waits_for_every_watch_and_drops_while_one_fails() {
    let metrics = Metrics::default();
    metrics
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(metrics.is_ready(), "a standby replica runs no watch");
    let a = metrics.watches.track();
    let b = metrics.watches.track();
    assert!(!metrics.is_ready(), "before the first list");
    a.synced();
    a.synced();
    assert!(!metrics.is_ready(), "one watch still lists");
    b.synced();
    assert!(metrics.is_ready());
    b.failed();
    b.failed();
    assert!(!metrics.is_ready(), "a failing watch");
    b.synced();
    assert!(metrics.is_ready(), "recovered");
    a.failed();
    drop(a);
    drop(b);
    assert!(
        metrics.is_ready(),
        "stopped controllers (leadership lost) leave no debt"
    );
}

#[test]
fn watch_health_counts_each_guard_once() {
    let health = Arc::new(WatchHealth::default());
    let guard = health.track();
    guard.failed();
    assert!(!health.all_synced());
    drop(guard);
    assert!(health.all_synced());
}

#[test]
fn decoding_drops_what_the_cache_never_reads() {
    let mut object = good("web");
    object.metadata.managed_fields = Some(vec![Default::default()]);
    match decode(Event::Apply(object)).0 {
        Some(Event::Apply(hrl)) => assert_eq!(hrl.metadata.managed_fields, None),
        other => panic!("expected Apply, got {other:?}"),
    }
}
