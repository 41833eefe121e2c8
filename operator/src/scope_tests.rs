#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::crd::{TargetRef, WorkloadSelector};

fn pod(namespace: &str, labels: &[(&str, &str)], ready: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some("p".into());
    pod.metadata.namespace = Some(namespace.into());
    pod.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    pod.status = Some(PodStatus {
        conditions: Some(vec![
            PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                ..PodCondition::default()
            },
            PodCondition {
                type_: "Ready".into(),
                status: ready.into(),
                message: Some("containers ready".into()),
                ..PodCondition::default()
            },
        ]),
        phase: Some("Running".into()),
        pod_ip: Some("10.0.0.1".into()),
        ..PodStatus::default()
    });
    pod
}

fn selecting(labels: &[(&str, &str)]) -> HeaderRateLimitSpec {
    HeaderRateLimitSpec {
        selector: Some(WorkloadSelector {
            match_labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            proxy: None,
        }),
        ..HeaderRateLimitSpec::default()
    }
}

fn gateways(names: &[&str]) -> HeaderRateLimitSpec {
    HeaderRateLimitSpec {
        target_refs: Some(
            names
                .iter()
                .map(|name| TargetRef {
                    group: "gateway.networking.k8s.io".into(),
                    kind: "Gateway".into(),
                    name: (*name).into(),
                })
                .collect(),
        ),
        ..HeaderRateLimitSpec::default()
    }
}

#[test]
fn a_rate_splits_exactly_into_whole_tokens_over_a_longer_period() {
    // 100/s over 4: 25/s. Over 3: 100 per 3 s. 1/s over 3: 1 per 3 s.
    assert_eq!(
        split(100, 1, 100, 4),
        Share {
            tokens: 25,
            period_seconds: 1,
            burst: 25,
            replicas: 4
        }
    );
    assert_eq!(
        split(100, 1, 100, 3),
        Share {
            tokens: 100,
            period_seconds: 3,
            burst: 34,
            replicas: 3
        }
    );
    assert_eq!(
        split(1, 1, 1, 3),
        Share {
            tokens: 1,
            period_seconds: 3,
            burst: 1,
            replicas: 3
        }
    );
    // 6 per minute over 4: 3 per 2 minutes.
    assert_eq!(
        split(6, 60, 10, 4),
        Share {
            tokens: 3,
            period_seconds: 120,
            burst: 3,
            replicas: 4
        }
    );
}

#[test]
fn the_shares_add_up_to_the_rate() {
    for (tokens, period) in [
        (100u32, 1u32),
        (7, 60),
        (1, 86_400),
        (1_000_000, 1),
        (5, 3600),
    ] {
        for replicas in 1..=50u32 {
            let share = split(tokens, period, tokens, replicas);
            // share.tokens / share.period * replicas == tokens / period, in integers:
            let lhs = u64::from(share.tokens) * u64::from(replicas) * u64::from(period);
            let rhs = u64::from(tokens) * u64::from(share.period_seconds);
            assert_eq!(lhs, rhs, "{tokens}/{period}s over {replicas}");
            assert!(share.burst >= 1);
            assert!(u64::from(share.burst) * u64::from(replicas) >= u64::from(tokens));
        }
    }
}

#[test]
fn no_replicas_keeps_the_whole_rate_and_the_split_is_bounded() {
    assert_eq!(
        split(10, 1, 20, 0),
        Share {
            tokens: 10,
            period_seconds: 1,
            burst: 20,
            replicas: 1
        }
    );
    let widest = split(1, 86_400, 1, u32::MAX);
    assert_eq!(widest.replicas, MAX_SPLIT);
    assert_eq!(widest.period_seconds, MAX_WIRE_PERIOD_SECONDS);
}

#[test]
fn a_selector_covers_pods_with_all_its_labels_in_its_namespace() {
    let spec = selecting(&[("app", "web"), ("tier", "front")]);
    assert!(covers(
        &spec,
        "shop",
        &pod(
            "shop",
            &[("app", "web"), ("tier", "front"), ("x", "y")],
            "True"
        )
    ));
    assert!(!covers(
        &spec,
        "shop",
        &pod("shop", &[("app", "web")], "True")
    ));
    assert!(!covers(
        &spec,
        "shop",
        &pod("other", &[("app", "web"), ("tier", "front")], "True")
    ));
    assert!(!covers(
        &selecting(&[]),
        "shop",
        &pod("shop", &[("app", "web")], "True")
    ));
}

#[test]
fn target_refs_cover_the_pods_of_their_gateways() {
    let spec = gateways(&["public", "partner"]);
    assert!(covers(
        &spec,
        "gw",
        &pod("gw", &[(GATEWAY_NAME_LABEL, "public")], "True")
    ));
    assert!(covers(
        &spec,
        "gw",
        &pod("gw", &[(GATEWAY_NAME_LABEL, "partner")], "True")
    ));
    assert!(!covers(
        &spec,
        "gw",
        &pod("gw", &[(GATEWAY_NAME_LABEL, "internal")], "True")
    ));
    assert!(!covers(
        &spec,
        "gw",
        &pod("gw", &[("app", "public")], "True")
    ));
}

#[test]
fn only_ready_pods_that_are_not_terminating_count() {
    let spec = selecting(&[("app", "web")]);
    let ready = pod("shop", &[("app", "web")], "True");
    let unready = pod("shop", &[("app", "web")], "False");
    let mut terminating = ready.clone();
    terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let mut no_status = ready.clone();
    no_status.status = None;
    let other = pod("shop", &[("app", "api")], "True");
    let pods = [ready.clone(), ready, unready, terminating, no_status, other];
    assert_eq!(replicas(&spec, "shop", &pods), 2);
}

#[test]
fn a_stripped_pod_keeps_what_counting_reads_and_counts_the_same() {
    let spec = selecting(&[("app", "web")]);
    let mut full = pod("shop", &[("app", "web")], "True");
    full.metadata.annotations = Some([("a".to_string(), "b".repeat(1000))].into());
    full.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
    full.spec = Some(Default::default());
    let mut stripped = full.clone();
    strip_pod(&mut stripped);
    assert_eq!(stripped.spec, None);
    assert_eq!(stripped.metadata.annotations, None);
    assert_eq!(stripped.metadata.managed_fields, None);
    assert_eq!(stripped.metadata.labels, full.metadata.labels);
    let conditions = stripped
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(
        (conditions[0].type_.as_str(), conditions[0].status.as_str()),
        ("Ready", "True")
    );
    assert_eq!(conditions[0].message, None);
    for (pod, serving) in [
        (full.clone(), true),
        (pod("shop", &[("app", "web")], "False"), false),
    ] {
        let mut s = pod.clone();
        strip_pod(&mut s);
        assert_eq!(serves(&s), serving);
        assert_eq!(covers(&spec, "shop", &s), covers(&spec, "shop", &pod));
    }
}

fn policy(
    name: &str,
    namespace: &str,
    mut spec: HeaderRateLimitSpec,
    scope: Option<Scope>,
) -> Arc<HeaderRateLimit> {
    spec.rate_limit = Some(crate::crd::RateLimitSpec {
        tokens_per_second: Some(10),
        scope,
        ..crate::crd::RateLimitSpec::default()
    });
    let mut hrl = HeaderRateLimit::new(name, spec);
    hrl.metadata.namespace = Some(namespace.into());
    Arc::new(hrl)
}

#[test]
fn a_pod_triggers_the_workload_policies_of_its_namespace_that_cover_it() {
    let policies = [
        policy(
            "web",
            "shop",
            selecting(&[("app", "web")]),
            Some(Scope::Workload),
        ),
        policy("proxy-scope", "shop", selecting(&[("app", "web")]), None),
        policy(
            "cluster",
            "shop",
            selecting(&[("app", "web")]),
            Some(Scope::Cluster),
        ),
        policy(
            "other-app",
            "shop",
            selecting(&[("app", "api")]),
            Some(Scope::Workload),
        ),
        policy(
            "elsewhere",
            "blog",
            selecting(&[("app", "web")]),
            Some(Scope::Workload),
        ),
        policy("gw", "shop", gateways(&["public"]), Some(Scope::Workload)),
    ];
    let names = |pod: &Pod| -> Vec<String> {
        policies_covering(pod, &policies)
            .into_iter()
            .map(|r| r.name)
            .collect()
    };
    assert_eq!(names(&pod("shop", &[("app", "web")], "True")), ["web"]);
    assert_eq!(
        names(&pod("shop", &[("app", "web")], "False")),
        ["web"],
        "a pod that stops serving changes the count too"
    );
    assert_eq!(
        names(&pod("shop", &[(GATEWAY_NAME_LABEL, "public")], "True")),
        ["gw"]
    );
    assert!(names(&pod("blog", &[("app", "api")], "True")).is_empty());
}

#[test]
fn only_label_and_serving_changes_can_change_a_count() {
    let ready = pod("shop", &[("app", "web")], "True");
    assert!(changes_count(None, &ready), "a new pod");
    let mut restarted = ready.clone();
    restarted.metadata.resource_version = Some("42".into());
    restarted.status.as_mut().unwrap().pod_ip = Some("10.0.0.2".into());
    assert!(!changes_count(Some(&ready), &restarted), "status noise");
    assert!(changes_count(
        Some(&ready),
        &pod("shop", &[("app", "web")], "False")
    ));
    assert!(changes_count(
        Some(&ready),
        &pod("shop", &[("app", "web"), ("v", "2")], "True")
    ));
    let mut terminating = ready.clone();
    terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    assert!(changes_count(Some(&ready), &terminating));
}
