//! Where the filter runs: the selector or targetRefs of a spec, checked and mapped to the
//! WasmPlugin's (so Istio's own schema and CEL rules accept it).

use crate::crd::{HeaderRateLimitSpec, ProxyKind};
use crate::plan::{InvalidSpec, invalid};
use crate::wasm_plugin::{PolicyTargetReference, Selector, TrafficSelector};

/// Where a WasmPlugin applies: its selector or targetRefs (exactly one) and its `match`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Target {
    pub selector: Option<Selector>,
    pub target_refs: Option<Vec<PolicyTargetReference>>,
    pub match_: Option<Vec<TrafficSelector>>,
}

/// The traffic a WasmPlugin applies to (istiod, `pilot/pkg/model/extensions.go`: without
/// `match` a WasmPlugin matches every listener; a sidecar's inbound listeners are `SERVER`, its
/// outbound ones `CLIENT`, and every gateway listener is `CLIENT`).
/// - Sidecars: `SERVER` only, or the filter would also limit and decorate the calls the
///   workload makes to its dependencies, from the same bucket.
/// - Gateways selected by label: `CLIENT`, the mode of gateway listeners.
/// - targetRefs: no `match`. Istio attaches them only to the Gateway's own pods, and a
///   waypoint's listeners are `SERVER` while an ingress gateway's are `CLIENT`.
fn traffic(mode: &str) -> Vec<TrafficSelector> {
    vec![TrafficSelector {
        mode: Some(mode.into()),
    }]
}

/// The WasmPlugin selector or targetRefs for `spec` (exactly one is set), and its `match`.
pub(crate) fn target(spec: &HeaderRateLimitSpec) -> Result<Target, InvalidSpec> {
    match (&spec.selector, &spec.target_refs) {
        (Some(selector), None) => {
            let labels = &selector.match_labels;
            if labels.is_empty() {
                return Err(invalid(
                    "spec.selector.matchLabels",
                    "must not be empty (an empty selector would cover every workload in the namespace)",
                ));
            }
            for (key, value) in labels {
                let field = format!("spec.selector.matchLabels[{key:?}]");
                if key.is_empty() || key.contains('*') || key.len() > 317 {
                    return Err(invalid(field, "must be a label key"));
                }
                if !is_label_value(value) {
                    return Err(invalid(
                        field,
                        "must be a label value (at most 63 characters: a-z, A-Z, 0-9, '-', '_', '.')",
                    ));
                }
            }
            let mode = match selector.proxy.unwrap_or_default() {
                ProxyKind::Sidecar => "SERVER",
                ProxyKind::Gateway => "CLIENT",
            };
            Ok(Target {
                selector: Some(Selector {
                    match_labels: labels.clone(),
                }),
                target_refs: None,
                match_: Some(traffic(mode)),
            })
        }
        (None, Some(refs)) => {
            if refs.is_empty() || refs.len() > 16 {
                return Err(invalid(
                    "spec.targetRefs",
                    "must have between 1 and 16 items",
                ));
            }
            let mut out = Vec::with_capacity(refs.len());
            for (i, r) in refs.iter().enumerate() {
                if r.group != "gateway.networking.k8s.io" || r.kind != "Gateway" {
                    return Err(invalid(
                        format!("spec.targetRefs[{i}]"),
                        "must be a Gateway (group gateway.networking.k8s.io, kind Gateway)",
                    ));
                }
                if r.name.is_empty() || r.name.len() > 253 {
                    return Err(invalid(
                        format!("spec.targetRefs[{i}].name"),
                        "must be 1 to 253 characters",
                    ));
                }
                out.push(PolicyTargetReference {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                });
            }
            Ok(Target {
                selector: None,
                target_refs: Some(out),
                match_: None,
            })
        }
        _ => Err(invalid(
            "spec",
            "exactly one of selector or targetRefs must be set",
        )),
    }
}

fn is_label_value(v: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    v.len() <= 63
        && v.chars().all(ok_char)
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}
