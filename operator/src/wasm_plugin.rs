//! The subset of Istio's `extensions.istio.io/v1alpha1` WasmPlugin that the operator writes.
//!
//! Enum-like fields are plain strings: the controller reads WasmPlugins back from the API
//! server, and a value set by hand that we do not model (for example `FAIL_RELOAD`) must not
//! break deserialisation of the whole watch.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// API group of Istio's WasmPlugin.
pub const GROUP: &str = "extensions.istio.io";
/// Plural resource name of Istio's WasmPlugin.
pub const PLURAL: &str = "wasmplugins";

/// The spec fields of an Istio WasmPlugin that the operator sets.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "extensions.istio.io",
    version = "v1alpha1",
    kind = "WasmPlugin",
    namespaced,
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    /// Workloads by label (exclusive with `targetRefs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// Gateway API targets (exclusive with `selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_refs: Option<Vec<PolicyTargetReference>>,
    /// Which traffic of the selected proxies gets the filter; absent = every listener,
    /// inbound and outbound.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<TrafficSelector>>,
    /// Where the module comes from: `oci://`, `https://`, `http://` or `file://`.
    pub url: String,
    /// Expected SHA-256 (lowercase hex) of the module or OCI image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `IfNotPresent` or `Always` (the operator writes only `IfNotPresent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Envoy plugin name (root id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    /// The JSON the filter reads in `on_configure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<serde_json::Value>,
    /// `AUTHN`, `AUTHZ`, `STATS` or `UNSPECIFIED_PHASE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Order within a phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `FAIL_CLOSE`, `FAIL_OPEN` or `FAIL_RELOAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_strategy: Option<String>,
    /// `HTTP` or `NETWORK`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// Istio workload selector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Labels a workload must all have.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// One entry of a WasmPlugin's `match`: a traffic direction (Istio's `WorkloadMode`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSelector {
    /// `SERVER` (a sidecar's inbound listeners), `CLIENT` (outbound and gateway listeners),
    /// `CLIENT_AND_SERVER` or `UNDEFINED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Istio's PolicyTargetReference.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group of the target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind of the target.
    pub kind: String,
    /// Name of the target.
    pub name: String,
}
