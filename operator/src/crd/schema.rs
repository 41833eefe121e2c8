//! Hand-written schema parts of the CRD, and the transform that keeps every `format` to one
//! the API server knows.

use schemars::transform::transform_subschemas;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use super::{HEADER_NAME_PATTERN, HEADER_VALUE_PATTERN, MAX_HEADER_NAME_BYTES};

/// Framing and hop-by-hop headers a filter must neither set nor remove (a CEL list literal;
/// `in` on a map is constant cost, so the rule stays far below the API server's CEL budget).
const FORBIDDEN: &str = "['connection', 'content-length', 'host', 'keep-alive', \
'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']";
/// Headers the filter writes itself for rate-limited policies; configuring them would conflict.
const RESERVED: &str = "['retry-after', 'ratelimit', 'ratelimit-policy', 'x-ratelimit-limit', \
'x-ratelimit-remaining', 'x-ratelimit-reset']";
/// Most entries in a header map or list (`hrl_plugin_config::MAX_HEADERS`).
const MAX_HEADERS: usize = hrl_plugin_config::MAX_HEADERS;

/// String formats the API server validates (apiextensions-apiserver
/// `pkg/apiserver/validation/formats.go`, the set every version since 1.0 knows), compared
/// as it does: with `-` removed. Anything else draws `Warning: unrecognized format`.
pub const KNOWN_STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

/// Whether the API server knows `format` on a schema of `type_` (the rule of formats.go's
/// `GetUnrecognizedFormats`: int32/int64 on integers, float/double on numbers, the list
/// above on strings, nothing on other types).
pub fn is_known_format(type_: Option<&str>, format: &str) -> bool {
    match type_ {
        Some("integer") => matches!(format, "int32" | "int64"),
        Some("number") => matches!(format, "float" | "double"),
        None | Some("string") => KNOWN_STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        Some(_) => false,
    }
}

/// schemars transform: rewrites every `format` of a schema and its subschemas to one the API
/// server knows. schemars writes Rust's widths (`uint32`, `uint16`, `int8`, ...); an integer
/// gets `int32` when its bounds fit (they stay in minimum/maximum), else `int64`; a number
/// `double`; an unknown string format is dropped.
pub fn kubernetes_formats(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut() {
        let type_ = single_type(object.get("type"));
        if let Some(format) = object.get("format").and_then(Value::as_str)
            && !is_known_format(type_.as_deref(), format)
        {
            let replacement = match type_.as_deref() {
                Some("integer") => Some(integer_format(object)),
                Some("number") => Some("double"),
                _ => None,
            };
            match replacement {
                Some(format) => {
                    object.insert("format".into(), format.into());
                }
                None => {
                    object.remove("format");
                }
            }
        }
    }
    transform_subschemas(&mut kubernetes_formats, schema);
}

/// The one non-null type of a schema (`"integer"` or `["integer", "null"]`).
fn single_type(type_: Option<&Value>) -> Option<String> {
    match type_? {
        Value::String(t) => Some(t.clone()),
        Value::Array(types) => {
            let mut non_null = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null");
            match (non_null.next(), non_null.next()) {
                (Some(t), None) => Some(t.to_string()),
                _ => None,
            }
        }
        _ => None,
    }
}

fn integer_format(object: &serde_json::Map<String, Value>) -> &'static str {
    let fits = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_f64)
            .is_some_and(|v| v >= f64::from(i32::MIN) && v <= f64::from(i32::MAX))
    };
    if fits("minimum") && fits("maximum") {
        "int32"
    } else {
        "int64"
    }
}

/// CEL: `var` is a lowercase RFC 9110 token of at most 256 bytes. The length test comes first,
/// so a long key never reaches the regex (that bounds the rule's runtime cost). The pattern
/// has no `"` or `\`, so it sits in a double-quoted CEL string as it is.
fn valid_header_name(var: &str) -> String {
    format!("size({var}) <= {MAX_HEADER_NAME_BYTES} && {var}.matches(\"{HEADER_NAME_PATTERN}\")")
}

/// Rule on the keys of a header map (what `hrl_plugin_config::check_header_name` requires,
/// apart from the framing/hop-by-hop list, which has its own rule). Its estimated cost by the
/// API server's model is 898, its message's 1,625 (worked out in the operator README).
pub(super) fn header_keys_rule() -> String {
    format!("self.all(k, {})", valid_header_name("k"))
}

/// Message of [`header_keys_rule`], naming the first offending key.
pub(super) fn header_keys_message_expression() -> String {
    format!(
        "\"header name '\" + self.filter(k, !({}))[0] + \"' is not a lowercase RFC 9110 token \
         of at most {MAX_HEADER_NAME_BYTES} bytes (a-z, 0-9 and !#$%&'*+-.^_`|~)\"",
        valid_header_name("k")
    )
}

/// CEL: `var` is not a framing or hop-by-hop header name.
pub(super) fn forbidden_header_rule(var: &str) -> String {
    format!("!({var} in {FORBIDDEN})")
}

pub(super) fn header_map_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_HEADERS,
        "additionalProperties": {
            "type": "string",
            "maxLength": 4096,
            "pattern": HEADER_VALUE_PATTERN,
        },
        "x-kubernetes-validations": [{
            "rule": header_keys_rule(),
            "messageExpression": header_keys_message_expression(),
            "message": format!("header names must be lowercase RFC 9110 tokens of at most {MAX_HEADER_NAME_BYTES} bytes (a-z, 0-9 and !#$%&'*+-.^_`|~)"),
        }, {
            "rule": format!("!{RESERVED}.exists(h, h in self)"),
            "message": "must not set retry-after, ratelimit, ratelimit-policy or x-ratelimit-* (the filter writes them)",
        }, {
            "rule": format!("!{FORBIDDEN}.exists(h, h in self)"),
            "message": "must not set framing or hop-by-hop headers (connection, content-length, host, te, ...)",
        }],
    })
}

pub(super) fn header_list_schema(_: &mut SchemaGenerator) -> Schema {
    let mut schema = string_set(MAX_HEADERS, MAX_HEADER_NAME_BYTES, HEADER_NAME_PATTERN);
    schema.insert(
        "x-kubernetes-validations".into(),
        json!([{
            "rule": format!("!{FORBIDDEN}.exists(h, h in self)"),
            "message": "must not remove framing or hop-by-hop headers (connection, content-length, host, te, ...)",
        }]),
    );
    schema
}

/// A list of at most `max_items` distinct non-empty strings of at most `max_length` characters
/// matching `pattern`.
pub(super) fn string_set(max_items: usize, max_length: usize, pattern: &str) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": max_items,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": max_length,
            "pattern": pattern,
        },
    })
}

pub(super) fn match_labels_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 64,
        "additionalProperties": {
            "type": "string",
            "maxLength": 63,
            "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transformed(mut schema: Value) -> Value {
        let mut as_schema = Schema::try_from(schema.take()).unwrap_or_default();
        kubernetes_formats(&mut as_schema);
        as_schema.to_value()
    }

    #[test]
    fn unsigned_and_narrow_integers_become_int32_when_their_bounds_fit() {
        let got = transformed(
            json_schema!({"type": "integer", "format": "uint16", "minimum": 0, "maximum": 65535})
                .to_value(),
        );
        assert_eq!(got["format"], "int32");
        assert_eq!(got["maximum"], 65535);
    }

    #[test]
    fn integers_without_an_upper_bound_become_int64() {
        let got = transformed(
            json_schema!({"type": ["integer", "null"], "format": "uint32", "minimum": 0})
                .to_value(),
        );
        assert_eq!(got["format"], "int64");
    }

    #[test]
    fn unknown_number_and_string_formats_are_replaced_or_dropped_in_subschemas() {
        let got = transformed(
            json_schema!({"type": "object", "properties": {
                "f": {"type": "number", "format": "float32"},
                "s": {"type": "string", "format": "regex"},
                "t": {"type": "string", "format": "date-time"},
                "l": {"type": "array", "items": {"type": "integer", "format": "uint8", "minimum": 0, "maximum": 255}},
            }})
            .to_value(),
        );
        let props = &got["properties"];
        assert_eq!(props["f"]["format"], "double");
        assert!(props["s"].get("format").is_none());
        assert_eq!(props["t"]["format"], "date-time");
        assert_eq!(props["l"]["items"]["format"], "int32");
    }

    #[test]
    fn the_header_name_pattern_fits_in_a_double_quoted_cel_string() {
        assert!(!HEADER_NAME_PATTERN.contains(['"', '\\']));
    }
}
