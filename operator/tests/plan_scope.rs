//! Table tests of `plan` for `spec.rateLimit.scope`: a Workload rate split across the counted
//! pods, a Cluster rate sent to the installation's rate limit service, and every refusal.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code: failing loudly is the point

use hrl_operator::conditions::{self, Outcome, reason};
use hrl_operator::crd::HeaderRateLimit;
use hrl_operator::crd::{CLUSTER_BURST_MESSAGE, CLUSTER_PERIOD_MESSAGE, FAILURE_MODE_MESSAGE};
use hrl_operator::plan::{Observed, Plan, RlsSettings, Settings, plan, plugin_config};
use hrl_operator::render::parse_documents;
use hrl_plugin_config::{FailureMode, PluginConfig, RateLimitService};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const SELECTOR: &str = "selector: {matchLabels: {app: web}}\n";

fn hrl(spec: &str) -> HeaderRateLimit {
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    let yaml = format!(
        "apiVersion: hrl.dev/v1alpha1\nkind: HeaderRateLimit\nmetadata:\n  name: web\n  namespace: shop\n  uid: u-1\nspec:\n{indented}"
    );
    parse_documents(&yaml).expect("fixture parses").remove(0)
}

fn limit(rate: &str) -> HeaderRateLimit {
    hrl(&format!("{SELECTOR}rateLimit: {{{rate}}}"))
}

fn with_rls() -> Settings {
    Settings {
        rls: Some(
            RlsSettings::new(
                "ratelimit.hrl-system.svc.cluster.local:8081",
                "hrl",
                "250ms",
            )
            .expect("valid"),
        ),
        ..Settings::default()
    }
}

fn counted(replicas: u32) -> Observed {
    Observed {
        replicas: Some(replicas),
    }
}

/// The pluginConfig of a plan, as JSON.
fn config(planned: &Plan) -> Value {
    let wp = planned.wasm_plugin.as_ref().expect("valid plan");
    wp.spec.plugin_config.clone().expect("a pluginConfig")
}

#[test]
fn a_workload_rate_is_split_exactly_across_the_counted_pods_and_reported() {
    // (rate, observed, wire rate fields, wire burst, status share, status replicas)
    type Case = (
        &'static str,
        Observed,
        Value,
        u32,
        &'static str,
        Option<u32>,
    );
    let cases: [Case; 8] = [
        (
            "tokensPerSecond: 100",
            counted(4),
            json!({"tokensPerSecond": 25}),
            25,
            "25/s",
            Some(4),
        ),
        (
            "tokensPerSecond: 100",
            counted(3),
            json!({"tokens": 100, "periodSeconds": 3}),
            34,
            "100/3s",
            Some(3),
        ),
        (
            "tokens: 5, per: 1m",
            counted(10),
            json!({"tokens": 1, "periodSeconds": 120}),
            1,
            "1/2m",
            Some(10),
        ),
        (
            "tokensPerSecond: 10, burst: 10",
            counted(4),
            json!({"tokens": 5, "periodSeconds": 2}),
            3,
            "5/2s",
            Some(4),
        ),
        (
            "tokens: 1000, per: 1h",
            counted(1),
            json!({"tokens": 1000, "periodSeconds": 3600}),
            1000,
            "1000/1h",
            Some(1),
        ),
        // No pod serves: the whole rate stays, for the next pod to start with.
        (
            "tokensPerSecond: 100",
            counted(0),
            json!({"tokensPerSecond": 100}),
            100,
            "100/s",
            Some(0),
        ),
        // Not counted (offline render): as one proxy of one, and no replicas reported.
        (
            "tokensPerSecond: 100",
            Observed::default(),
            json!({"tokensPerSecond": 100}),
            100,
            "100/s",
            None,
        ),
        (
            "tokens: 1, per: 24h",
            counted(10_000),
            json!({"tokens": 1, "periodSeconds": 864_000_000}),
            1,
            "1/240000h",
            Some(10_000),
        ),
    ];
    for (rate, observed, wire, burst, share, replicas) in cases {
        let planned = plan(
            &limit(&format!("{rate}, scope: Workload")),
            &Settings::default(),
            &observed,
        );
        let got = config(&planned);
        let limit = &got["rateLimit"];
        // A 1 s share is written in the contract 1 form; any other in the general one.
        for field in ["tokensPerSecond", "tokens", "periodSeconds"] {
            assert_eq!(
                limit.get(field),
                wire.get(field),
                "{rate} at {observed:?}: {field}"
            );
        }
        assert_eq!(limit["burst"], burst, "{rate} at {observed:?}: burst");
        let version = if wire.get("periodSeconds").is_some() {
            json!(2)
        } else {
            Value::Null
        };
        assert_eq!(
            got.get("version").cloned().unwrap_or(Value::Null),
            version,
            "{rate}"
        );
        assert_eq!(planned.scoped.share.as_deref(), Some(share), "{rate}");
        assert_eq!(planned.scoped.replicas, replicas, "{rate}");
        assert_eq!(planned.scoped.service, None);
        let whole = planned.rate.clone().expect("a rate");
        assert!(!whole.is_empty(), "status.rate stays the whole rate");
    }
    assert_eq!(
        plan(
            &limit("tokensPerSecond: 100, scope: Workload"),
            &Settings::default(),
            &counted(3)
        )
        .rate
        .as_deref(),
        Some("100/s"),
        "status.rate is the policy's rate, status.share one proxy's"
    );
}

#[test]
fn the_parsed_workload_config_is_what_the_filter_reads() {
    let planned = plan(
        &limit("tokensPerSecond: 100, scope: Workload"),
        &Settings::default(),
        &counted(3),
    );
    let bytes = serde_json::to_vec(&config(&planned)).expect("json");
    let parsed = PluginConfig::from_json(&bytes).expect("the filter's contract accepts it");
    let limit = parsed.rate_limit.expect("a limit");
    assert_eq!(
        (limit.tokens, limit.period_seconds, limit.burst),
        (100, 3, 34)
    );
    assert_eq!(limit.service, None, "Workload keeps the proxy's own bucket");
}

#[test]
fn proxy_scope_spelled_out_is_the_default() {
    let default = plan(
        &limit("tokensPerSecond: 7"),
        &Settings::default(),
        &counted(5),
    );
    let spelled = plan(
        &limit("tokensPerSecond: 7, scope: Proxy"),
        &Settings::default(),
        &counted(5),
    );
    assert_eq!(config(&default), config(&spelled));
    assert_eq!(
        config(&default)["rateLimit"]["tokensPerSecond"],
        7,
        "not split"
    );
    assert_eq!(default.scoped, spelled.scoped);
    assert_eq!(spelled.scoped.replicas, None, "replicas only for Workload");
}

#[test]
fn a_cluster_rate_is_sent_to_the_installations_rate_limit_service() {
    let planned = plan(
        &limit(
            "tokens: 100, per: 1m, scope: Cluster, failureMode: Deny, key: {type: Header, header: x-api-key}",
        ),
        &with_rls(),
        &counted(3),
    );
    let got = config(&planned);
    assert_eq!(got["version"], 2);
    assert_eq!(
        got["rateLimit"]["tokens"], 100,
        "never split: the service counts for all"
    );
    assert_eq!(got["rateLimit"]["periodSeconds"], 60);
    let parsed = PluginConfig::from_json(&serde_json::to_vec(&got).expect("json"))
        .expect("the filter's contract accepts it");
    assert_eq!(
        parsed.rate_limit.and_then(|l| l.service),
        Some(RateLimitService {
            cluster: "outbound|8081||ratelimit.hrl-system.svc.cluster.local".into(),
            authority: "ratelimit.hrl-system.svc.cluster.local".into(),
            domain: "hrl".into(),
            timeout_ms: 250,
            failure_mode: FailureMode::Deny,
        })
    );
    assert_eq!(
        planned.scoped.service.as_deref(),
        Some("ratelimit.hrl-system.svc.cluster.local:8081 (domain hrl)")
    );
    assert_eq!(
        (planned.scoped.replicas, planned.scoped.share),
        (None, None)
    );
    let [_, programmed, _] = conditions::desired_using(
        &Outcome::Applied,
        &planned.wasm_plugin_name,
        planned.scoped.service.as_deref(),
    );
    assert_eq!(
        programmed.message,
        "WasmPlugin hrl-web is applied and matches the spec; the rate limit service \
         ratelimit.hrl-system.svc.cluster.local:8081 (domain hrl) keeps the count"
    );
    let allow = plan(
        &limit("tokensPerSecond: 5, scope: Cluster"),
        &with_rls(),
        &Observed::default(),
    );
    assert_eq!(
        config(&allow)["rateLimit"]["service"]["failureMode"],
        "allow",
        "Allow by default"
    );
    assert_eq!(config(&allow)["rateLimit"]["tokensPerSecond"], 5);
}

#[test]
fn a_cluster_policy_without_a_configured_service_is_not_accepted_and_says_what_to_set() {
    let planned = plan(
        &limit("tokensPerSecond: 5, scope: Cluster"),
        &Settings::default(),
        &Observed::default(),
    );
    let error = planned.wasm_plugin.expect_err("nothing to apply");
    assert_eq!(error.reason, reason::RATE_LIMIT_SERVICE_NOT_CONFIGURED);
    assert_eq!(error.field, "spec.rateLimit.scope");
    for needle in [
        "rateLimitService.address",
        "--rls-service",
        "rateLimitService.bundled.enabled",
    ] {
        assert!(error.rule.contains(needle), "{needle}: {error}");
    }
    let outcome = Outcome::NotAccepted {
        reason: error.reason,
        message: error.to_string(),
    };
    let [accepted, programmed, ready] = conditions::desired(&outcome, "hrl-web");
    assert_eq!(
        (accepted.status, accepted.reason, accepted.message.as_str()),
        (
            false,
            "RateLimitServiceNotConfigured",
            error.to_string().as_str()
        )
    );
    assert_eq!(
        (programmed.status, programmed.reason),
        (false, "RateLimitServiceNotConfigured")
    );
    assert_eq!(
        (ready.status, ready.reason),
        (false, "RateLimitServiceNotConfigured")
    );
    // The playground's path (no settings) refuses it the same way rather than run it locally.
    let offline = plugin_config(&limit("tokensPerSecond: 5, scope: Cluster")).expect_err("refused");
    assert_eq!(offline.reason, reason::RATE_LIMIT_SERVICE_NOT_CONFIGURED);
}

#[test]
fn a_cluster_rate_is_per_second_minute_hour_or_day_in_any_spelling() {
    for rate in [
        "tokensPerSecond: 5",
        "tokens: 5, per: 1s",
        "tokens: 5, per: 1m",
        "tokens: 5, per: 60s",
        "tokens: 5, per: 1h",
        "tokens: 5, per: 60m",
        "tokens: 5, per: 3600s",
        "tokens: 5, per: 24h",
        "tokens: 5, per: 1440m",
    ] {
        let planned = plan(
            &limit(&format!("{rate}, scope: Cluster")),
            &with_rls(),
            &Observed::default(),
        );
        assert!(
            planned.wasm_plugin.is_ok(),
            "{rate}: {:?}",
            planned.wasm_plugin.err()
        );
    }
    for rate in [
        "tokens: 5, per: 30s",
        "tokens: 5, per: 90m",
        "tokens: 5, per: 2h",
        "tokens: 5, per: 1h30m",
    ] {
        let planned = plan(
            &limit(&format!("{rate}, scope: Cluster")),
            &with_rls(),
            &Observed::default(),
        );
        assert_eq!(
            planned.wasm_plugin.map(|_| ()).map_err(|e| e.to_string()),
            Err(format!("spec.rateLimit.per: {CLUSTER_PERIOD_MESSAGE}")),
            "{rate}"
        );
    }
}

#[test]
fn burst_with_cluster_and_failure_mode_without_it_are_invalid_and_name_the_field() {
    let cases = [
        (
            "tokensPerSecond: 5, burst: 10, scope: Cluster",
            format!("spec.rateLimit.burst: {CLUSTER_BURST_MESSAGE}"),
        ),
        (
            "tokensPerSecond: 5, failureMode: Deny",
            format!("spec.rateLimit.failureMode: {FAILURE_MODE_MESSAGE}"),
        ),
        (
            "tokensPerSecond: 5, scope: Workload, failureMode: Allow",
            format!("spec.rateLimit.failureMode: {FAILURE_MODE_MESSAGE}"),
        ),
    ];
    for (rate, want) in cases {
        let error = plan(&limit(rate), &with_rls(), &counted(2))
            .wasm_plugin
            .expect_err(rate);
        assert_eq!(error.to_string(), want, "{rate}");
        assert_eq!(error.reason, reason::INVALID, "{rate}");
    }
}

#[test]
fn scoped_policies_need_contract_two_at_any_count_and_the_refusal_names_scope() {
    let old_filter = Settings {
        filter_contract: 1,
        ..with_rls()
    };
    // 100/s over 4 pods is 25/s, a contract 1 rate, but at 3 pods it would not be: refused at
    // any count so scaling never flips Accepted.
    for (rate, observed) in [
        ("tokensPerSecond: 100, scope: Workload", counted(4)),
        ("tokensPerSecond: 100, scope: Workload", counted(3)),
        ("tokensPerSecond: 100, scope: Cluster", Observed::default()),
    ] {
        let error = plan(&limit(rate), &old_filter, &observed)
            .wasm_plugin
            .expect_err(rate);
        assert_eq!(error.field, "spec.rateLimit.scope", "{rate}");
        assert!(error.rule.contains("contract version 2"), "{error}");
    }
    let per_minute = plan(
        &limit("tokens: 5, per: 1m, scope: Workload"),
        &old_filter,
        &counted(1),
    );
    assert_eq!(
        per_minute.wasm_plugin.expect_err("per needs 2").field,
        "spec.rateLimit.per",
        "the spec's own period is named first"
    );
}
