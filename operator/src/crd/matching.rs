//! `spec.match`: which requests a policy applies to. The rules are `hrl_plugin_config::Match`'s,
//! repeated in the schema (patterns, bounds, list types, CEL) so the API server refuses bad
//! input with a message naming the field.

use hrl_plugin_config::{
    MAX_HEADER_VALUE_BYTES, MAX_HOST_BYTES, MAX_MATCH_ENTRIES, MAX_METHOD_BYTES, MAX_PATH_BYTES,
};
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::schema::{forbidden_header_rule, string_set};
use super::{HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, MAX_HEADER_NAME_BYTES};

/// Pattern of an HTTP method: an RFC 9110 token, case-sensitive.
pub const METHOD_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";
/// Pattern of a path: `/`, then visible ASCII without `?` (the query is not matched) or `#`.
pub const PATH_PATTERN: &str = r#"^/[!-"$->@-~]*$"#;
/// Pattern of a host: a lowercase DNS name (labels of 1 to 63 characters), optionally `*.`
/// first; the same as Gateway API's `Hostname` with the label length bound.
pub const HOST_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";

/// Which requests the policy applies to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchSpec {
    /// HTTP methods, any of: GET, POST, ... compared exactly (case-sensitive, as clients send
    /// them). At most 16, no duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "methods_schema")]
    pub methods: Vec<String>,

    /// Request paths, any of: each is {exact: /login} or {prefix: /api}. The query string is
    /// ignored. Paths are compared byte for byte with the path the proxy passes on (after
    /// Istio's path normalization); percent-encoding is not decoded, so %2F is not /. No
    /// regular expressions. At most 16, no duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_MATCH_ENTRIES), extend("x-kubernetes-list-type" = "set"))]
    pub paths: Vec<PathMatchSpec>,

    /// Hosts, any of, compared with the request's authority (Host header) without its port,
    /// ignoring case: api.example.com, or *.example.com for every name under example.com
    /// (a.example.com, a.b.example.com) but not example.com itself. Lowercase DNS names without
    /// a port or trailing dot. At most 16, no duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "hosts_schema")]
    pub hosts: Vec<String>,

    /// Request headers, all of: each names a header that must be present and, with value,
    /// have exactly that value. At most 16, one entry per name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_MATCH_ENTRIES),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub headers: Vec<HeaderMatchSpec>,
}

/// One path rule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
// Atomic: items of a `set` list must be (apiextensions-apiserver validation.go).
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
#[x_kube(validation = Rule::new("has(self.exact) != has(self.prefix)").message("exactly one of exact or prefix must be set"))]
pub struct PathMatchSpec {
    /// The whole path, exactly (without the query string): /login matches /login and
    /// /login?next=x, not /login/ or /login/x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PATH_BYTES), regex(pattern = PATH_PATTERN))]
    pub exact: Option<String>,

    /// A path prefix in whole segments (Gateway API PathPrefix): /login matches /login,
    /// /login/ and /login/x, not /loginx; a trailing / is ignored; / matches every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PATH_BYTES), regex(pattern = PATH_PATTERN))]
    pub prefix: Option<String>,
}

/// One header rule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatchSpec {
    /// Request header name, a lowercase RFC 9110 token (x-tenant); not a framing or hop-by-hop
    /// header (match the host with hosts).
    #[x_kube(validation = Rule::new(forbidden_header_rule("self")).message("must not be a framing or hop-by-hop header (connection, content-length, host, te, ...); match the host with hosts"))]
    #[schemars(length(min = 1, max = MAX_HEADER_NAME_BYTES), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,

    /// The exact value the header must have (case-sensitive). Omitted: the header only has to
    /// be present, with any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_HEADER_VALUE_BYTES), regex(pattern = HEADER_VALUE_PATTERN))]
    pub value: Option<String>,
}

fn methods_schema(_: &mut SchemaGenerator) -> Schema {
    string_set(MAX_MATCH_ENTRIES, MAX_METHOD_BYTES, METHOD_PATTERN)
}

fn hosts_schema(_: &mut SchemaGenerator) -> Schema {
    string_set(MAX_MATCH_ENTRIES, MAX_HOST_BYTES, HOST_PATTERN)
}
