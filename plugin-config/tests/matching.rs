//! `match`: each rule names its field, and a match makes the configuration contract 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hrl_plugin_config::{HeaderMatch, Match, PathMatch, PluginConfig, RateLimit};

fn with_match(m: Match) -> PluginConfig {
    PluginConfig {
        policy: "default/login".into(),
        response_headers: Vec::new(),
        remove_response_headers: Vec::new(),
        rate_limit: Some(RateLimit::new(2, 2)),
        matches: Some(m),
    }
}

#[track_caller]
fn rejects(m: Match, field: &str, rule_contains: &str) {
    let err = with_match(m)
        .validate()
        .expect_err("match should be invalid");
    assert_eq!(err.field, field, "{err}");
    assert!(err.rule.contains(rule_contains), "{err}");
}

fn methods(methods: &[&str]) -> Match {
    Match {
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        ..Match::default()
    }
}

#[test]
fn a_full_match_is_valid_and_is_contract_two() {
    let config = with_match(Match {
        methods: vec!["GET".into(), "PURGE".into()],
        paths: vec![
            PathMatch::Exact("/login".into()),
            PathMatch::Prefix("/".into()),
        ],
        hosts: vec!["example.com".into(), "*.example.com".into()],
        headers: vec![HeaderMatch {
            name: "x-tenant".into(),
            value: None,
        }],
    });
    config.validate().unwrap();
    assert_eq!(config.version(), 2);
    let json = config.to_json().unwrap();
    assert!(json.starts_with(r#"{"version":2,"#), "{json}");
    assert!(
        json.contains(r#""match":{"methods":["GET","PURGE"]"#),
        "{json}"
    );
    assert_eq!(PluginConfig::from_json(json.as_bytes()).unwrap(), config);
}

#[test]
fn an_empty_match_still_needs_contract_two() {
    // `match: {}` means every request, but only a contract 2 reader knows the field at all.
    assert_eq!(with_match(Match::default()).version(), 2);
}

#[test]
fn methods_are_tokens_without_duplicates_and_at_most_sixteen() {
    rejects(methods(&[""]), "match.methods[0]", "HTTP method token");
    rejects(
        methods(&["GET", "PO ST"]),
        "match.methods[1]",
        "HTTP method token",
    );
    rejects(
        methods(&[&"A".repeat(33)]),
        "match.methods[0]",
        "at most 32",
    );
    rejects(methods(&["GET", "GET"]), "match.methods[1]", "duplicate");
    let many: Vec<String> = (0..17).map(|i| format!("M{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    rejects(methods(&many), "match.methods", "at most 16");
    with_match(methods(&many[..16])).validate().unwrap();
}

#[test]
fn paths_start_with_a_slash_and_carry_no_query() {
    let paths = |paths: Vec<PathMatch>| Match {
        paths,
        ..Match::default()
    };
    let rule = "must start with '/'";
    rejects(
        paths(vec![PathMatch::Exact("login".into())]),
        "match.paths[0].exact",
        rule,
    );
    rejects(
        paths(vec![PathMatch::Prefix(String::new())]),
        "match.paths[0].prefix",
        rule,
    );
    rejects(
        paths(vec![PathMatch::Exact("/a?b=1".into())]),
        "match.paths[0].exact",
        rule,
    );
    rejects(
        paths(vec![PathMatch::Prefix("/a#x".into())]),
        "match.paths[0].prefix",
        rule,
    );
    rejects(
        paths(vec![PathMatch::Exact("/a b".into())]),
        "match.paths[0].exact",
        rule,
    );
    let long = format!("/{}", "a".repeat(1024));
    rejects(
        paths(vec![PathMatch::Prefix(long)]),
        "match.paths[0].prefix",
        rule,
    );
    let twice = vec![
        PathMatch::Prefix("/a".into()),
        PathMatch::Prefix("/a".into()),
    ];
    rejects(paths(twice), "match.paths[1]", "duplicate");
    // The same text as exact and as prefix are two different rules.
    let both = vec![
        PathMatch::Exact("/a".into()),
        PathMatch::Prefix("/a".into()),
    ];
    with_match(paths(both)).validate().unwrap();
    let percent = vec![PathMatch::Exact("/caf%C3%A9".into())];
    with_match(paths(percent)).validate().unwrap();
}

#[test]
fn a_path_written_twice_forms_is_refused_on_the_wire() {
    let json = r#"{"version":2,"policy":"a/b","match":{"paths":[{"exact":"/a","prefix":"/a"}]}}"#;
    let err = PluginConfig::from_json(json.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("pluginConfig is not valid"),
        "{err}"
    );
}

#[test]
fn hosts_are_lowercase_dns_names_or_one_leading_wildcard() {
    let hosts = |hosts: &[&str]| Match {
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ..Match::default()
    };
    for good in ["example.com", "*.example.com", "localhost", "a-1.b2.c"] {
        with_match(hosts(&[good])).validate().unwrap();
    }
    for bad in [
        "",
        "Example.com",
        "example.com:8080",
        "*",
        "*.",
        "a.*.com",
        "**.example.com",
        "-a.com",
        "a..com",
        "example.com.",
    ] {
        rejects(hosts(&[bad]), "match.hosts[0]", "lowercase DNS name");
    }
    let long = format!("{}.com", "a.".repeat(125));
    rejects(hosts(&[&long]), "match.hosts[0]", "at most 253");
    rejects(hosts(&["a.com", "a.com"]), "match.hosts[1]", "duplicate");
}

#[test]
fn headers_have_valid_names_and_values_without_duplicates() {
    let headers = |list: Vec<(&str, Option<&str>)>| Match {
        headers: list
            .into_iter()
            .map(|(name, value)| HeaderMatch {
                name: name.into(),
                value: value.map(Into::into),
            })
            .collect(),
        ..Match::default()
    };
    rejects(
        headers(vec![("X-Tenant", None)]),
        "match.headers[0].name",
        "lowercase",
    );
    rejects(
        headers(vec![(":path", None)]),
        "match.headers[0].name",
        "pseudo-header",
    );
    rejects(
        headers(vec![("x-a", Some("1")), ("x-a", Some("2"))]),
        "match.headers[1].name",
        "duplicate",
    );
    rejects(
        headers(vec![("x-a", Some("a\nb"))]),
        "match.headers[0].value",
        "control characters",
    );
    let many: Vec<String> = (0..17).map(|i| format!("x-{i}")).collect();
    let list = many.iter().map(|n| (n.as_str(), None)).collect();
    rejects(headers(list), "match.headers", "at most 16");
}

#[test]
fn a_config_that_declares_version_one_but_uses_contract_two_fields_is_refused() {
    for json in [
        r#"{"version":1,"policy":"a/b","rateLimit":{"tokens":5,"periodSeconds":60,"burst":5}}"#,
        r#"{"policy":"a/b","rateLimit":{"tokens":5,"periodSeconds":60,"burst":5}}"#,
        r#"{"version":1,"policy":"a/b","match":{"methods":["GET"]}}"#,
    ] {
        let err = PluginConfig::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pluginConfig is not valid: version: must be 2 or more: rateLimit.periodSeconds, \
             rateLimit.service and match are contract 2 fields",
            "{json}"
        );
    }
}
