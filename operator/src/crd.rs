//! The `HeaderRateLimit` custom resource (`hrl.dev/v1alpha1`).
//!
//! The Rust types are the single source of the CRD: field doc comments become `kubectl explain`
//! text, and the static rules of `hrl-plugin-config` are repeated in the schema (patterns,
//! bounds, CEL) so the API server rejects bad objects with a message naming the field.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod matching;
mod schema;
pub use matching::{
    HOST_PATTERN, HeaderMatchSpec, METHOD_PATTERN, MatchSpec, PATH_PATTERN, PathMatchSpec,
};
pub use schema::{KNOWN_STRING_FORMATS, is_known_format, kubernetes_formats};
use schema::{header_list_schema, header_map_schema, match_labels_schema};

/// API group of the HeaderRateLimit resource.
pub const GROUP: &str = "hrl.dev";
/// Longest header name accepted by the schema, in bytes (bounds the cost of CEL rules).
pub const MAX_HEADER_NAME_BYTES: usize = 256;
/// Pattern of a lowercase RFC 9110 header name (token characters only).
pub const HEADER_NAME_PATTERN: &str = r"^[a-z0-9!#$%&'*+.^_`|~-]+$";
/// Pattern of a header value: no control characters except horizontal tab.
pub const HEADER_VALUE_PATTERN: &str = r"^[^\x00-\x08\x0a-\x1f\x7f]*$";

/// Response headers and token-bucket rate limits for the Istio workloads it selects.
///
/// The operator turns each HeaderRateLimit into one Istio WasmPlugin that runs the hrl filter
/// in the selected sidecars or gateways.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "hrl.dev",
    version = "v1alpha1",
    kind = "HeaderRateLimit",
    namespaced,
    shortname = "hrl",
    category = "hrl",
    derive = "PartialEq",
    doc = "Response headers and token-bucket rate limits for the Istio workloads it selects; the operator turns each into one Istio WasmPlugin.",
    status = "HeaderRateLimitStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Rate","type":"string","description":"Sustained rate: tokens per period, e.g. 2/s or 5/1m","jsonPath":".status.rate"}"#,
    printcolumn = r#"{"name":"Burst","type":"integer","description":"Bucket capacity (defaults to the rate)","jsonPath":".spec.rateLimit.burst"}"#,
    printcolumn = r#"{"name":"Scope","type":"string","description":"Where the limit is kept: Proxy, Workload or Cluster","jsonPath":".spec.rateLimit.scope"}"#,
    printcolumn = r#"{"name":"WasmPlugin","type":"string","jsonPath":".status.wasmPlugin"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","priority":1,"description":"Serving pods a Workload-scope rate is split across","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Share","type":"string","priority":1,"description":"Each proxy's share of a Workload-scope rate","jsonPath":".status.share"}"#,
    printcolumn = r#"{"name":"Key","type":"string","priority":1,"jsonPath":".spec.rateLimit.key.type"}"#,
    printcolumn = r#"{"name":"Enforce","type":"boolean","priority":1,"jsonPath":".spec.rateLimit.enforce"}"#,
    printcolumn = r#"{"name":"FailurePolicy","type":"string","priority":1,"jsonPath":".spec.failurePolicy"}"#
)]
#[serde(rename_all = "camelCase")]
// Every nested type is inlined into this schema, so one transform covers the whole spec.
#[schemars(transform = kubernetes_formats)]
#[x_kube(validation = Rule::new("has(self.selector) != has(self.targetRefs)").message("exactly one of selector or targetRefs must be set"))]
#[x_kube(validation = Rule::new("!has(self.removeHeaders) || !has(self.headers) || self.removeHeaders.all(h, !(h in self.headers))").message("a header is either set (headers) or removed (removeHeaders), not both"))]
pub struct HeaderRateLimitSpec {
    /// Pods (sidecars) in this namespace that get the filter, by label. Same meaning as an
    /// Istio WasmPlugin selector. Set exactly one of selector or targetRefs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,

    /// Gateway API Gateways in this namespace that get the filter (their Istio gateway
    /// deployments). Set exactly one of selector or targetRefs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Option<Vec<TargetRef>>,

    /// Response headers set on every response (of the requests match selects), as name:
    /// value. Names are lowercase RFC 9110 tokens; an existing header of the same name is
    /// replaced. At most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "header_map_schema")]
    pub headers: BTreeMap<String, String>,

    /// Response header names removed from every response (of the requests match selects),
    /// for example x-powered-by. At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "header_list_schema")]
    pub remove_headers: Vec<String>,

    /// A rate limit: requests over the rate get statusCode (429) with rate-limit headers. Kept
    /// by each proxy (scope Proxy, default), split across the serving pods (Workload) or kept
    /// by a rate limit service for all of them (Cluster). Omit it for headers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,

    /// Which requests the policy applies to (its headers, removals and limit): every field
    /// that is set must match (one of methods, one of paths, one of hosts, all of headers).
    /// Other requests pass untouched: no headers added or removed, no token taken. Omitted or
    /// empty: every request. No regular expressions. Needs a filter of contract version 2.
    /// Several limits on one workload (10/s and 10000/day, or /login apart from the rest) are
    /// several HeaderRateLimits.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<MatchSpec>,

    /// What proxies do when the filter module cannot be fetched or loaded, or its VM fails:
    /// FailClose (default, requests fail), FailOpen (requests pass without the filter) or
    /// FailReload (Istio 1.27+: like FailClose when fetching fails; a VM that fails at run time
    /// is replaced by a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,

    /// Where in the proxy's filter chain the filter runs (Istio WasmPlugin phase): AUTHN,
    /// AUTHZ, STATS or UNSPECIFIED_PHASE (default: Istio's default, near the end of the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// Order among WasmPlugins in the same phase (Istio WasmPlugin priority; higher runs first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// Pods selected by labels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a pod must all have. Must not be empty: an empty selector would cover every
    /// workload in the namespace.
    #[schemars(schema_with = "match_labels_schema")]
    pub match_labels: BTreeMap<String, String>,

    /// What the selected pods are. Sidecar (default): application pods with an Istio sidecar;
    /// the filter runs on the requests they receive, not on the calls they make. Gateway: Istio
    /// gateway deployments selected by label (for example istio: ingressgateway); the filter
    /// runs on the gateway's listeners. For Gateway API Gateways prefer targetRefs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyKind>,
}

// Kind of selected proxy. (a plain comment: a doc comment here would replace the field's `kubectl explain` text)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ProxyKind {
    /// Application pods with a sidecar: inbound traffic only.
    #[default]
    Sidecar,
    /// Istio gateway pods: their listeners.
    Gateway,
}

/// A Gateway API resource the filter attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API group of the target, gateway.networking.k8s.io.
    #[schemars(regex(pattern = r"^gateway\.networking\.k8s\.io$"))]
    pub group: String,
    /// Kind of the target: Gateway.
    #[schemars(regex(pattern = r"^Gateway$"))]
    pub kind: String,
    /// Name of the Gateway, in the HeaderRateLimit's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The rate limit: a token bucket per proxy, or fixed windows counted by a rate limit service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.tokensPerSecond) != (has(self.tokens) || has(self.per))").message("set either tokensPerSecond, or tokens and per"))]
#[x_kube(validation = Rule::new("has(self.tokens) == has(self.per)").message("tokens and per go together"))]
#[x_kube(validation = Rule::new("!has(self.per) || (duration(self.per) >= duration('1s') && duration(self.per) <= duration('24h'))").message("per must be between 1s and 24h"))]
#[x_kube(validation = Rule::new("!has(self.tokens) || !has(self.per) || self.tokens <= 1000000 * duration(self.per).getSeconds()").message("tokens per per must be at most 1000000 per second"))]
#[x_kube(validation = Rule::new(CLUSTER_PERIOD_RULE).message(CLUSTER_PERIOD_MESSAGE))]
#[x_kube(validation = Rule::new("!has(self.burst) || !has(self.scope) || self.scope != 'Cluster'").message(CLUSTER_BURST_MESSAGE))]
#[x_kube(validation = Rule::new("!has(self.failureMode) || (has(self.scope) && self.scope == 'Cluster')").message(FAILURE_MODE_MESSAGE))]
pub struct RateLimitSpec {
    /// Tokens added to the bucket per second (the sustained request rate), 1 to 1000000. Set
    /// either this or tokens and per.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub tokens_per_second: Option<u32>,

    /// Tokens added to the bucket per period `per` (for example 5 per 1m, 1000 per 1h), 1 to
    /// 10000000. The bucket refills continuously at tokens/per. Set with per, instead of
    /// tokensPerSecond.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub tokens: Option<u32>,

    /// The period of tokens, a duration of whole seconds such as 30s, 1m, 1h or 1h30m, from 1s
    /// to 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 16),
        regex(pattern = r"^([0-9]{1,5}(h|m|s)){1,3}$")
    )]
    pub per: Option<String>,

    /// Bucket capacity: how many requests may pass at once after a quiet period. At least 1;
    /// defaults to tokensPerSecond (or tokens). With scope Workload each proxy gets its share,
    /// rounded up. Not with scope Cluster (fixed windows have no burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub burst: Option<u32>,

    /// What requests share a bucket: one bucket for all (None, default), one per value of a
    /// request header (Header), or one per client address (ClientAddress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,

    /// Keys active at once that each get a bucket of their own, per proxy (default 10000);
    /// room is kept for twice as many, and keys that find no room share one overflow bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_keys: Option<u32>,

    /// Status code of a limited response, 400 to 599 (default 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 400, max = 599))]
    pub status_code: Option<u16>,

    /// Body of a limited response (default "rate limited\n"). At most 16384 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub body: Option<String>,

    /// Extra headers on limited responses, as name: value. At most 64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "header_map_schema")]
    pub response_headers: BTreeMap<String, String>,

    /// Rate-limit headers on responses: IETF (RateLimit and RateLimit-Policy, default),
    /// Draft03 (X-RateLimit-Limit/Remaining/Reset) or None. Limited responses always get
    /// Retry-After.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_headers: Option<RateLimitHeadersSpec>,

    /// Reject requests over the limit (true, default). false is a dry run: nothing is rejected,
    /// but rate-limit headers are sent and would-be-limited requests are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,

    /// Where the limit is kept. Proxy (default): each proxy has its own bucket, so N pods admit
    /// N times the rate. Workload: the rate is split across the Ready pods the policy covers
    /// (each proxy gets rate/N and burst/N, rounded up; the operator follows scaling); exact
    /// when the load balancer spreads requests evenly. Cluster: every proxy asks the rate limit
    /// service of the installation (Envoy RLS), one count for all pods in fixed windows of a
    /// second, minute, hour or day (the rate must be per 1s, 1m, 1h or 24h; no burst); each
    /// request waits for the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Proxy"))]
    pub scope: Option<Scope>,

    /// With scope Cluster only: what requests get when the rate limit service fails or does not
    /// answer in time. Allow (default): they pass. Deny: they get the limited response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureModeSpec>,
}

/// CEL: with scope Cluster the period is one an RLS window has (equivalent spellings such as
/// `60s` for `1m` count, as the operator compares seconds too).
const CLUSTER_PERIOD_RULE: &str = "!has(self.scope) || self.scope != 'Cluster' || !has(self.per) \
|| duration(self.per).getSeconds() in [1, 60, 3600, 86400]";
/// Message of [`CLUSTER_PERIOD_RULE`].
pub const CLUSTER_PERIOD_MESSAGE: &str = "with scope Cluster the rate must be per 1s, 1m, 1h or \
24h (tokensPerSecond, or tokens with per 1s, 1m, 1h or 24h): a rate limit service counts in fixed \
windows of a second, minute, hour or day";
/// Message of the rule that refuses burst with scope Cluster.
pub const CLUSTER_BURST_MESSAGE: &str = "burst does not apply with scope Cluster: a rate limit \
service counts fixed windows, not a token bucket; remove burst";
/// Message of the rule that refuses failureMode without scope Cluster.
pub const FAILURE_MODE_MESSAGE: &str = "failureMode applies only with scope Cluster (what \
requests get when the rate limit service fails)";

// Where a limit is kept. (a plain comment: a doc comment here would replace the field's `kubectl explain` text)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Scope {
    /// A bucket per proxy.
    #[default]
    Proxy,
    /// The rate split across the serving pods.
    Workload,
    /// One count for all pods, kept by the rate limit service.
    Cluster,
}

// What requests get when the rate limit service fails. (a plain comment, see Scope)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum FailureModeSpec {
    /// Requests pass.
    #[default]
    Allow,
    /// Requests get the limited response.
    Deny,
}

/// How requests are grouped into buckets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'Header' ? has(self.header) : !has(self.header)").message("header is required when type is Header, and only then"))]
pub struct KeySpec {
    /// None (one bucket), Header (one bucket per value of header) or ClientAddress (one
    /// bucket per downstream client address).
    #[serde(rename = "type")]
    pub type_: KeyType,
    /// Request header whose value picks the bucket, when type is Header (for example x-api-key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub header: Option<String>,
}

// Kind of bucket key. (a plain comment: a doc comment here would replace the field's `kubectl explain` text)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum KeyType {
    /// One bucket for all requests.
    #[default]
    None,
    /// One bucket per value of a request header.
    Header,
    /// One bucket per downstream client address.
    ClientAddress,
}

// Rate-limit header flavour. (a plain comment: a doc comment here would replace the field's `kubectl explain` text)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RateLimitHeadersSpec {
    /// RateLimit and RateLimit-Policy (IETF draft-ietf-httpapi-ratelimit-headers).
    #[serde(rename = "IETF")]
    Ietf,
    /// X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset.
    Draft03,
    /// No rate-limit headers (Retry-After is still sent on limited responses).
    None,
}

// Failure behaviour of the proxies. (a plain comment: a doc comment here would replace the field's `kubectl explain` text)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum FailurePolicy {
    /// Requests fail while the filter cannot run.
    #[default]
    FailClose,
    /// Requests pass without the filter while it cannot run.
    FailOpen,
    /// Istio 1.27 or later. Like FailClose while the module cannot be fetched; when the
    /// filter's VM fails at run time, the proxy starts a new one for new requests.
    FailReload,
}

// Istio WasmPlugin phase. (a plain comment: a doc comment here would replace the field's `kubectl explain` text)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum Phase {
    /// Before Istio's authentication filters.
    AUTHN,
    /// Before Istio's authorization filters.
    AUTHZ,
    /// Before Istio's stats filters.
    STATS,
    /// Istio's default position.
    #[serde(rename = "UNSPECIFIED_PHASE")]
    Unspecified,
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = kubernetes_formats)]
pub struct HeaderRateLimitStatus {
    /// The metadata.generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Name of the WasmPlugin that runs this policy (same namespace). Set only while that
    /// WasmPlugin exists and is owned by this resource; empty when none was ever applied
    /// (for example an invalid spec) or the name is taken by someone else's WasmPlugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_plugin: Option<String>,
    /// The rate as a person reads it: tokens per period, `2/s`, `5/1m`, `1000/1h` (absent
    /// without a rate limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// scope Workload: the Ready, non-terminating pods the rate is split across (absent for
    /// other scopes, and until the operator has counted them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// scope Workload: each proxy's share of the rate as a person reads it, `100/3s` for
    /// 100/s over 3 pods (absent for other scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// Accepted (the spec is valid), Programmed (the WasmPlugin is applied and matches the
    /// spec) and Ready (both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The CustomResourceDefinition as YAML, exactly as `crds/headerratelimits.hrl.dev.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    use kube::CustomResourceExt;
    let yaml = serde_norway::to_string(&HeaderRateLimit::crd())?;
    Ok(format!(
        "# Generated by `hrl-operator crd` from operator/src/crd.rs; do not edit.\n---\n{yaml}"
    ))
}
