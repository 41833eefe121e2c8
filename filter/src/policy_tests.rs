use hrl_plugin_config::PluginConfig;

use super::*;

fn fixture(name: &str) -> PluginConfig {
    let path = format!(
        "{}/../plugin-config/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    PluginConfig::from_json(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_golden_fixture_compiles() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugin-config/tests/fixtures"
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let config = PluginConfig::from_json(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let policy = Policy::compile(&config);
            assert_eq!(policy.id, config.policy);
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the golden fixtures in {dir}");
}

#[test]
fn full_fixture_compiles_to_keyed_ietf_policy() {
    let policy = Policy::compile(&fixture("full.json"));
    assert_eq!(policy.id, "default/httpbin");
    assert_eq!(policy.response_headers.len(), 4);
    assert_eq!(policy.remove_headers, vec!["x-powered-by".to_string()]);
    let limit = policy.limit.expect("rate limit");
    assert_eq!(limit.rate, Rate::new(2, 2));
    assert_eq!(limit.key, KeySource::Header("x-api-key".into()));
    assert_eq!(limit.max_keys, 100);
    assert_eq!(limit.status_code, 429);
    assert_eq!(limit.body, "rate limited, wait and retry.\n");
    assert_eq!(
        limit.headers,
        vec![("powered-by".into(), "hrl-filter".into())]
    );
    assert_eq!(
        limit.style,
        HeaderStyle::Ietf {
            policy: r#""httpbin";q=2;w=1"#.into(),
            item: r#""httpbin""#.into()
        }
    );
    assert!(limit.enforce);
    assert_eq!(limit.keys.single, "hrl/v1/default/httpbin/b");
    assert_eq!(limit.keys.slot(7), "hrl/v1/default/httpbin/s/7");
}

#[test]
fn headers_only_fixture_has_no_limit() {
    let policy = Policy::compile(&fixture("headers-only.json"));
    assert!(policy.limit.is_none());
    assert_eq!(
        policy.response_headers,
        vec![("x-content-type-options".into(), "nosniff".into())]
    );
}

#[test]
fn minimal_fixture_gets_the_contract_defaults() {
    let limit = Policy::compile(&fixture("minimal.json"))
        .limit
        .expect("rate limit");
    assert_eq!(limit.key, KeySource::None);
    assert_eq!(limit.max_keys, hrl_plugin_config::DEFAULT_MAX_KEYS);
    assert_eq!(limit.status_code, 429);
    assert_eq!(limit.body, hrl_plugin_config::DEFAULT_BODY);
    assert!(matches!(limit.style, HeaderStyle::Ietf { .. }));
    assert!(limit.enforce);
}

#[test]
fn dry_run_fixture_compiles_to_a_non_enforcing_draft03_policy() {
    let limit = Policy::compile(&fixture("client-address-dry-run.json"))
        .limit
        .expect("rate limit");
    assert!(!limit.enforce);
    assert_eq!(limit.key, KeySource::ClientAddress);
    assert_eq!(limit.style, HeaderStyle::Draft03 { limit: "10".into() });
}

#[test]
fn metric_names_carry_namespace_and_name() {
    assert_eq!(
        metric_names("shop/checkout"),
        [
            "hrl.shop.checkout.requests",
            "hrl.shop.checkout.allowed",
            "hrl.shop.checkout.limited",
            "hrl.shop.checkout.dry_run_limited",
            "hrl.shop.checkout.cas_exhausted",
            "hrl.shop.checkout.overflow",
            "hrl.shop.checkout.skipped",
            "hrl.shop.checkout.rls_errors",
            "hrl.shop.checkout.rls_timeouts",
        ]
        .map(String::from)
    );
}

#[test]
fn two_policies_never_share_shared_data_keys() {
    let (a, b) = (StoreKeys::new("ns/a"), StoreKeys::new("ns/b"));
    assert_ne!(a.single, b.single);
    assert_ne!(a.slot(0), b.slot(0));
    assert_eq!(a.missing, "hrl/v1/ns/a/m");
    assert_eq!(a.overflow, "hrl/v1/ns/a/o");
}

#[test]
fn a_single_bucket_policy_prepares_one_bucket_and_a_keyed_one_its_missing_and_overflow_buckets() {
    let single = Policy::compile(&fixture("minimal.json"))
        .limit
        .expect("rate limit");
    assert_eq!(single.named_buckets(), vec![single.keys.single.as_str()]);
    let keyed = Policy::compile(&fixture("full.json"))
        .limit
        .expect("rate limit");
    assert_eq!(
        keyed.named_buckets(),
        vec!["hrl/v1/default/httpbin/m", "hrl/v1/default/httpbin/o"]
    );
}
