//! PURE: `scope: Workload` — which pods a policy covers, how many of them serve, and each
//! proxy's share of the rate. The pod cache keeps only what this module reads ([`strip_pod`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use hrl_plugin_config::{MAX_SPLIT, MAX_WIRE_PERIOD_SECONDS};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::crd::{HeaderRateLimit, HeaderRateLimitSpec, Scope};

/// The label on the pods Istio deploys for a Gateway API Gateway (the pod template of
/// `manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml`, istio 86c9f01).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// One proxy's share of a rate split across `replicas` proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Tokens per `period_seconds` for one proxy.
    pub tokens: u32,
    /// The period of `tokens`.
    pub period_seconds: u32,
    /// One proxy's burst: `ceil(burst / replicas)`, at least 1.
    pub burst: u32,
    /// The proxies the rate was split across (at least 1, at most `MAX_SPLIT`).
    pub replicas: u32,
}

/// `tokens` per `period_seconds` (and `burst`) split across `replicas` proxies, exactly:
/// `tokens / replicas` per period when that divides, else `tokens / g` per
/// `period * replicas / g` with `g = gcd(tokens, replicas)`. No replicas counts as one (a
/// policy whose pods are all gone keeps the whole rate, for the next pod to start with).
pub fn split(tokens: u32, period_seconds: u32, burst: u32, replicas: u32) -> Share {
    let replicas = replicas.clamp(1, MAX_SPLIT);
    let g = gcd(tokens, replicas).max(1);
    let (tokens, stretch) = (tokens / g, replicas / g);
    // period <= 86,400 and stretch <= MAX_SPLIT: within MAX_WIRE_PERIOD_SECONDS.
    let period_seconds = period_seconds
        .saturating_mul(stretch)
        .min(MAX_WIRE_PERIOD_SECONDS);
    Share {
        tokens: tokens.max(1),
        period_seconds,
        burst: burst.div_ceil(replicas).max(1),
        replicas,
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Whether `pod` (in the policy's namespace) runs a proxy the policy applies to: the
/// selector's labels all match, or for `targetRefs` it belongs to one of the Gateways.
pub fn covers(spec: &HeaderRateLimitSpec, namespace: &str, pod: &Pod) -> bool {
    if pod.namespace().as_deref() != Some(namespace) {
        return false;
    }
    let labels = pod.labels();
    if let Some(selector) = &spec.selector {
        return !selector.match_labels.is_empty()
            && selector
                .match_labels
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value));
    }
    match (&spec.target_refs, labels.get(GATEWAY_NAME_LABEL)) {
        (Some(refs), Some(gateway)) => refs.iter().any(|r| &r.name == gateway),
        _ => false,
    }
}

/// Ready and not terminating: the pod's proxy takes traffic from the load balancer.
pub fn serves(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|conditions| {
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// The serving pods among `pods` that the policy covers.
pub fn replicas<'a>(
    spec: &HeaderRateLimitSpec,
    namespace: &str,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> u32 {
    let count = pods
        .into_iter()
        .filter(|pod| covers(spec, namespace, pod) && serves(pod))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// What the pod cache keeps of a pod: name, namespace, labels, deletion timestamp and the
/// Ready condition's status. Spec, the rest of status, annotations and managed fields (most of
/// a pod's size) go.
pub fn strip_pod(pod: &mut Pod) {
    pod.spec = None;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| PodCondition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            ..PodCondition::default()
        });
    pod.status = ready.map(|ready| PodStatus {
        conditions: Some(vec![ready]),
        ..PodStatus::default()
    });
    let meta = &mut pod.metadata;
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    // Labels stay whole: they are what selectors match.
    if meta.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.labels = None;
    }
}

/// Whether a pod's new version can change a count: its labels or whether it serves differ from
/// the cached version's (or there is none). Most pod updates (container statuses, probe
/// times) change neither, and need no store write and no reconcile.
pub fn changes_count(cached: Option<&Pod>, pod: &Pod) -> bool {
    cached.is_none_or(|cached| cached.labels() != pod.labels() || serves(cached) != serves(pod))
}

/// The Workload-scope policies among `policies` that cover `pod`: the ones to reconcile when
/// it appears, changes or goes.
pub fn policies_covering(
    pod: &Pod,
    policies: &[Arc<HeaderRateLimit>],
) -> Vec<ObjectRef<HeaderRateLimit>> {
    let namespace = pod.namespace().unwrap_or_default();
    policies
        .iter()
        .filter(|hrl| is_workload(&hrl.spec) && hrl.namespace().as_deref() == Some(&namespace))
        .filter(|hrl| covers(&hrl.spec, &namespace, pod))
        .map(|hrl| ObjectRef::from_obj(&**hrl))
        .collect()
}

/// Whether the policy's rate is split across its pods.
pub fn is_workload(spec: &HeaderRateLimitSpec) -> bool {
    spec.rate_limit
        .as_ref()
        .is_some_and(|r| r.scope == Some(Scope::Workload))
}

#[cfg(test)]
#[path = "scope_tests.rs"]
mod tests;
