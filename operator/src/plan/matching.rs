//! `spec.match` to the contract's `match`.

use hrl_plugin_config::{HeaderMatch, Match, PathMatch};

use super::filter_config::header_name;
use super::{InvalidSpec, invalid};
use crate::crd::MatchSpec;

/// The contract's `match`, or none when nothing restricts (an empty match applies to every
/// request, as no match does, and needs no contract 2 filter). Only what the contract cannot
/// see is checked here: the CRD's two optional path forms, and its header name length.
pub(super) fn matches(spec: &MatchSpec) -> Result<Option<Match>, InvalidSpec> {
    let mut paths = Vec::with_capacity(spec.paths.len());
    for (i, path) in spec.paths.iter().enumerate() {
        paths.push(match (&path.exact, &path.prefix) {
            (Some(exact), None) => PathMatch::Exact(exact.clone()),
            (None, Some(prefix)) => PathMatch::Prefix(prefix.clone()),
            _ => {
                return Err(invalid(
                    format!("spec.match.paths[{i}]"),
                    "exactly one of exact or prefix must be set",
                ));
            }
        });
    }
    let mut headers = Vec::with_capacity(spec.headers.len());
    for (i, header) in spec.headers.iter().enumerate() {
        header_name(&format!("spec.match.headers[{i}].name"), &header.name)?;
        headers.push(HeaderMatch {
            name: header.name.clone(),
            value: header.value.clone(),
        });
    }
    let out = Match {
        methods: spec.methods.clone(),
        paths,
        hosts: spec.hosts.clone(),
        headers,
    };
    Ok((!out.is_empty()).then_some(out))
}
