//! The reconciler for `scope: Workload` and `scope: Cluster` against a mocked API server
//! (tower-test): the share follows the pods the policy covers (appearing, becoming Ready,
//! terminating; a Gateway's pods for targetRefs), replica changes are throttled to one
//! WasmPlugin update per window while spec edits are not, and a Cluster policy names its
//! service or says that none is configured. Each step asserts the exact requests, or none.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hrl_operator::conditions::{self, Outcome};
use hrl_operator::controller::{Context, POD_CACHE_WAIT, reconcile};
use hrl_operator::crd::{HeaderRateLimit, HeaderRateLimitStatus};
use hrl_operator::plan::{Observed, Settings, plan};
use hrl_operator::scope::{GATEWAY_NAME_LABEL, strip_pod};
use hrl_operator::throttle::SCALE_WINDOW;
use hrl_operator::wasm_plugin::WasmPlugin;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use support::settings::with_rate_limit_service;
use support::{
    Exchange, Failures, Handle, apply_wp, apply_wp_unforced, context_over, event, event_repeated,
    hrl, listed, serve, status_apply, wp_json,
};

const WORKLOAD: &str =
    "{selector: {matchLabels: {app: web}}, rateLimit: {tokensPerSecond: 100, scope: Workload}}";

/// A pod in `namespace` as the cache keeps it (`strip_pod`), from a full one.
fn pod(name: &str, namespace: &str, labels: &[(&str, &str)], ready: bool) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some(namespace.into());
    pod.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    );
    pod.metadata.annotations = Some([("sidecar.istio.io/status".into(), "{}".into())].into());
    pod.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..PodCondition::default()
        }]),
        phase: Some("Running".into()),
        ..PodStatus::default()
    });
    strip_pod(&mut pod);
    pod
}

fn web(name: &str, ready: bool) -> Pod {
    pod(name, "default", &[("app", "web"), ("version", "v1")], ready)
}

fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    pod
}

/// A controller context over a mocked API server whose caches the test writes.
struct Harness {
    ctx: Arc<Context>,
    handle: Option<Handle>,
    pods: Writer<Pod>,
    wasm_plugins: Writer<WasmPlugin>,
    settings: Settings,
    /// Events the recorder has published (the first creates, repeats patch the series).
    events: u32,
    /// What the next reconcile's script applies; cached afterwards, as the watch would.
    applied: Option<WasmPlugin>,
}

impl Harness {
    fn new(settings: Settings, pods: &[Pod]) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (wasm_plugin_store, wasm_plugins) = listed([]);
        let (pod_store, pods) = listed(pods.iter().cloned());
        let ctx = context_over(
            client,
            settings.clone(),
            wasm_plugin_store,
            pod_store,
            Failures::default(),
        );
        Harness {
            ctx: Arc::new(ctx),
            handle: Some(handle),
            pods,
            wasm_plugins,
            settings,
            applied: None,
            events: 0,
        }
    }

    /// Reconciles `hrl` against `script`, then asserts no further request comes.
    async fn reconcile(&mut self, hrl: &HeaderRateLimit, script: Vec<Exchange>) -> Action {
        let handle = self.handle.take().expect("handle");
        // A request beyond the script would wait for an answer forever: bound the whole step.
        let step = async {
            tokio::join!(
                reconcile(Arc::new(hrl.clone()), self.ctx.clone()),
                serve(handle, script)
            )
        };
        let (result, mut handle) = tokio::time::timeout(Duration::from_secs(10), step)
            .await
            .expect("the reconcile made a request the script does not have");
        let extra = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
        assert!(extra.is_err(), "an unexpected request was made");
        self.handle = Some(handle);
        if let Some(wp) = self.applied.take() {
            self.wasm_plugins.apply_watcher_event(&Event::Apply(wp));
        }
        result.expect("reconciled")
    }

    fn pod(&mut self, pod: Pod) {
        self.pods.apply_watcher_event(&Event::Apply(pod));
    }

    /// The WasmPlugin `hrl` plans at `replicas`.
    fn desired(&self, hrl: &HeaderRateLimit, replicas: u32) -> WasmPlugin {
        let observed = Observed {
            replicas: Some(replicas),
        };
        plan(hrl, &self.settings, &observed)
            .wasm_plugin
            .expect("valid")
    }

    /// The exchanges of one applied replica count: the WasmPlugin, the status with
    /// `replicas` and `share`, an event. The cache holds it after the reconcile.
    fn applies(
        &mut self,
        hrl: &HeaderRateLimit,
        replicas: u32,
        share: &'static str,
    ) -> Vec<Exchange> {
        let wp = self.desired(hrl, replicas);
        // Our own cached WasmPlugin is forced back; a first one is created without force.
        let apply = if self.wasm_plugins.as_reader().state().is_empty() {
            apply_wp_unforced
        } else {
            apply_wp
        };
        self.applied = Some(wp.clone());
        let body = wp_json(&wp);
        vec![
            apply(body.clone(), StatusCode::OK, body),
            status(move |status| {
                assert_eq!(status["replicas"], replicas, "status.replicas");
                assert_eq!(status["share"], share, "status.share");
                assert_eq!(status["rate"], "100/s", "status.rate is the whole rate");
            }),
            self.applied_event(),
        ]
    }

    /// The event of an apply: created the first time, then a series.
    fn applied_event(&mut self) -> Exchange {
        self.events += 1;
        match self.events {
            1 => event("Normal", "WasmPluginApplied"),
            n => event_repeated("WasmPluginApplied", n),
        }
    }

    /// Pretends the last apply of `hrl` was `ago` earlier than recorded.
    fn age_last_apply(&self, ago: Duration) {
        let mut applies = self.ctx.last_applies.lock().unwrap();
        for last in applies.values_mut() {
            last.at -= ago;
        }
    }
}

/// A status apply, checked by `check` on its `status`.
fn status(check: impl Fn(&Value) + Send + 'static) -> Exchange {
    status_apply(move |got| check(&got["status"]))
}

/// A harness over two Ready `web` pods, and the Workload policy whose WasmPlugin it has
/// applied for them.
async fn applied_for_two_pods() -> (Harness, HeaderRateLimit) {
    let mut h = Harness::new(
        Settings::default(),
        &[web("web-1", true), web("web-2", true)],
    );
    let policy = hrl(WORKLOAD);
    let script = h.applies(&policy, 2, "50/s");
    h.reconcile(&policy, script).await;
    (h, policy)
}

fn share_of(wp: &WasmPlugin) -> Value {
    wp.spec.plugin_config.as_ref().unwrap()["rateLimit"].clone()
}

#[tokio::test]
async fn pods_appearing_becoming_ready_and_terminating_update_the_share() {
    let other_app = pod("api-1", "default", &[("app", "api")], true);
    let other_namespace = pod("web-x", "shop", &[("app", "web")], true);
    let mut h = Harness::new(
        Settings::default(),
        &[
            web("web-1", true),
            web("web-2", true),
            web("web-3", false),
            other_app,
            other_namespace,
        ],
    );
    let policy = hrl(WORKLOAD);
    let script = h.applies(&policy, 2, "50/s");
    assert_eq!(share_of(&h.desired(&policy, 2))["tokensPerSecond"], 50);
    assert_eq!(h.reconcile(&policy, script).await, Action::await_change());

    h.age_last_apply(SCALE_WINDOW);
    h.pod(web("web-3", true));
    let script = h.applies(&policy, 3, "100/3s");
    h.reconcile(&policy, script).await;

    h.age_last_apply(SCALE_WINDOW);
    h.pod(web("web-4", true));
    h.pod(terminating(web("web-1", true)));
    h.pod(web("web-2", false));
    let script = h.applies(&policy, 2, "50/s");
    h.reconcile(&policy, script).await;

    // Unchanged count, unchanged WasmPlugin, the status already written: no request at all.
    h.age_last_apply(SCALE_WINDOW);
    h.pod(web("web-5", false));
    let mut seen = policy.clone();
    let conditions = conditions::desired(&Outcome::Applied, "hrl-web");
    seen.status = Some(HeaderRateLimitStatus {
        observed_generation: Some(3),
        wasm_plugin: Some("hrl-web".into()),
        rate: Some("100/s".into()),
        replicas: Some(2),
        share: Some("50/s".into()),
        conditions: conditions::merge(&[], &conditions, Some(3), &Time(Timestamp::UNIX_EPOCH)),
    });
    assert_eq!(h.reconcile(&seen, vec![]).await, Action::await_change());
}

#[tokio::test]
async fn a_burst_of_pod_changes_within_the_window_makes_one_update() {
    let (mut h, policy) = applied_for_two_pods().await;
    for name in ["web-3", "web-4", "web-5"] {
        h.pod(web(name, true));
        let action = h.reconcile(&policy, vec![]).await;
        let waits = [SCALE_WINDOW - Duration::from_secs(1), SCALE_WINDOW];
        let Some(wait) = requeue_after(&action) else {
            panic!("{name}: not requeued: {action:?}")
        };
        assert!(wait > waits[0] && wait <= waits[1], "{name}: {wait:?}");
    }
    h.age_last_apply(SCALE_WINDOW);
    let script = h.applies(&policy, 5, "20/s");
    assert_eq!(h.reconcile(&policy, script).await, Action::await_change());
}

#[tokio::test]
async fn a_spec_edit_within_the_window_is_applied_at_once() {
    let (mut h, policy) = applied_for_two_pods().await;
    h.pod(web("web-3", true));
    let mut edited = policy.clone();
    edited.metadata.generation = Some(4);
    edited.spec.rate_limit.as_mut().unwrap().tokens_per_second = Some(300);
    let wp = h.desired(&edited, 3);
    assert_eq!(share_of(&wp)["tokensPerSecond"], 100);
    let body = wp_json(&wp);
    let script = vec![
        apply_wp(body.clone(), StatusCode::OK, body),
        status(|status| {
            assert_eq!(status["observedGeneration"], 4);
            assert_eq!(
                (status["replicas"].clone(), status["share"].clone()),
                (json!(3), json!("100/s"))
            );
        }),
        h.applied_event(),
    ];
    assert_eq!(h.reconcile(&edited, script).await, Action::await_change());
}

#[tokio::test]
async fn a_gateways_pods_are_counted_for_target_refs() {
    let gateway = |name: &str, gw: &str, ready: bool| {
        pod(name, "default", &[(GATEWAY_NAME_LABEL, gw)], ready)
    };
    let mut h = Harness::new(
        Settings::default(),
        &[
            gateway("public-1", "public", true),
            gateway("public-2", "public", true),
            gateway("public-3", "public", true),
            gateway("public-4", "public", false),
            gateway("internal-1", "internal", true),
        ],
    );
    let policy = hrl(
        "{targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}], rateLimit: {tokensPerSecond: 100, scope: Workload}}",
    );
    let script = h.applies(&policy, 3, "100/3s");
    h.reconcile(&policy, script).await;
}

#[tokio::test]
async fn a_workload_policy_is_not_applied_before_its_pods_are_counted() {
    let mut h = Harness::new(Settings::default(), &[]);
    let (unsynced, _writer) = reflector::store::<Pod>();
    Arc::get_mut(&mut h.ctx).expect("not shared yet").pods = unsynced;
    assert!(
        h.ctx.pods_wanted.notified().now_or_never().is_none(),
        "no pod watch before a Workload policy"
    );
    let action = h.reconcile(&hrl(WORKLOAD), vec![]).await;
    assert_eq!(action, Action::requeue(POD_CACHE_WAIT));
    assert!(
        h.ctx.pods_wanted.notified().now_or_never().is_some(),
        "the policy starts the pod watch"
    );
}

#[tokio::test]
async fn a_cluster_policy_names_its_service_or_says_none_is_configured() {
    let cluster = hrl(
        "{selector: {matchLabels: {app: web}}, rateLimit: {tokens: 100, per: 1m, scope: Cluster}}",
    );
    let mut h = Harness::new(Settings::default(), &[]);
    let script = vec![
        status(|status| {
            let accepted = &status["conditions"][0];
            assert_eq!(
                (
                    accepted["type"].as_str(),
                    accepted["status"].as_str(),
                    accepted["reason"].as_str()
                ),
                (
                    Some("Accepted"),
                    Some("False"),
                    Some("RateLimitServiceNotConfigured")
                )
            );
            let message = accepted["message"].as_str().unwrap_or_default();
            assert!(message.contains("rateLimitService.address"), "{message}");
            assert_eq!(status.get("wasmPlugin"), None);
        }),
        event("Warning", "RateLimitServiceNotConfigured"),
    ];
    assert_eq!(h.reconcile(&cluster, script).await, Action::await_change());
    assert!(
        h.ctx.pods_wanted.notified().now_or_never().is_none(),
        "a Cluster policy counts no pods: no pod watch"
    );

    let settings = with_rate_limit_service();
    let mut h = Harness::new(settings.clone(), &[]);
    let wp = plan(&cluster, &settings, &Observed::default())
        .wasm_plugin
        .unwrap();
    let body = wp_json(&wp);
    let script = vec![
        apply_wp_unforced(body.clone(), StatusCode::OK, body),
        status(|status| {
            let programmed = &status["conditions"][1];
            assert_eq!(programmed["status"], "True");
            assert_eq!(
                programmed["message"],
                "WasmPlugin hrl-web is applied and matches the spec; the rate limit service \
                 ratelimit.hrl-system.svc.cluster.local:8081 (domain hrl) keeps the count"
            );
            assert_eq!((status.get("replicas"), status.get("share")), (None, None));
        }),
        event("Normal", "WasmPluginApplied"),
    ];
    h.reconcile(&cluster, script).await;
}

/// The delay of a requeue. `Action` has no accessor; its Debug form is
/// `Action { requeue_after: Some(4.99987s) }`.
fn requeue_after(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    let seconds = match inner.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok()? / 1000.0,
        None => inner.strip_suffix('s')?.parse::<f64>().ok()?,
    };
    Some(Duration::from_secs_f64(seconds))
}
