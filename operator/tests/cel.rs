//! The CRD's own validation, evaluated client-side (see `cel_support`): examples, selector and
//! targetRefs, headers, rates, and the cost of the CEL rules.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

mod cel_support;

use cel_support::{rejected_with, rejections, schema};
use serde_json::{Value, json};

#[test]
fn every_example_is_accepted_by_the_schema_and_its_cel_rules() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    for entry in std::fs::read_dir(dir).expect("examples/").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("readable");
        let object: Value = serde_norway::from_str(&text).expect("YAML");
        let got = rejections(object["spec"].clone());
        assert!(got.is_empty(), "{}: {got:?}", entry.path().display());
    }
}

#[test]
fn selector_and_target_refs_are_exclusive_and_one_is_required() {
    let both = json!({"selector": {"matchLabels": {"a": "b"}}, "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g"}]});
    rejected_with(both, "exactly one of selector or targetRefs must be set");
    rejected_with(
        json!({"headers": {"x-a": "b"}}),
        "exactly one of selector or targetRefs must be set",
    );
}

#[test]
fn an_empty_selector_is_rejected() {
    rejected_with(
        json!({"selector": {"matchLabels": {}}}),
        "/spec/selector/matchLabels",
    );
}

#[test]
fn key_header_is_required_exactly_when_type_is_header() {
    let sel = json!({"matchLabels": {"a": "b"}});
    rejected_with(
        json!({"selector": sel, "rateLimit": {"tokensPerSecond": 1, "key": {"type": "Header"}}}),
        "header is required when type is Header",
    );
    rejected_with(
        json!({"selector": sel, "rateLimit": {"tokensPerSecond": 1, "key": {"type": "None", "header": "x"}}}),
        "header is required when type is Header",
    );
    assert!(rejections(json!({"selector": sel, "rateLimit": {"tokensPerSecond": 1, "key": {"type": "Header", "header": "x-k"}}})).is_empty());
}

#[test]
fn reserved_and_framing_headers_and_set_plus_remove_are_rejected() {
    let sel = json!({"matchLabels": {"a": "b"}});
    rejected_with(
        json!({"selector": sel, "headers": {"retry-after": "1"}}),
        "the filter writes them",
    );
    rejected_with(
        json!({"selector": sel, "rateLimit": {"tokensPerSecond": 1, "responseHeaders": {"x-ratelimit-limit": "1"}}}),
        "the filter writes them",
    );
    rejected_with(
        json!({"selector": sel, "headers": {"content-length": "1"}}),
        "framing or hop-by-hop",
    );
    rejected_with(
        json!({"selector": sel, "removeHeaders": ["transfer-encoding"]}),
        "framing or hop-by-hop",
    );
    rejected_with(
        json!({"selector": sel, "headers": {"x-a": "1"}, "removeHeaders": ["x-a"]}),
        "either set (headers) or removed",
    );
}

#[test]
fn header_map_keys_must_be_lowercase_tokens_and_the_message_names_the_key() {
    let sel = json!({"matchLabels": {"a": "b"}});
    for bad in ["Who-Am-I", "who am i", ":status", "x-\u{e9}t\u{e9}", ""] {
        let message = format!("header name '{bad}' is not a lowercase RFC 9110 token");
        rejected_with(json!({"selector": sel, "headers": {bad: "x"}}), &message);
        rejected_with(
            json!({"selector": sel, "rateLimit": {"tokensPerSecond": 1, "responseHeaders": {bad: "x"}}}),
            &message,
        );
    }
    let long = "x".repeat(257);
    rejected_with(
        json!({"selector": sel, "headers": {long.clone(): "x"}}),
        &format!("header name '{long}'"),
    );
    let valid = json!({"selector": sel, "headers": {"x-who-am-i": "1", "x!#$%&'*+.^_`|~-1": "2", &"x".repeat(256): "3"}, "rateLimit": {"tokensPerSecond": 1, "responseHeaders": {"x-a": "1"}}});
    let got = rejections(valid);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn header_maps_hold_at_most_64_entries() {
    let sel = json!({"matchLabels": {"a": "b"}});
    let headers: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("x-h{i}"), json!("1"))).collect();
    rejected_with(
        json!({"selector": sel, "headers": headers}),
        "/spec/headers",
    );
}

#[test]
fn bounds_and_patterns_are_in_the_schema() {
    let sel = json!({"matchLabels": {"a": "b"}});
    rejected_with(
        json!({"selector": sel, "rateLimit": {"tokensPerSecond": 0}}),
        "/spec/rateLimit/tokensPerSecond",
    );
    rejected_with(
        json!({"selector": sel, "rateLimit": {"tokensPerSecond": 1, "statusCode": 200}}),
        "/spec/rateLimit/statusCode",
    );
    rejected_with(
        json!({"selector": sel, "removeHeaders": ["Bad Name"]}),
        "/spec/removeHeaders/0",
    );
    rejected_with(
        json!({"selector": sel, "headers": {"x-a": "line\nbreak"}}),
        "/spec/headers/x-a",
    );
    rejected_with(
        json!({"targetRefs": [{"group": "", "kind": "Service", "name": "s"}]}),
        "/spec/targetRefs/0",
    );
    rejected_with(
        json!({"selector": {"matchLabels": {"a": "b*"}}}),
        "/spec/selector/matchLabels/a",
    );
}

/// kube-cel's estimator is a coarse heuristic, not the API server's cost model; it at least
/// catches rules over unbounded lists and strings. Each rule is checked at its schema node.
#[test]
fn no_cel_rule_is_estimated_over_the_api_server_budget() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            let compiled = kube_cel::compile_schema(node);
            for rule in rules.iter().filter_map(|r| r["rule"].as_str()) {
                for warning in kube_cel::estimate_rule_cost(rule, &compiled) {
                    out.push(format!("{path}: {rule}: {}", warning.message));
                }
            }
        }
        for key in ["properties"] {
            for (name, child) in node
                .get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                walk(child, &format!("{path}.{name}"), out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = node.get(key) {
                walk(child, &format!("{path}[]"), out);
            }
        }
    }
    let mut warnings = Vec::new();
    walk(&schema(), "", &mut warnings);
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn a_rate_is_either_tokens_per_second_or_tokens_per_a_period_of_1s_to_24h() {
    let limit = |rate: Value| json!({"selector": {"matchLabels": {"a": "b"}}, "rateLimit": rate});
    for ok in [
        json!({"tokensPerSecond": 2}),
        json!({"tokens": 5, "per": "1m"}),
        json!({"tokens": 1000, "per": "1h"}),
        json!({"tokens": 7, "per": "1h30m"}),
        json!({"tokens": 1, "per": "24h"}),
    ] {
        let got = rejections(limit(ok.clone()));
        assert!(got.is_empty(), "{ok}: {got:?}");
    }
    rejected_with(
        limit(json!({"tokensPerSecond": 2, "tokens": 5, "per": "1m"})),
        "set either tokensPerSecond, or tokens and per",
    );
    rejected_with(
        limit(json!({"burst": 2})),
        "set either tokensPerSecond, or tokens and per",
    );
    rejected_with(limit(json!({"tokens": 5})), "tokens and per go together");
    rejected_with(limit(json!({"per": "1m"})), "tokens and per go together");
    rejected_with(
        limit(json!({"tokens": 5, "per": "25h"})),
        "per must be between 1s and 24h",
    );
    rejected_with(
        limit(json!({"tokens": 5, "per": "0s"})),
        "per must be between 1s and 24h",
    );
    rejected_with(
        limit(json!({"tokens": 2000000, "per": "1s"})),
        "at most 1000000 per second",
    );
    // Units the filter has no use for are refused by the pattern.
    for bad in ["1d", "500ms", "1.5h", "m"] {
        let got = rejections(limit(json!({"tokens": 5, "per": bad})));
        assert!(!got.is_empty(), "{bad} must be rejected");
    }
}
