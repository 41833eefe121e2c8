//! `match`: which requests a policy applies to, and its rules. A request matches when every
//! given field matches (methods: any; paths: any; hosts: any; headers: all).

use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::rules::{check_header_name, check_header_value};

/// Most entries in each of `match.methods`, `match.paths`, `match.hosts` and `match.headers`.
pub const MAX_MATCH_ENTRIES: usize = 16;
/// Longest `match.paths[]` value, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest `match.hosts[]` value, in bytes (a DNS name).
pub const MAX_HOST_BYTES: usize = 253;
/// Longest `match.methods[]` value, in bytes.
pub const MAX_METHOD_BYTES: usize = 32;

/// The requests a policy applies to; an empty list does not restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// HTTP methods (`:method`), any of; case-sensitive tokens such as `GET`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Paths (`:path` without the query), any of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathMatch>,
    /// Hosts (`:authority` without the port, case-insensitive), any of; `*.example.com` matches
    /// every name under example.com, not example.com itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Request headers, all of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

impl Match {
    /// True when no field restricts (every request matches).
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
            && self.paths.is_empty()
            && self.hosts.is_empty()
            && self.headers.is_empty()
    }
}

/// One path rule, exactly one form on the wire: `{"exact": "/login"}` or `{"prefix": "/api"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatch {
    /// The whole path, byte for byte.
    Exact(String),
    /// Gateway API `PathPrefix`: whole path elements (`/login` matches `/login` and
    /// `/login/x`, not `/loginx`); a trailing `/` is ignored, `/` matches every path.
    Prefix(String),
}

/// One header rule: `name` present, and equal to `value` when it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Lowercase RFC 9110 field name.
    pub name: String,
    /// The exact value; absent = the header only has to be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

pub(crate) fn check_match(m: &Match) -> Result<(), Invalid> {
    check_count("match.methods", m.methods.len())?;
    for (i, method) in m.methods.iter().enumerate() {
        let field = || format!("match.methods[{i}]");
        if method.is_empty()
            || method.len() > MAX_METHOD_BYTES
            || !method.bytes().all(is_method_tchar)
        {
            return Err(Invalid::new(
                field(),
                "must be an HTTP method token of at most 32 characters (e.g. GET, POST)",
            ));
        }
        no_duplicate(field, &m.methods, i)?;
    }
    check_count("match.paths", m.paths.len())?;
    for (i, path) in m.paths.iter().enumerate() {
        let (form, value) = match path {
            PathMatch::Exact(value) => ("exact", value),
            PathMatch::Prefix(value) => ("prefix", value),
        };
        check_path(value).map_err(|rule| Invalid::new(format!("match.paths[{i}].{form}"), rule))?;
        no_duplicate(|| format!("match.paths[{i}]"), &m.paths, i)?;
    }
    check_count("match.hosts", m.hosts.len())?;
    for (i, host) in m.hosts.iter().enumerate() {
        let field = || format!("match.hosts[{i}]");
        check_host(host).map_err(|rule| Invalid::new(field(), rule))?;
        no_duplicate(field, &m.hosts, i)?;
    }
    check_count("match.headers", m.headers.len())?;
    for (i, header) in m.headers.iter().enumerate() {
        let name_field = || format!("match.headers[{i}].name");
        check_header_name(&header.name).map_err(|rule| Invalid::new(name_field(), rule))?;
        if m.headers.iter().take(i).any(|h| h.name == header.name) {
            return Err(Invalid::new(
                name_field(),
                format!("duplicate header name '{}'", header.name),
            ));
        }
        if let Some(value) = &header.value {
            check_header_value(value)
                .map_err(|rule| Invalid::new(format!("match.headers[{i}].value"), rule))?;
        }
    }
    Ok(())
}

fn check_count(field: &str, len: usize) -> Result<(), Invalid> {
    if len > MAX_MATCH_ENTRIES {
        return Err(Invalid::new(field, "must have at most 16 entries"));
    }
    Ok(())
}

fn no_duplicate<T: PartialEq>(
    field: impl Fn() -> String,
    all: &[T],
    i: usize,
) -> Result<(), Invalid> {
    match all.get(i) {
        Some(item) if all.iter().take(i).any(|x| x == item) => {
            Err(Invalid::new(field(), "duplicate entry"))
        }
        _ => Ok(()),
    }
}

/// `/` then visible ASCII, no query or fragment, at most [`MAX_PATH_BYTES`].
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/')
        || path.len() > MAX_PATH_BYTES
        || !path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(
            "must start with '/' and be at most 1024 visible ASCII characters without '?' or '#'",
        );
    }
    Ok(())
}

/// A lowercase DNS name, optionally `*.` then one, without a port.
fn check_host(host: &str) -> Result<(), &'static str> {
    let rule = "must be a lowercase DNS name (example.com) or a wildcard (*.example.com), \
                without a port, at most 253 characters";
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > MAX_HOST_BYTES || !name.split('.').all(label_ok) {
        return Err(rule);
    }
    Ok(())
}

/// RFC 9110 token characters (methods are case-sensitive, so upper case too).
fn is_method_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
