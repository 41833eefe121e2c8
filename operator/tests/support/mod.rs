//! The mocked API server (tower-test) and fixtures of the reconciler tests: each exchange is
//! the exact request expected (method, path, query with fieldManager, body) and its answer.

#![allow(dead_code)] // each test binary uses a part of the harness

pub mod answers;
pub mod settings;

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hrl_operator::conditions::{self, Outcome};
use hrl_operator::controller::{Context, Error, reconcile};
use hrl_operator::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use hrl_operator::metrics::Metrics;
use hrl_operator::plan::{Observed, Settings, plan};
use hrl_operator::render::parse_documents;
use hrl_operator::report;
use hrl_operator::wasm_plugin::WasmPlugin;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::watcher::Event;
use kube::{Client, Resource};
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

pub const WP_PATH: &str =
    "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/hrl-web";
pub const STATUS_PATH: &str =
    "/apis/hrl.dev/v1alpha1/namespaces/default/headerratelimits/web/status";
pub const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

pub fn hrl(spec: &str) -> HeaderRateLimit {
    let yaml = format!(
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata: {{name: web, uid: u-1, generation: 3}}\nspec: {spec}\n"
    );
    parse_documents(&yaml).expect("fixture parses").remove(0)
}

pub fn valid() -> HeaderRateLimit {
    hrl(
        "{selector: {matchLabels: {app: web}}, headers: {x-a: '1'}, rateLimit: {tokensPerSecond: 2}}",
    )
}

pub fn desired(hrl: &HeaderRateLimit) -> WasmPlugin {
    plan(hrl, &Settings::default(), &Observed::default())
        .wasm_plugin
        .expect("valid plan")
}

/// `hrl` with the status a previous successful reconcile wrote.
pub fn already_ready(hrl: HeaderRateLimit) -> HeaderRateLimit {
    with_status(hrl, &Outcome::Applied)
}

/// `hrl` with the status a previous reconcile that ended in `outcome` wrote.
pub fn with_status(mut hrl: HeaderRateLimit, outcome: &Outcome) -> HeaderRateLimit {
    let desired = conditions::desired(outcome, "hrl-web");
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    hrl.status = Some(HeaderRateLimitStatus {
        observed_generation: Some(3),
        // What the operator reports when nothing of ours existed besides what it applied.
        wasm_plugin: report::status_wasm_plugin(outcome, "hrl-web", || false),
        rate: plan(&hrl, &Settings::default(), &Observed::default()).rate,
        conditions: conditions::merge(&[], &desired, Some(3), &now),
        ..HeaderRateLimitStatus::default()
    });
    hrl
}

pub type Failures = Arc<Mutex<HashMap<(String, String), u32>>>;

pub fn context(client: Client, existing: Option<WasmPlugin>) -> Arc<Context> {
    context_sharing(client, existing, Cache::Partial, Failures::default())
}

/// Whether the WasmPlugin cache has seen its initial list (it never does while Istio's CRD is
/// missing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cache {
    Partial,
    Complete,
}

/// A context whose per-object failure counts are `failures` (shared across reconciles).
pub fn context_sharing(
    client: Client,
    existing: Option<WasmPlugin>,
    cache: Cache,
    failures: Failures,
) -> Arc<Context> {
    let wasm_plugins = match cache {
        Cache::Partial => {
            let (store, mut writer) = reflector::store();
            if let Some(wp) = existing {
                writer.apply_watcher_event(&Event::Apply(wp));
            }
            store
        }
        Cache::Complete => listed(existing).0,
    };
    let pods = reflector::store().0;
    Arc::new(context_over(
        client,
        Settings::default(),
        wasm_plugins,
        pods,
        failures,
    ))
}

/// A cache that has seen its initial list, `objects`, and the writer that keeps it.
pub fn listed<K>(objects: impl IntoIterator<Item = K>) -> (Store<K>, Writer<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    (store, writer)
}

/// The controller's context over `client` and the given caches: events are reported as
/// `hrl-operator`, instance `test`, and the wait for the WasmPlugin cache is over.
pub fn context_over(
    client: Client,
    settings: Settings,
    wasm_plugins: Store<WasmPlugin>,
    pods: Store<Pod>,
    failures: Failures,
) -> Context {
    Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "hrl-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        settings,
        wasm_plugins,
        metrics: Arc::new(Metrics::default()),
        failures,
        store_waited: Arc::new(AtomicBool::new(true)),
        pods,
        pods_wanted: Arc::default(),
        last_applies: Arc::default(),
    }
}

/// One expected request and the answer the fake API server gives.
pub struct Exchange {
    pub method: Method,
    pub path: &'static str,
    pub query: &'static [(&'static str, &'static str)],
    pub check: Box<dyn Fn(&Value) + Send>,
    pub status: StatusCode,
    pub answer: Value,
}

/// A forced apply of the WasmPlugin (our own object, or the cache cannot tell).
pub fn apply_wp(body: Value, status: StatusCode, answer: Value) -> Exchange {
    Exchange {
        query: &[("fieldManager", "hrl-operator"), ("force", "true")],
        ..apply_wp_unforced(body, status, answer)
    }
}

/// An apply without force: the complete cache does not have the WasmPlugin.
pub fn apply_wp_unforced(body: Value, status: StatusCode, answer: Value) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: WP_PATH,
        query: &[("fieldManager", "hrl-operator")],
        check: Box::new(move |got| assert_eq!(got, &body, "apply body")),
        status,
        answer,
    }
}

/// A status apply (forced: the status has one manager), its body checked by `check`.
pub fn status_apply(check: impl Fn(&Value) + Send + 'static) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: STATUS_PATH,
        query: &[("fieldManager", "hrl-operator"), ("force", "true")],
        check: Box::new(check),
        status: StatusCode::OK,
        answer: json!({"apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit", "metadata": {"name": "web"}, "spec": {}}),
    }
}

/// Status apply whose conditions are (type, status, reason) as listed, naming `wasm_plugin`
/// (`None`: no `status.wasmPlugin` at all).
pub fn apply_status(
    want: [(&'static str, &'static str, &'static str); 3],
    message: Option<&'static str>,
    wasm_plugin: Option<&'static str>,
) -> Exchange {
    status_apply(move |got| {
        assert_eq!(got["apiVersion"], "hrl.dev/v1alpha1");
        assert_eq!(got["kind"], "HeaderRateLimit");
        assert_eq!(got["status"]["observedGeneration"], 3);
        assert_eq!(
            got["status"].get("wasmPlugin"),
            wasm_plugin.map(Value::from).as_ref(),
            "status.wasmPlugin"
        );
        let conditions = got["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let seen: Vec<(String, String, String)> = conditions
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or("").into(),
                    c["status"].as_str().unwrap_or("").into(),
                    c["reason"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
            .collect();
        assert_eq!(seen, want);
        if let Some(message) = message {
            assert_eq!(conditions[0]["message"], message);
        }
        assert_eq!(
            got.as_object().map(|o| o.len()),
            Some(3),
            "only apiVersion, kind, status"
        );
    })
}

/// What the API server answers for an event the recorder creates or patches.
fn event_answer() -> Value {
    json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.1"}, "eventTime": null})
}

pub fn event(type_: &'static str, reason: &'static str) -> Exchange {
    Exchange {
        method: Method::POST,
        path: EVENTS_PATH,
        query: &[],
        check: Box::new(move |got| {
            assert_eq!(
                (got["type"].as_str(), got["reason"].as_str()),
                (Some(type_), Some(reason))
            );
            assert_eq!(got["regarding"]["name"], "web");
            assert_eq!(got["reportingController"], "hrl-operator");
        }),
        status: StatusCode::CREATED,
        answer: event_answer(),
    }
}

/// The recorder's merge patch of an event it already created (an event series: the same
/// reason and note again), the `count`th of the series.
pub fn event_repeated(reason: &'static str, count: u32) -> Exchange {
    Exchange {
        method: Method::PATCH,
        path: "/apis/events.k8s.io/v1/namespaces/default/events/web.*",
        query: &[],
        check: Box::new(move |got| {
            assert_eq!(got["reason"], reason);
            assert_eq!(got["series"]["count"], count, "event series count");
        }),
        status: StatusCode::OK,
        answer: event_answer(),
    }
}

pub async fn serve(mut handle: Handle, script: Vec<Exchange>) -> Handle {
    for (i, want) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
        let Ok(Some((request, respond))) = next else {
            panic!("request {i} ({} {}) was not made", want.method, want.path)
        };
        // A path ending in `*` is a prefix (objects whose names the client makes up).
        let path = match want.path.strip_suffix('*') {
            Some(prefix) if request.uri().path().starts_with(prefix) => want.path,
            _ => request.uri().path(),
        };
        assert_eq!(
            (request.method(), path),
            (&want.method, want.path),
            "request {i}"
        );
        let query: BTreeSet<(String, String)> = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let expected: BTreeSet<(String, String)> = want
            .query
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(query, expected, "query of request {i}");
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
        (want.check)(&body);
        respond.send_response(answers::json_response(want.status, &want.answer));
    }
    handle
}

/// Runs one reconcile against the script; then asserts that no further request was made.
pub async fn run(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    script: Vec<Exchange>,
) -> Result<Action, Error> {
    run_with(hrl, existing, Cache::Partial, script, Failures::default()).await
}

/// `run`, keeping the per-object failure counts in `failures` (to see backoff grow).
pub async fn run_sharing(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    script: Vec<Exchange>,
    failures: Failures,
) -> Result<Action, Error> {
    run_with(hrl, existing, Cache::Partial, script, failures).await
}

/// `run` with a complete cache (its initial list seen).
pub async fn run_complete(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    script: Vec<Exchange>,
) -> Result<Action, Error> {
    run_with(hrl, existing, Cache::Complete, script, Failures::default()).await
}

/// `run` with the cache in the given state.
pub async fn run_with(
    hrl: HeaderRateLimit,
    existing: Option<WasmPlugin>,
    cache: Cache,
    script: Vec<Exchange>,
    failures: Failures,
) -> Result<Action, Error> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context_sharing(Client::new(service, "default"), existing, cache, failures);
    let (result, mut handle) =
        tokio::join!(reconcile(Arc::new(hrl), ctx.clone()), serve(handle, script));
    drop(ctx);
    let extra = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
    assert!(matches!(extra, Ok(None)), "an unexpected request was made");
    result
}

pub fn wp_json(wp: &WasmPlugin) -> Value {
    serde_json::to_value(wp).expect("serialises")
}

/// Everything logged at INFO and above on this thread while `future` runs, as plain text (no
/// colour). The tests run on tokio's current-thread runtime, so that is everything the
/// reconcile logs.
///
/// One global subscriber writes into a per-thread buffer. A scoped subscriber per test
/// (`set_default`) would race with the other tests' threads over tracing's global per-callsite
/// interest cache, and now and then capture nothing.
pub async fn logged<T>(future: impl std::future::Future<Output = T>) -> (T, String) {
    use std::cell::RefCell;
    use std::sync::OnceLock;

    thread_local! {
        static CAPTURED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    struct ThisThread;
    impl std::io::Write for ThisThread {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            CAPTURED.with(|c| c.borrow_mut().extend_from_slice(bytes));
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .without_time()
            .with_writer(|| ThisThread)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
    let out = future.await;
    let bytes = CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    (out, String::from_utf8(bytes).expect("utf-8"))
}
