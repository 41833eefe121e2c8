//! PURE: a HeaderRateLimit and the operator's settings in, the desired WasmPlugin out.
//!
//! No IO, no clock: `reconcile` applies what this module decides. Every rule of
//! `hrl-plugin-config` is checked under its CRD field path first, then
//! [`PluginConfig::validate`] runs as a backstop, so an invalid plan is never applied. The
//! rules of `spec.match` are left to that backstop: its fields are the contract's, one to one,
//! so the contract's field paths map straight back to the CRD.

use std::collections::BTreeMap;

use hrl_plugin_config::CONTRACT_VERSION;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::conditions::reason;
use crate::crd::{FailurePolicy, HeaderRateLimit, Phase, Scope};
use crate::rate;
pub use crate::rls::RlsSettings;
use crate::target::target;
use crate::wasm_plugin::{WasmPlugin, WasmPluginSpec};
use filter_config::tokens_per_period;
pub use filter_config::{plugin_config, scoped_plugin_config};
pub use scoped::Scoped;

mod filter_config;
mod matching;
mod scoped;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "hrl-operator";
/// Value of `app.kubernetes.io/managed-by` on every WasmPlugin the operator owns.
pub const MANAGED_BY: &str = "hrl-operator";
/// Label selector matching the WasmPlugins the operator owns.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=hrl-operator";
/// Envoy plugin name (root id) of the filter.
pub const PLUGIN_NAME: &str = "hrl";

/// Where proxies fetch the filter module; chosen by whoever installs the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// URL of the module (`oci://`, `https://`, `file://`).
    pub filter_url: String,
    /// Lowercase hex SHA-256 of the module; pins it and lets proxies cache it.
    pub filter_sha256: Option<String>,
    /// The pluginConfig contract version the installed filter reads (its release's
    /// `CONTRACT_VERSION`). A policy that needs a newer one is not applied: the filter would
    /// refuse it and Envoy would keep the old configuration while status said Programmed.
    pub filter_contract: u32,
    /// The rate limit service `scope: Cluster` policies use; none = such policies are not
    /// accepted.
    pub rls: Option<RlsSettings>,
}

/// What the controller observed in the cluster that a plan depends on (an input like the
/// spec, so `plan` stays pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// scope Workload: the Ready, non-terminating pods the policy covers; none until counted
    /// (a proxy then gets the whole rate, as one proxy of one).
    pub replicas: Option<u32>,
}

/// Default filter URL: the image released with this operator version.
pub const DEFAULT_FILTER_URL: &str = concat!(
    "oci://ghcr.io/hrl-dev/hrl-filter:",
    env!("CARGO_PKG_VERSION")
);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            filter_url: DEFAULT_FILTER_URL.into(),
            filter_sha256: None,
            filter_contract: CONTRACT_VERSION,
            rls: None,
        }
    }
}

/// A spec that breaks a rule (or that this installation cannot serve); Display is
/// `field: rule`, with the CRD field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct InvalidSpec {
    /// CRD field path, e.g. `spec.rateLimit.burst` or `spec.headers["Bad Name"]`.
    pub field: String,
    /// The broken rule.
    pub rule: String,
    /// The Accepted=False reason: `Invalid`, or one naming what the installation lacks
    /// (`RateLimitServiceNotConfigured`).
    pub reason: &'static str,
}

pub(crate) fn invalid(field: impl Into<String>, rule: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        rule: rule.into(),
        reason: reason::INVALID,
    }
}

/// The desired state for one HeaderRateLimit.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Name of the child WasmPlugin (deterministic; also when the spec is invalid).
    pub wasm_plugin_name: String,
    /// The WasmPlugin to apply, or why the spec is invalid (then nothing is applied).
    pub wasm_plugin: Result<WasmPlugin, InvalidSpec>,
    /// The rate as a person reads it (`2/s`, `5/1m`), for `status.rate`; none without a limit
    /// or when the rate itself is invalid.
    pub rate: Option<String>,
    /// What the scope did (replicas and share for Workload, the service for Cluster); empty
    /// when the spec is invalid.
    pub scoped: Scoped,
}

/// Plans the WasmPlugin for `hrl`, with what the controller observed (`observed`).
pub fn plan(hrl: &HeaderRateLimit, settings: &Settings, observed: &Observed) -> Plan {
    let wasm_plugin_name = wasm_plugin_name(&hrl.name_any());
    let (wasm_plugin, scoped) =
        match desired_wasm_plugin(hrl, settings, observed, &wasm_plugin_name) {
            Ok((wasm_plugin, scoped)) => (Ok(wasm_plugin), scoped),
            Err(invalid) => (Err(invalid), Scoped::default()),
        };
    let rate = hrl
        .spec
        .rate_limit
        .as_ref()
        .and_then(|spec| tokens_per_period(spec).ok())
        .map(|(tokens, period)| rate::display(tokens, period));
    Plan {
        wasm_plugin_name,
        wasm_plugin,
        rate,
        scoped,
    }
}

fn desired_wasm_plugin(
    hrl: &HeaderRateLimit,
    settings: &Settings,
    observed: &Observed,
    name: &str,
) -> Result<(WasmPlugin, Scoped), InvalidSpec> {
    let target = target(&hrl.spec)?;
    let (config, scoped) = scoped_plugin_config(hrl, settings, observed)?;
    let limit = hrl.spec.rate_limit.as_ref();
    let scope = limit.and_then(|r| r.scope).unwrap_or_default();
    // Workload and Cluster need contract 2 whatever the replica count: a Workload share is a
    // 1 s rate only when the count divides it, and a policy must not be accepted at 4 pods
    // and refused at 3.
    let needed = match scope {
        Scope::Proxy => config.version(),
        Scope::Workload | Scope::Cluster => config.version().max(2),
    };
    if needed > settings.filter_contract {
        // The contract 2 fields, in the order the CRD lists them.
        let per = limit
            .and_then(|r| r.per.as_deref())
            .and_then(|p| rate::parse_period(p).ok());
        let field = if per.is_some_and(|p| p != 1) {
            "spec.rateLimit.per"
        } else if scope != Scope::Proxy {
            "spec.rateLimit.scope"
        } else if config.matches.is_some() {
            "spec.match"
        } else {
            "spec"
        };
        return Err(invalid(
            field,
            format!(
                "needs a filter that reads pluginConfig contract version {needed}, but the \
                 installed filter reads version {}: upgrade the filter (chart value filter.url, \
                 operator flag --filter-contract-version) or do without this field",
                settings.filter_contract
            ),
        ));
    }
    let plugin_config = serde_json::to_value(&config)
        .map_err(|e| invalid("spec", format!("cannot render pluginConfig: {e}")))?;
    let spec = &hrl.spec;
    let mut labels = BTreeMap::new();
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        MANAGED_BY.to_string(),
    );
    labels.insert(
        "app.kubernetes.io/instance".to_string(),
        label_value(&hrl.name_any()),
    );
    let wasm_plugin = WasmPlugin {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace(hrl)),
            labels: Some(labels),
            owner_references: owner_reference(hrl).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: WasmPluginSpec {
            selector: target.selector,
            target_refs: target.target_refs,
            match_: target.match_,
            url: settings.filter_url.clone(),
            sha256: settings.filter_sha256.clone(),
            // Never `Always`: Istio's agent keys its module cache on the WasmPlugin's
            // resourceVersion then, so every edit of a policy re-pulls the module, and a failed
            // pull replaces the running filter with deny-all (FAIL_CLOSE) or allow-all
            // (FAIL_OPEN) (istio `pkg/wasm/cache.go`, `convert.go`). A pinned sha256 is looked
            // up in the cache by checksum; an unpinned URL is fetched once per proxy.
            image_pull_policy: Some("IfNotPresent".into()),
            plugin_name: Some(PLUGIN_NAME.into()),
            plugin_config: Some(plugin_config),
            phase: spec.phase.map(|p| phase(p).to_string()),
            priority: spec.priority,
            fail_strategy: Some(
                match spec.failure_policy.unwrap_or_default() {
                    FailurePolicy::FailClose => "FAIL_CLOSE",
                    FailurePolicy::FailOpen => "FAIL_OPEN",
                    FailurePolicy::FailReload => "FAIL_RELOAD",
                }
                .into(),
            ),
            type_: Some("HTTP".into()),
        },
    };
    Ok((wasm_plugin, scoped))
}

fn namespace(hrl: &HeaderRateLimit) -> String {
    hrl.namespace().unwrap_or_else(|| "default".into())
}

fn phase(p: Phase) -> &'static str {
    match p {
        Phase::AUTHN => "AUTHN",
        Phase::AUTHZ => "AUTHZ",
        Phase::STATS => "STATS",
        Phase::Unspecified => "UNSPECIFIED_PHASE",
    }
}

fn owner_reference(hrl: &HeaderRateLimit) -> Option<OwnerReference> {
    // No blockOwnerDeletion: it would need `update` on headerratelimits/finalizers where the
    // OwnerReferencesPermissionEnforcement admission plugin is on, and nothing needs it.
    Some(OwnerReference {
        api_version: HeaderRateLimit::api_version(&()).into_owned(),
        kind: HeaderRateLimit::kind(&()).into_owned(),
        name: hrl.metadata.name.clone()?,
        uid: hrl.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// Deterministic WasmPlugin name: `hrl-<name>`, shortened with a hash suffix past 253 bytes.
pub fn wasm_plugin_name(hrl_name: &str) -> String {
    shorten(&format!("hrl-{hrl_name}"), 253)
}

fn label_value(name: &str) -> String {
    shorten(name, 63)
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    // Names are ASCII (DNS subdomains), so byte slicing is on char boundaries.
    let head = s.get(..max - 9).unwrap_or(s).trim_end_matches(['-', '.']);
    format!("{head}-{:08x}", fnv1a(s))
}

fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
