//! PURE: a HeaderRateLimit and the operator's settings in, the desired WasmPlugin out.
//!
//! No IO, no clock: `reconcile` applies what this module decides. Every rule of
//! `hrl-plugin-config` is checked under its CRD field path first, then
//! [`PluginConfig::validate`] runs as a backstop, so an invalid plan is never applied. The
//! rules of `spec.match` are left to that backstop: its fields are the contract's, one to one,
//! so the contract's field paths map straight back to the CRD.

use std::collections::BTreeMap;

use hrl_plugin_config::{
    CONTRACT_VERSION, DEFAULT_BODY, DEFAULT_MAX_KEYS, DEFAULT_STATUS_CODE, Header, Key,
    MAX_BODY_BYTES, MAX_BURST, MAX_HEADERS, MAX_MAX_KEYS, MAX_TOKENS, MAX_TOKENS_PER_SECOND,
    MIN_MAX_KEYS, PluginConfig, RateLimit, RateLimitHeaders, check_header_name, check_header_value,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::conditions::reason;
use crate::crd::Scope;
use crate::crd::{
    FailurePolicy, HeaderRateLimit, HeaderRateLimitSpec, KeyType, MAX_HEADER_NAME_BYTES, Phase,
    RateLimitHeadersSpec, RateLimitSpec,
};
use crate::rate;
pub use crate::rls::RlsSettings;
use crate::target::target;
use matching::matches;
pub use scoped::Scoped;

mod matching;
mod scoped;
use crate::wasm_plugin::{WasmPlugin, WasmPluginSpec};

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

/// The filter configuration for `hrl` with default settings (no rate limit service: a Cluster
/// policy is refused) and nothing observed (a Workload policy gets the whole rate, as one
/// proxy of one); errors name the CRD field. What one proxy alone would run, for the
/// playground.
pub fn plugin_config(hrl: &HeaderRateLimit) -> Result<PluginConfig, InvalidSpec> {
    scoped_plugin_config(hrl, &Settings::default(), &Observed::default()).map(|(c, _)| c)
}

/// The filter configuration for `hrl` as `plan` writes it: the rate as its scope configures
/// each proxy, validated; errors name the CRD field.
pub fn scoped_plugin_config(
    hrl: &HeaderRateLimit,
    settings: &Settings,
    observed: &Observed,
) -> Result<(PluginConfig, Scoped), InvalidSpec> {
    let spec = &hrl.spec;
    let response_headers = headers("spec.headers", &spec.headers)?;
    let remove_response_headers = removed(spec)?;
    let mut scoped = Scoped::default();
    let rate_limit = match &spec.rate_limit {
        Some(limit_spec) => {
            let mut limit = rate_limit(limit_spec)?;
            scoped = scoped::apply(limit_spec, &mut limit, settings, observed)?;
            Some(limit)
        }
        None => None,
    };
    let config = PluginConfig {
        policy: format!("{}/{}", namespace(hrl), hrl.name_any()),
        response_headers,
        remove_response_headers,
        rate_limit,
        matches: spec.matches.as_ref().map(matches).transpose()?.flatten(),
    };
    // Backstop: the contract's own validation, its field path mapped back to the CRD.
    config
        .validate()
        .map_err(|e| invalid(crd_path(spec, &e.field), e.rule))?;
    Ok((config, scoped))
}

fn namespace(hrl: &HeaderRateLimit) -> String {
    hrl.namespace().unwrap_or_else(|| "default".into())
}

fn header_name(field: &str, name: &str) -> Result<(), InvalidSpec> {
    check_header_name(name).map_err(|rule| invalid(field, rule))?;
    if name.len() > MAX_HEADER_NAME_BYTES {
        return Err(invalid(field, "must be at most 256 bytes"));
    }
    Ok(())
}

fn headers(field: &str, map: &BTreeMap<String, String>) -> Result<Vec<Header>, InvalidSpec> {
    if map.len() > MAX_HEADERS {
        return Err(invalid(
            field,
            format!("must have at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let item = format!("{field}[{name:?}]");
        header_name(&item, name)?;
        check_header_value(value).map_err(|rule| invalid(&item, rule))?;
        out.push(Header {
            name: name.clone(),
            value: value.clone(),
        });
    }
    Ok(out)
}

fn removed(spec: &HeaderRateLimitSpec) -> Result<Vec<String>, InvalidSpec> {
    if spec.remove_headers.len() > MAX_HEADERS {
        let rule = format!("must have at most {MAX_HEADERS} headers");
        return Err(invalid("spec.removeHeaders", rule));
    }
    for (i, name) in spec.remove_headers.iter().enumerate() {
        let field = format!("spec.removeHeaders[{i}]");
        header_name(&field, name)?;
        if spec.headers.contains_key(name) {
            let rule =
                format!("{name:?} is also in spec.headers: a header is either set or removed");
            return Err(invalid(field, rule));
        }
    }
    Ok(spec.remove_headers.clone())
}

/// The rate as tokens per period in seconds, checked; errors name the CRD field.
fn tokens_per_period(spec: &RateLimitSpec) -> Result<(u32, u32), InvalidSpec> {
    let f = |name: &str| format!("spec.rateLimit.{name}");
    match (spec.tokens_per_second, spec.tokens, &spec.per) {
        (Some(tokens), None, None) => {
            in_range(&f("tokensPerSecond"), tokens, 1, MAX_TOKENS_PER_SECOND)?;
            Ok((tokens, 1))
        }
        (None, Some(tokens), Some(per)) => {
            in_range(&f("tokens"), tokens, 1, MAX_TOKENS)?;
            let period = rate::parse_period(per).map_err(|rule| invalid(f("per"), rule))?;
            if u64::from(tokens) > u64::from(MAX_TOKENS_PER_SECOND) * u64::from(period) {
                let rule =
                    format!("tokens per per must be at most {MAX_TOKENS_PER_SECOND} per second");
                return Err(invalid(f("tokens"), rule));
            }
            Ok((tokens, period))
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            Err(invalid(f("tokens"), "tokens and per go together"))
        }
        _ => Err(invalid(
            f("tokensPerSecond"),
            "set either tokensPerSecond, or tokens and per",
        )),
    }
}

fn rate_limit(spec: &RateLimitSpec) -> Result<RateLimit, InvalidSpec> {
    let f = |name: &str| format!("spec.rateLimit.{name}");
    let (tokens, period_seconds) = tokens_per_period(spec)?;
    let burst = spec.burst.unwrap_or(tokens);
    in_range(&f("burst"), burst, 1, MAX_BURST)?;
    let max_keys = spec.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
    in_range(&f("maxKeys"), max_keys, MIN_MAX_KEYS, MAX_MAX_KEYS)?;
    let status_code = spec.status_code.unwrap_or(DEFAULT_STATUS_CODE);
    if !(400..=599).contains(&status_code) {
        return Err(invalid(f("statusCode"), "must be between 400 and 599"));
    }
    let body = spec.body.clone().unwrap_or_else(|| DEFAULT_BODY.into());
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid(
            f("body"),
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let key = match &spec.key {
        None => Key::None,
        Some(key) => match (key.type_, &key.header) {
            (KeyType::Header, Some(name)) => {
                header_name(&f("key.header"), name)?;
                Key::Header(name.clone())
            }
            (KeyType::Header, None) => {
                return Err(invalid(f("key.header"), "is required when type is Header"));
            }
            (_, Some(_)) => {
                return Err(invalid(
                    f("key.header"),
                    "must not be set unless type is Header",
                ));
            }
            (KeyType::None, None) => Key::None,
            (KeyType::ClientAddress, None) => Key::ClientAddress,
        },
    };
    Ok(RateLimit {
        tokens,
        period_seconds,
        burst,
        key,
        max_keys,
        status_code,
        body,
        headers: headers(&f("responseHeaders"), &spec.response_headers)?,
        rate_limit_headers: match spec.rate_limit_headers {
            None | Some(RateLimitHeadersSpec::Ietf) => RateLimitHeaders::Ietf,
            Some(RateLimitHeadersSpec::Draft03) => RateLimitHeaders::Draft03,
            Some(RateLimitHeadersSpec::None) => RateLimitHeaders::None,
        },
        enforce: spec.enforce.unwrap_or(true),
        service: None,
    })
}

fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<(), InvalidSpec> {
    if value < min {
        return Err(invalid(field, format!("must be at least {min}")));
    }
    if value > max {
        return Err(invalid(field, format!("must be at most {max}")));
    }
    Ok(())
}

/// Maps a pluginConfig field path (`responseHeaders[2].name`) to the CRD field it came from.
fn crd_path(spec: &HeaderRateLimitSpec, field: &str) -> String {
    let indexed = |prefix: &str, map: &BTreeMap<String, String>, crd: &str| -> Option<String> {
        let rest = field.strip_prefix(prefix)?.strip_prefix('[')?;
        let (index, _) = rest.split_once(']')?;
        let name = map.keys().nth(index.parse().ok()?)?;
        Some(format!("{crd}[{name:?}]"))
    };
    let empty = BTreeMap::new();
    let limit_headers = spec
        .rate_limit
        .as_ref()
        .map_or(&empty, |r| &r.response_headers);
    if let Some(path) = indexed("responseHeaders", &spec.headers, "spec.headers") {
        return path;
    }
    if let Some(path) = indexed(
        "rateLimit.headers",
        limit_headers,
        "spec.rateLimit.responseHeaders",
    ) {
        return path;
    }
    if let Some(rest) = field.strip_prefix("removeResponseHeaders") {
        return format!("spec.removeHeaders{rest}");
    }
    // No arm for the rate fields (`tokensPerSecond`, `tokens`, `periodSeconds`): they are the
    // wire form's names, and `tokens_per_period` has checked the rate under the CRD's names.
    // Written from the operator's --rls-* settings, which are checked at startup.
    if field.starts_with("rateLimit.service") {
        return format!("spec.rateLimit.scope ({field}, from the operator's --rls-* settings)");
    }
    if let Some(rest) = field.strip_prefix("match.") {
        return format!("spec.match.{rest}");
    }
    if let Some(rest) = field.strip_prefix("rateLimit.") {
        return format!("spec.rateLimit.{rest}");
    }
    if field == "policy" {
        return "metadata".into();
    }
    format!("spec ({field})")
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
