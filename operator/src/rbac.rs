//! Every Kubernetes API call the `hrl-operator` binary makes. The chart's RBAC is tested
//! against this list, so it must stay exactly true: add a call here in the same change that
//! adds it to the code.

/// Verbs the binary uses on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// API group (`""` is the core group).
    pub group: &'static str,
    /// Resource, with `/subresource` where one is used.
    pub resource: &'static str,
    /// RBAC verbs.
    pub verbs: &'static [&'static str],
}

/// The complete list (see the operator README for why each is needed).
pub const API_CALLS: &[ApiCall] = &[
    // The controller's reflector: one list, then one long-running watch (no get, no polling).
    ApiCall {
        group: "hrl.dev",
        resource: "headerratelimits",
        verbs: &["list", "watch"],
    },
    // scope: Workload counts the serving pods a policy covers: a reflector of pods in the
    // watched namespaces (list, watch), stripped to labels and readiness in memory.
    ApiCall {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
    },
    // Status written with server-side apply.
    ApiCall {
        group: "hrl.dev",
        resource: "headerratelimits/status",
        verbs: &["patch"],
    },
    // Owned WasmPlugins: a reflector (list, watch) and server-side apply, which needs `create`
    // as well as `patch` when the object does not exist yet.
    ApiCall {
        group: "extensions.istio.io",
        resource: "wasmplugins",
        verbs: &["list", "watch", "create", "patch"],
    },
    // kube's event Recorder: create a new event, patch it to count repeats (event series).
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
    },
    // Leader election on one Lease: read it, create it once, update it (optimistic concurrency).
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
    },
];
