//! `spec.match` in the CRD, evaluated client-side (see `cel_support`): what the schema accepts
//! and rejects, and that it accepts exactly what the operator (the contract) accepts.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

mod cel_support;

use cel_support::{rejected_with, rejections};
use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::plan::plugin_config;
use serde_json::{Value, json};

/// A selector spec with `spec.match` = `matches`.
fn with_match(matches: Value) -> Value {
    json!({"selector": {"matchLabels": {"a": "b"}}, "match": matches})
}

/// A `spec.match` of one entry whose `field` is `sample`: a path's `exact` or `prefix`, a
/// header's `name` or `value` (of header x-a), else one item of the list `field`.
fn match_one(field: &str, sample: &str) -> Value {
    match field {
        "exact" | "prefix" => json!({"paths": [{field: sample}]}),
        "name" => json!({"headers": [{"name": sample}]}),
        "value" => json!({"headers": [{"name": "x-a", "value": sample}]}),
        _ => json!({field: [sample]}),
    }
}

#[test]
fn a_match_of_methods_paths_hosts_and_headers_is_accepted() {
    for ok in [
        json!({}),
        json!({"methods": ["POST", "GET", "PROPFIND", "M-SEARCH"]}),
        json!({"paths": [{"exact": "/login"}, {"prefix": "/api/v1/"}, {"prefix": "/"}, {"exact": "/a%2Fb;x=1~!$&'()*+,=:@"}]}),
        json!({"hosts": ["api.example.com", "*.api.example.com", "localhost", "10.0.0.1", "a-b.c0"]}),
        json!({"headers": [{"name": "x-tenant", "value": "beta"}, {"name": "authorization"}, {"name": "x-empty", "value": ""}]}),
        json!({"methods": ["POST"], "paths": [{"exact": "/login"}], "hosts": ["a.example.com"], "headers": [{"name": "x-a"}]}),
    ] {
        let got = rejections(with_match(ok.clone()));
        assert!(got.is_empty(), "{ok}: {got:?}");
    }
}

#[test]
fn a_path_has_exactly_one_of_exact_or_prefix() {
    for bad in [json!({"exact": "/a", "prefix": "/b"}), json!({})] {
        rejected_with(
            with_match(json!({"paths": [bad]})),
            "exactly one of exact or prefix must be set",
        );
    }
}

#[test]
fn bad_paths_methods_hosts_and_headers_are_rejected_at_their_field() {
    let long_path = format!("/{}", "a".repeat(1024));
    let long_method = "X".repeat(33);
    let long_label = format!("{}.com", "a".repeat(64));
    let long_host = format!("{}.com", vec!["a".repeat(63); 4].join("."));
    // (field, what the rejection contains, the values rejected there)
    let cases: [(&str, &str, &[&str]); 8] = [
        (
            "exact",
            "/spec/match/paths/0/exact",
            &["login", "/a#top", "/a b", "/caf\u{e9}", &long_path],
        ),
        ("prefix", "/spec/match/paths/0/prefix", &["/a?b=1"]),
        (
            "methods",
            "/spec/match/methods/0",
            &["GET POST", "", "G(ET", &long_method],
        ),
        (
            "hosts",
            "/spec/match/hosts/0",
            &[
                "Example.com",
                "a.com:80",
                "*",
                "*.",
                "a.com.",
                "-a.com",
                "a..com",
                "a.*.com",
                "*.*.com",
                &long_label,
                &long_host,
            ],
        ),
        (
            "name",
            "/spec/match/headers/0/name",
            &["X-Tenant", ":authority"],
        ),
        ("value", "/spec/match/headers/0/value", &["a\nb"]),
        ("name", "match the host with hosts", &["host"]),
        ("name", "framing or hop-by-hop", &["transfer-encoding"]),
    ];
    for (field, needle, samples) in cases {
        for sample in samples {
            rejected_with(with_match(match_one(field, sample)), needle);
        }
    }
    rejected_with(
        with_match(json!({"headers": [{"value": "v"}]})),
        "/spec/match/headers/0",
    );
}

#[test]
fn each_match_list_holds_at_most_16_entries_without_duplicates() {
    let seventeen = |item: fn(usize) -> Value| -> Vec<Value> { (0..17).map(item).collect() };
    for (list, items) in [
        ("methods", seventeen(|i| json!(format!("M{i}")))),
        ("paths", seventeen(|i| json!({"exact": format!("/{i}")}))),
        ("hosts", seventeen(|i| json!(format!("h{i}.com")))),
        ("headers", seventeen(|i| json!({"name": format!("x-{i}")}))),
    ] {
        rejected_with(
            with_match(json!({list: items})),
            &format!("/spec/match/{list}"),
        );
    }
    let duplicates = [
        (
            json!({"methods": ["GET", "POST", "GET"]}),
            "/spec/match/methods/2: Duplicate value",
        ),
        (
            json!({"paths": [{"exact": "/a"}, {"exact": "/a"}]}),
            "/spec/match/paths/1: Duplicate value",
        ),
        (
            json!({"hosts": ["a.com", "a.com"]}),
            "/spec/match/hosts/1: Duplicate value",
        ),
        // One entry per name, whatever the values.
        (
            json!({"headers": [{"name": "x-a", "value": "1"}, {"name": "x-a", "value": "2"}]}),
            "/spec/match/headers/1: Duplicate value",
        ),
    ];
    for (matches, message) in duplicates {
        rejected_with(with_match(matches), message);
    }
    // The same path as exact and as prefix are two rules, not a duplicate.
    let got = rejections(with_match(
        json!({"paths": [{"exact": "/a"}, {"prefix": "/a"}], "hosts": ["a.com", "*.a.com"]}),
    ));
    assert!(got.is_empty(), "{got:?}");
    rejected_with(
        json!({"selector": {"matchLabels": {"a": "b"}}, "removeHeaders": ["x-a", "x-a"]}),
        "/spec/removeHeaders/1: Duplicate value",
    );
}

/// The schema mirrors the contract: every value one accepts, the other does (the operator's
/// check of a spec is the contract's, under the CRD's field paths). One known gap is left out
/// of the table: the schema bounds a header value in characters (`maxLength`), the contract in
/// bytes, so 4096 characters with some non-ASCII pass the schema and fail the operator.
#[test]
fn the_schema_and_the_operator_agree_on_every_match_value() {
    let values = |field: &str, samples: &[&str]| -> Vec<Value> {
        samples.iter().map(|s| match_one(field, s)).collect()
    };
    let long = "a".repeat(1023);
    let path = format!("/{long}");
    let path_over = format!("/{long}a");
    let label = "b".repeat(63);
    let host = format!("{label}.{label}.{label}.{}", "c".repeat(61));
    let host_over = format!("{host}c");
    let mut cases = Vec::new();
    for field in ["exact", "prefix"] {
        cases.extend(values(
            field,
            &[
                "/", "/a/b/", "/%2F", "//x", "a", "/?", "/#", "/ ", "/\u{e9}", "", &path,
                &path_over,
            ],
        ));
    }
    cases.extend(values(
        "methods",
        &[
            "GET",
            "get",
            "M-SEARCH",
            "~!#$%&'*+.^_`|",
            "",
            "A B",
            "A/B",
            "(",
            &"M".repeat(32),
            &"M".repeat(33),
        ],
    ));
    cases.extend(values(
        "hosts",
        &[
            "a.com",
            "*.a.com",
            "a",
            "1.2.3.4",
            "xn--bcher-kva.example",
            "A.com",
            "a.com:1",
            "*",
            "*.",
            "**.a.com",
            "a.com.",
            ".a.com",
            "-a",
            "a-",
            "a_b.com",
            "",
            &host,
            &host_over,
        ],
    ));
    cases.extend(values(
        "name",
        &[
            "x-a",
            "a!#$%&'*+.^_`|~-1",
            "X-A",
            ":path",
            "a b",
            "",
            "connection",
            "te",
            "host",
            &"x".repeat(256),
            &"x".repeat(257),
        ],
    ));
    cases.extend(values(
        "value",
        &[
            "",
            "a b",
            "\tx",
            "a\u{e9}",
            "a\rb",
            "a\u{7f}",
            &"v".repeat(4096),
            &"v".repeat(4097),
        ],
    ));
    for matches in cases {
        let spec = with_match(matches.clone());
        let schema_ok = rejections(spec.clone()).is_empty();
        let hrl: HeaderRateLimit = serde_json::from_value(json!({
            "apiVersion": "hrl.dev/v1alpha1", "kind": "HeaderRateLimit",
            "metadata": {"name": "x", "namespace": "default"}, "spec": spec,
        }))
        .expect("decodes");
        let operator = plugin_config(&hrl);
        assert_eq!(
            schema_ok,
            operator.is_ok(),
            "{matches}: schema {}, operator {operator:?}",
            if schema_ok { "accepts" } else { "rejects" }
        );
    }
}
