#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;

use hrl_plugin_config::{HeaderMatch, Match, PathMatch};

use super::*;

/// A request as header name → value; remembers which headers were read.
struct Request {
    headers: Vec<(&'static str, &'static str)>,
    read: RefCell<Vec<String>>,
}

fn request(headers: &[(&'static str, &'static str)]) -> Request {
    Request {
        headers: headers.to_vec(),
        read: RefCell::new(Vec::new()),
    }
}

impl Request {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.read.borrow_mut().push(name.to_owned());
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes().to_vec())
    }
}

fn compiled(m: Match) -> RequestMatch {
    RequestMatch::compile(&m).expect("a restricting match")
}

fn matches(m: &RequestMatch, headers: &[(&'static str, &'static str)]) -> bool {
    let req = request(headers);
    m.matches(|name| req.header(name))
}

fn paths(paths: Vec<PathMatch>) -> RequestMatch {
    compiled(Match {
        paths,
        ..Match::default()
    })
}

fn path_matches(m: &RequestMatch, path: &'static str) -> bool {
    matches(m, &[(":path", path)])
}

fn hosts(hosts: &[&str]) -> RequestMatch {
    compiled(Match {
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ..Match::default()
    })
}

fn host_matches(m: &RequestMatch, authority: &'static str) -> bool {
    matches(m, &[(":authority", authority)])
}

#[test]
fn an_empty_match_compiles_to_nothing() {
    assert_eq!(RequestMatch::compile(&Match::default()), None);
}

#[test]
fn methods_match_any_listed_exactly() {
    let m = compiled(Match {
        methods: vec!["POST".into(), "PUT".into()],
        ..Match::default()
    });
    assert!(matches(&m, &[(":method", "POST")]));
    assert!(matches(&m, &[(":method", "PUT")]));
    assert!(!matches(&m, &[(":method", "GET")]));
    assert!(
        !matches(&m, &[(":method", "post")]),
        "methods are case-sensitive"
    );
    assert!(!matches(&m, &[]), "no method, no match");
}

#[test]
fn a_prefix_matches_whole_path_elements() {
    let m = paths(vec![PathMatch::Prefix("/login".into())]);
    for yes in [
        "/login",
        "/login/",
        "/login/x",
        "/login?next=/",
        "/login/x/y?z",
    ] {
        assert!(path_matches(&m, yes), "{yes}");
    }
    for no in [
        "/loginx",
        "/logi",
        "/",
        "/Login",
        "/api/login",
        "",
        "/login%2Fx",
    ] {
        assert!(!path_matches(&m, no), "{no}");
    }
    // `%2F` is not a separator: the filter compares what the proxy hands it.
    let encoded = paths(vec![PathMatch::Prefix("/a%2Fb".into())]);
    assert!(path_matches(&encoded, "/a%2Fb/c"));
    assert!(!path_matches(&encoded, "/a/b/c"));
}

#[test]
fn a_trailing_slash_in_a_prefix_is_ignored_and_the_root_prefix_matches_everything() {
    let m = paths(vec![PathMatch::Prefix("/api/".into())]);
    assert!(path_matches(&m, "/api"));
    assert!(path_matches(&m, "/api/v1"));
    assert!(!path_matches(&m, "/apiv1"));
    let root = paths(vec![PathMatch::Prefix("/".into())]);
    for yes in ["/", "/x", "/x/y?z", "/?q"] {
        assert!(path_matches(&root, yes), "{yes}");
    }
}

#[test]
fn an_exact_path_ignores_the_query_and_nothing_else() {
    let m = paths(vec![PathMatch::Exact("/login".into())]);
    assert!(path_matches(&m, "/login"));
    assert!(path_matches(&m, "/login?user=a"));
    assert!(!path_matches(&m, "/login/"));
    assert!(!path_matches(&m, "/login/x"));
    assert!(!path_matches(&m, "/LOGIN"));
}

#[test]
fn any_of_several_paths_matches() {
    let m = paths(vec![
        PathMatch::Exact("/login".into()),
        PathMatch::Prefix("/api".into()),
    ]);
    assert!(path_matches(&m, "/login"));
    assert!(path_matches(&m, "/api/x"));
    assert!(!path_matches(&m, "/other"));
}

#[test]
fn hosts_compare_without_port_and_case() {
    let m = hosts(&["shop.example.com"]);
    for yes in [
        "shop.example.com",
        "SHOP.Example.COM",
        "shop.example.com:8443",
        "shop.example.com.",
        "shop.example.com.:80",
    ] {
        assert!(host_matches(&m, yes), "{yes}");
    }
    for no in [
        "example.com",
        "a.shop.example.com",
        "shop.example.co",
        "",
        ":80",
    ] {
        assert!(!host_matches(&m, no), "{no}");
    }
}

#[test]
fn a_wildcard_host_matches_names_under_it_but_not_itself() {
    let m = hosts(&["*.example.com"]);
    for yes in ["a.example.com", "a.b.example.com:80", "A.EXAMPLE.com"] {
        assert!(host_matches(&m, yes), "{yes}");
    }
    for no in [
        "example.com",
        ".example.com",
        "aexample.com",
        "example.com.evil.org",
    ] {
        assert!(!host_matches(&m, no), "{no}");
    }
}

#[test]
fn ipv6_literals_keep_their_brackets() {
    assert_eq!(host_of(b"[::1]:8080"), b"[::1]");
    assert_eq!(host_of(b"[::1]"), b"[::1]");
    assert_eq!(host_of(b"10.0.0.1:80"), b"10.0.0.1");
    assert_eq!(host_of(b"[::1"), b"[::1");
}

#[test]
fn headers_must_all_be_present_with_their_value_when_one_is_given() {
    let m = compiled(Match {
        headers: vec![
            HeaderMatch {
                name: "x-tenant".into(),
                value: Some("beta".into()),
            },
            HeaderMatch {
                name: "x-debug".into(),
                value: None,
            },
        ],
        ..Match::default()
    });
    assert!(matches(&m, &[("x-tenant", "beta"), ("x-debug", "")]));
    assert!(matches(&m, &[("x-tenant", "beta"), ("x-debug", "1")]));
    assert!(!matches(&m, &[("x-tenant", "beta")]), "x-debug missing");
    assert!(!matches(&m, &[("x-tenant", "Beta"), ("x-debug", "1")]));
    assert!(!matches(&m, &[("x-debug", "1")]), "x-tenant missing");
}

#[test]
fn all_fields_must_match_and_a_failed_rule_reads_no_further_headers() {
    let m = compiled(Match {
        methods: vec!["POST".into()],
        paths: vec![PathMatch::Exact("/login".into())],
        hosts: vec!["a.com".into()],
        headers: vec![HeaderMatch {
            name: "x-tenant".into(),
            value: None,
        }],
    });
    let all = [
        (":method", "POST"),
        (":path", "/login"),
        (":authority", "a.com"),
        ("x-tenant", "t"),
    ];
    assert!(matches(&m, &all));
    let get = request(&[(":method", "GET"), (":path", "/login")]);
    assert!(!m.matches(|name| get.header(name)));
    assert_eq!(*get.read.borrow(), vec![":method"]);
    for missing in 0..all.len() {
        let some: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, h)| *h)
            .collect();
        assert!(!matches(&m, &some), "without {:?}", all[missing]);
    }
}
