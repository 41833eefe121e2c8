//! Which requests a policy applies to (`match`), compiled once and decided once per request in
//! the request-headers callback. Pure: the adapter passes a reader of request headers, and only
//! the headers a rule needs are read, in the order the rules are checked (a request that fails
//! one rule reads no further).

use hrl_plugin_config::{Match, PathMatch};

/// A compiled `match`: every non-empty list must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMatch {
    /// `:method`, any of (exact bytes).
    methods: Vec<String>,
    /// `:path` without the query, any of.
    paths: Vec<PathRule>,
    /// `:authority` without the port, any of.
    hosts: Vec<HostRule>,
    /// Request headers, all of: name and the exact value, or presence.
    headers: Vec<(String, Option<String>)>,
}

/// One path rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathRule {
    /// The whole path.
    Exact(String),
    /// Whole leading path elements: the prefix without its trailing `/` (empty for `/`).
    Prefix(String),
}

/// One host rule, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    /// The whole name.
    Exact(String),
    /// `*.example.com` as `.example.com`: any name that ends with it and is longer.
    Suffix(String),
}

impl RequestMatch {
    /// The compiled rules of a validated `match`; `None` when nothing restricts (every
    /// request matches and the request path reads nothing).
    pub fn compile(m: &Match) -> Option<RequestMatch> {
        if m.is_empty() {
            return None;
        }
        Some(RequestMatch {
            methods: m.methods.clone(),
            paths: m
                .paths
                .iter()
                .map(|path| match path {
                    PathMatch::Exact(path) => PathRule::Exact(path.clone()),
                    PathMatch::Prefix(prefix) => {
                        PathRule::Prefix(prefix.trim_end_matches('/').to_owned())
                    }
                })
                .collect(),
            hosts: m
                .hosts
                .iter()
                .map(|host| {
                    let host = host.to_ascii_lowercase();
                    match host.strip_prefix('*') {
                        Some(suffix) => HostRule::Suffix(suffix.to_owned()),
                        None => HostRule::Exact(host),
                    }
                })
                .collect(),
            headers: m
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        })
    }

    /// Whether the request matches; `header(name)` reads a request header (pseudo-headers
    /// included) as the proxy has it.
    pub fn matches(&self, mut header: impl FnMut(&str) -> Option<Vec<u8>>) -> bool {
        if !self.methods.is_empty() {
            let method = header(":method").unwrap_or_default();
            if !self.methods.iter().any(|m| m.as_bytes() == method) {
                return false;
            }
        }
        if !self.paths.is_empty() {
            let path = header(":path").unwrap_or_default();
            let path = without_query(&path);
            if !self.paths.iter().any(|rule| rule.matches(path)) {
                return false;
            }
        }
        if !self.hosts.is_empty() {
            let authority = header(":authority").unwrap_or_default();
            let host = host_of(&authority);
            if !self.hosts.iter().any(|rule| rule.matches(host)) {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, value)| match (header(name), value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(found), Some(value)) => found == value.as_bytes(),
            })
    }
}

impl PathRule {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathRule::Exact(exact) => path == exact.as_bytes(),
            PathRule::Prefix(prefix) => match path.strip_prefix(prefix.as_bytes()) {
                // Element-wise: the prefix ends the path or is followed by a separator.
                Some(rest) => rest.is_empty() || rest.first() == Some(&b'/'),
                None => false,
            },
        }
    }
}

impl HostRule {
    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostRule::Exact(exact) => host.eq_ignore_ascii_case(exact.as_bytes()),
            HostRule::Suffix(suffix) => {
                let suffix = suffix.as_bytes();
                host.len() > suffix.len()
                    && host
                        .get(host.len().saturating_sub(suffix.len())..)
                        .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// The path before `?` (the query is not part of what paths match).
fn without_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?') {
        Some(at) => path.get(..at).unwrap_or(path),
        None => path,
    }
}

/// The host of an authority: without `:port`, without a trailing `.`; an IPv6 literal keeps
/// its brackets (`[::1]:80` → `[::1]`).
fn host_of(authority: &[u8]) -> &[u8] {
    let end = if authority.first() == Some(&b'[') {
        authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority.len(), |at| at.saturating_add(1))
    } else {
        authority
            .iter()
            .rposition(|&b| b == b':')
            .unwrap_or(authority.len())
    };
    let host = authority.get(..end).unwrap_or(authority);
    host.strip_suffix(b".").unwrap_or(host)
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
