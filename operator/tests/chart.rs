//! The Helm chart (charts/hrl-operator), checked with the real `helm` binary: lint, render with
//! default values and with every optional feature on, then assert on the parsed manifests —
//! security context, settings passed to the operator, RBAC equal to `rbac::API_CALLS`, the
//! CRD copy, and that values.schema.json rejects bad values with a clear message.
//!
//! `HELM` must point at a Helm binary (`make tools` fetches one; `make test` sets it). Without
//! it these tests fail: they never skip silently.

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hrl_operator::rbac::API_CALLS;
use serde::Deserialize;
use serde_json::Value;

type TestResult = Result<(), Box<dyn Error>>;

const RELEASE: &str = "hrl";
const NAMESPACE: &str = "hrl-system";
const ALL_FEATURES: &str = "ci/all-features-values.yaml";
/// Name of the operator's Deployment and ServiceAccount in release `hrl`.
const OPERATOR: &str = "hrl-hrl-operator";
/// Name of the bundled rate limit service's Deployment and Service in release `hrl`.
const RATELIMIT: &str = "hrl-ratelimit";
/// The one value an install must give (or opt out of with filter.allowUnpinned): the filter's
/// digest. A released chart carries it in values.yaml; the chart in git cannot.
const PINNED: [&str; 2] = [
    "--set",
    "filter.sha256=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    workspace().join("charts/hrl-operator")
}

fn helm(args: &[&str]) -> Result<Output, Box<dyn Error>> {
    let helm = std::env::var_os("HELM")
        .filter(|h| !h.is_empty())
        .ok_or("HELM is not set: run `make tools` (fetches Helm into .tools/) and then `make test`, or set HELM=.tools/helm/helm")?;
    Command::new(&helm).args(args).output().map_err(|e| {
        format!(
            "cannot run {}: {e} (run `make tools`)",
            Path::new(&helm).display()
        )
        .into()
    })
}

/// `helm template` of the chart, pinned (`PINNED`), with extra arguments; Err carries helm's
/// stderr.
fn try_render(extra: &[&str]) -> Result<Result<Vec<Value>, String>, Box<dyn Error>> {
    try_render_unpinned(&[&PINNED[..], extra].concat())
}

/// `helm template` with exactly the given arguments.
fn try_render_unpinned(extra: &[&str]) -> Result<Result<Vec<Value>, String>, Box<dyn Error>> {
    let chart = chart();
    let chart = chart.to_str().ok_or("chart path is not UTF-8")?;
    let mut args = vec!["template", RELEASE, chart, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let out = helm(&args)?;
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let text = String::from_utf8(out.stdout)?;
    let mut docs = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(document)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(Ok(docs))
}

fn render(extra: &[&str]) -> Result<Vec<Value>, Box<dyn Error>> {
    try_render(extra)?.map_err(|stderr| format!("helm template {extra:?} failed:\n{stderr}").into())
}

fn render_all_features() -> Result<Vec<Value>, Box<dyn Error>> {
    let values = chart().join(ALL_FEATURES);
    let args = ["-f", values.to_str().ok_or("path is not UTF-8")?];
    try_render_unpinned(&args)?
        .map_err(|stderr| format!("helm template {args:?} failed:\n{stderr}").into())
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn all_of<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind_of(d) == kind).collect()
}

fn one_of<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value, Box<dyn Error>> {
    match all_of(docs, kind).as_slice() {
        [one] => Ok(one),
        other => Err(format!("expected one {kind}, rendered {}", other.len()).into()),
    }
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| kind_of(d).to_string()).collect()
}

/// (apiGroup, resource, verb) triples.
type Grants = BTreeSet<(String, String, String)>;

/// What a Role or ClusterRole grants.
fn granted(role: &Value) -> Grants {
    let mut triples = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    triples.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    triples
}

/// What the operator calls, as (apiGroup, resource, verb), split into the Lease (release
/// namespace) and everything else (watched namespaces).
fn needed() -> (Grants, Grants) {
    let mut watched = BTreeSet::new();
    let mut lease = BTreeSet::new();
    for call in API_CALLS {
        let set = if call.group == "coordination.k8s.io" && call.resource == "leases" {
            &mut lease
        } else {
            &mut watched
        };
        for verb in call.verbs {
            set.insert((
                call.group.to_string(),
                call.resource.to_string(),
                verb.to_string(),
            ));
        }
    }
    (watched, lease)
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e.clone(),
            )
        })
        .collect()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    env_of(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, e)| e["value"].as_str().map(str::to_string))
}

/// The object of `kind` named `name`.
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value, Box<dyn Error>> {
    all_of(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .ok_or_else(|| format!("no {kind} named {name}").into())
}

/// The operator's Deployment (the bundled rate limit service has one too).
fn operator_deployment(docs: &[Value]) -> Result<&Value, Box<dyn Error>> {
    named(docs, "Deployment", OPERATOR)
}

fn operator_container(docs: &[Value]) -> Result<Value, Box<dyn Error>> {
    let deployment = operator_deployment(docs)?;
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .ok_or("Deployment has no containers")?;
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err("expected exactly one container".into()),
    }
}

#[test]
fn helm_lint_passes_with_default_values_and_with_every_feature_on() -> TestResult {
    let chart = chart();
    let chart = chart.to_str().ok_or("path is not UTF-8")?;
    let values = format!("{chart}/{ALL_FEATURES}");
    for args in [
        [&["lint", "--strict", chart][..], &PINNED].concat(),
        vec!["lint", "--strict", chart, "-f", &values],
    ] {
        let out = helm(&args)?;
        assert!(
            out.status.success(),
            "helm {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn default_values_render_a_cluster_wide_operator_with_leader_election() -> TestResult {
    let docs = render(&[])?;
    let expected: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    .map(str::to_string)
    .into();
    assert_eq!(
        kinds(&docs),
        expected,
        "ServiceMonitor and PodDisruptionBudget are off by default"
    );
    let deployment = operator_deployment(&docs)?;
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = operator_container(&docs)?;
    assert_eq!(
        env_value(&container, "HRL_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&container, "HRL_NAMESPACES"),
        None,
        "all namespaces by default"
    );
    assert_eq!(
        env_value(&container, "HRL_ALLOW_UNPINNED_FILTER"),
        None,
        "pinned by default"
    );
    assert_eq!(
        env_value(&container, "HRL_FILTER_URL"),
        Some(format!(
            "oci://ghcr.io/hrl-dev/hrl-filter:{}",
            env!("CARGO_PKG_VERSION")
        )),
        "the filter defaults to the chart's own appVersion, so operator and filter move together"
    );
    Ok(())
}

#[test]
fn an_unpinned_filter_fails_the_install_unless_explicitly_allowed() -> TestResult {
    match try_render_unpinned(&[])? {
        Ok(_) => return Err("helm template without filter.sha256 should fail".into()),
        Err(stderr) => assert!(
            stderr.contains("filter.sha256 is empty")
                && stderr.contains("filter.allowUnpinned=true"),
            "the failure says what to set:\n{stderr}"
        ),
    }
    let docs = render(&[
        "--set",
        "filter.sha256=",
        "--set",
        "filter.allowUnpinned=true",
    ])?;
    let container = operator_container(&docs)?;
    assert_eq!(env_value(&container, "HRL_FILTER_SHA256"), None);
    assert_eq!(
        env_value(&container, "HRL_ALLOW_UNPINNED_FILTER").as_deref(),
        Some("true"),
        "the operator refuses to start unpinned without it"
    );
    Ok(())
}

#[test]
fn every_optional_feature_renders_when_enabled() -> TestResult {
    let docs = render_all_features()?;
    let monitor = one_of(&docs, "ServiceMonitor")?;
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let pdb = one_of(&docs, "PodDisruptionBudget")?;
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let pod = &operator_deployment(&docs)?["spec"]["template"]["spec"];
    let anti =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        anti["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        RELEASE
    );
    assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
    assert!(
        all_of(&docs, "ClusterRole").is_empty(),
        "watchNamespaces set: no ClusterRole"
    );
    Ok(())
}

#[test]
fn operator_pod_is_non_root_read_only_and_drops_all_capabilities() -> TestResult {
    for docs in [render(&[])?, render_all_features()?] {
        let pod = &operator_deployment(&docs)?["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_ne!(pod["securityContext"]["runAsUser"], 0);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let security = &operator_container(&docs)?["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["privileged"], false);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(security["capabilities"].get("add"), None);
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    }
    Ok(())
}

#[test]
fn probes_use_healthz_and_readyz_on_the_metrics_port() -> TestResult {
    for (docs, port) in [(render(&[])?, 8080), (render_all_features()?, 9090)] {
        let container = operator_container(&docs)?;
        assert_eq!(container["ports"][0]["name"], "metrics");
        assert_eq!(container["ports"][0]["containerPort"], port);
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
        assert_eq!(
            env_value(&container, "HRL_METRICS_ADDR"),
            Some(format!("0.0.0.0:{port}"))
        );
        let service = named(&docs, "Service", &format!("{OPERATOR}-metrics"))?;
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    }
    Ok(())
}

#[test]
fn deployment_passes_filter_pinning_and_settings_to_the_operator() -> TestResult {
    let docs = render_all_features()?;
    let container = operator_container(&docs)?;
    assert_eq!(
        container["image"],
        "registry.example/hrl/hrl-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a digest wins over the tag"
    );
    assert_eq!(container["args"], serde_json::json!(["run"]));
    let expect = [
        (
            "HRL_FILTER_URL",
            "oci://registry.example/hrl/hrl-filter:0.1.0",
        ),
        (
            "HRL_FILTER_SHA256",
            "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
        ),
        ("HRL_LOG_FORMAT", "text"),
        ("RUST_LOG", "hrl_operator=debug,kube=info"),
        ("HRL_LEADER_ELECTION", "true"),
        ("HRL_LEASE_NAME", "hrl-leader"),
        ("HRL_NAMESPACES", "default,shop"),
    ];
    for (name, value) in expect {
        assert_eq!(
            env_value(&container, name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let (_, env) = env_of(&container)
            .into_iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("{name} is not set"))?;
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"], field,
            "{name} from the downward API"
        );
    }
    let default = operator_container(&render(&[])?)?;
    assert_eq!(
        default["image"],
        format!("ghcr.io/hrl-dev/hrl-operator:{}", env!("CARGO_PKG_VERSION")),
        "the tag defaults to appVersion"
    );
    assert_eq!(
        env_value(&default, "HRL_LEASE_NAME").as_deref(),
        Some("hrl-hrl-operator")
    );
    Ok(())
}

#[test]
fn every_setting_the_chart_passes_is_an_operator_flag_environment_variable() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_hrl-operator"))
        .args(["run", "--help"])
        .output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hrl-operator run --help failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let container = operator_container(&render_all_features()?)?;
    for (name, _) in env_of(&container) {
        if name == "RUST_LOG" || name == "POD_NAME" {
            continue; // read by tracing-subscriber / used as the leader identity, not flags
        }
        assert!(
            help.contains(&format!("[env: {name}=")),
            "the chart sets {name}, but `hrl-operator run --help` lists no flag reading it:\n{help}"
        );
    }
    Ok(())
}

#[test]
fn cluster_role_and_lease_role_grant_exactly_the_api_calls_the_operator_makes() -> TestResult {
    let (watched, lease) = needed();
    assert!(
        !lease.is_empty(),
        "rbac::API_CALLS lists no Lease calls, but leader election is on by default"
    );
    let docs = render(&[])?;
    let cluster_role = one_of(&docs, "ClusterRole")?;
    assert_eq!(
        granted(cluster_role),
        watched,
        "ClusterRole rules != rbac::API_CALLS (Lease aside)"
    );
    let role = one_of(&docs, "Role")?;
    assert_eq!(
        role["metadata"]["namespace"], NAMESPACE,
        "the Lease lives in the release namespace"
    );
    assert_eq!(
        granted(role),
        lease,
        "leader-election Role != the Lease calls in rbac::API_CALLS"
    );
    Ok(())
}

#[test]
fn watched_namespaces_get_a_role_each_and_no_cluster_wide_access() -> TestResult {
    let (watched, lease) = needed();
    let docs = render_all_features()?;
    assert!(all_of(&docs, "ClusterRole").is_empty());
    assert!(all_of(&docs, "ClusterRoleBinding").is_empty());
    let roles = all_of(&docs, "Role");
    for namespace in ["default", "shop"] {
        let role = roles
            .iter()
            .find(|r| r["metadata"]["namespace"] == namespace)
            .ok_or_else(|| format!("no Role in watched namespace {namespace}"))?;
        assert_eq!(
            granted(role),
            watched,
            "Role in {namespace} != rbac::API_CALLS (Lease aside)"
        );
        let binding = all_of(&docs, "RoleBinding")
            .into_iter()
            .find(|b| b["metadata"]["namespace"] == namespace)
            .ok_or_else(|| format!("no RoleBinding in {namespace}"))?;
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    let lease_role = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == NAMESPACE)
        .ok_or("no leader-election Role in the release namespace")?;
    assert_eq!(granted(lease_role), lease);
    assert_eq!(
        roles.len(),
        3,
        "one Role per watched namespace plus the Lease Role"
    );
    Ok(())
}

#[test]
fn without_leader_election_no_lease_access_is_granted() -> TestResult {
    let docs = render(&[
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ])?;
    assert!(all_of(&docs, "Role").is_empty());
    let container = operator_container(&docs)?;
    assert_eq!(
        env_value(&container, "HRL_LEADER_ELECTION").as_deref(),
        Some("false")
    );
    Ok(())
}

#[test]
fn bindings_name_the_rendered_service_account() -> TestResult {
    for docs in [render(&[])?, render_all_features()?] {
        let account = one_of(&docs, "ServiceAccount")?["metadata"]["name"].clone();
        let pod = &operator_deployment(&docs)?["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], account);
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            for binding in all_of(&docs, kind) {
                assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
                assert_eq!(binding["subjects"][0]["name"], account);
                assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
            }
        }
    }
    Ok(())
}

#[test]
fn chart_crd_is_a_byte_identical_copy_of_the_generated_crd() -> TestResult {
    let name = "headerratelimits.hrl.dev.yaml";
    let original = workspace().join("crds").join(name);
    let copy = chart().join("crds").join(name);
    let original = fs::read(&original).map_err(|e| {
        format!(
            "{}: {e} (generate it with `cargo run -p hrl-operator -- crd > crds/{name}`)",
            original.display()
        )
    })?;
    let copy = fs::read(&copy).map_err(|e| {
        format!(
            "{}: {e} (copy it: `cp crds/{name} charts/hrl-operator/crds/`)",
            copy.display()
        )
    })?;
    assert!(
        original == copy,
        "charts/hrl-operator/crds/{name} differs from crds/{name}: run `cp crds/{name} charts/hrl-operator/crds/`"
    );
    Ok(())
}

#[test]
fn chart_app_version_is_the_crate_version() -> TestResult {
    let chart_yaml: Value =
        serde_norway::from_str(&fs::read_to_string(chart().join("Chart.yaml"))?)?;
    assert_eq!(chart_yaml["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart_yaml["apiVersion"], "v2");
    Ok(())
}

#[test]
fn values_schema_rejects_bad_values_with_a_message_naming_the_value() -> TestResult {
    let cases: [(&[&str], &str); 7] = [
        (&["--set", "filter.sha256=abc"], "/filter/sha256"),
        (&["--set", "filter.sha256=sha256:0123"], "/filter/sha256"),
        (&["--set", "filter.url=docker.io/x/y:1"], "/filter/url"),
        (&["--set", "replicaCount=0"], "/replicaCount"),
        (&["--set", "logFormat=xml"], "/logFormat"),
        (&["--set", "image.digest=latest"], "/image/digest"),
        (
            &["--set", "replicas=3"],
            "additional properties 'replicas' not allowed",
        ),
    ];
    for (args, needle) in cases {
        match try_render(args)? {
            Ok(_) => return Err(format!("helm template {args:?} should fail").into()),
            Err(stderr) => assert!(
                stderr.contains("values don't meet the specifications of the schema")
                    && stderr.contains(needle),
                "helm template {args:?}: expected a schema error naming {needle}, got:\n{stderr}"
            ),
        }
    }
    Ok(())
}

#[test]
fn cross_field_rules_fail_with_a_message_saying_what_to_change() -> TestResult {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--set", "leaderElection.enabled=false"],
            "replicaCount=2 needs leaderElection.enabled=true",
        ),
        (
            &[
                "--set",
                "podDisruptionBudget.enabled=true",
                "--set",
                "podDisruptionBudget.minAvailable=2",
            ],
            "would block every node drain",
        ),
        (
            &[
                "--set",
                "metrics.serviceMonitor.enabled=true",
                "--set",
                "metrics.service.enabled=false",
            ],
            "needs metrics.service.enabled=true",
        ),
    ];
    for (args, needle) in cases {
        match try_render(args)? {
            Ok(_) => return Err(format!("helm template {args:?} should fail").into()),
            Err(stderr) => assert!(
                stderr.contains(needle),
                "helm template {args:?}: expected {needle:?}, got:\n{stderr}"
            ),
        }
    }
    Ok(())
}

#[test]
fn chart_defaults_match_the_operator_defaults() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_hrl-operator"))
        .args(["run", "--help"])
        .output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    let default_of = |env: &str| -> Option<String> {
        let after = &help[help.find(&format!("[env: {env}="))?..];
        let value = &after[after.find("[default: ")? + "[default: ".len()..];
        Some(value[..value.find(']')?].to_string())
    };
    let container = operator_container(&render(&[])?)?;
    for env in [
        "HRL_FILTER_URL",
        "HRL_METRICS_ADDR",
        "HRL_LEADER_ELECTION",
        "HRL_RLS_DOMAIN",
        "HRL_RLS_TIMEOUT",
    ] {
        let operator =
            default_of(env).ok_or_else(|| format!("no default for {env} in:\n{help}"))?;
        assert_eq!(
            env_value(&container, env),
            Some(operator.clone()),
            "values.yaml and the operator disagree on the default of {env}"
        );
    }
    Ok(())
}

#[test]
fn the_rate_limit_service_settings_reach_the_operator_and_none_is_set_by_default() -> TestResult {
    let docs = render(&[])?;
    let container = operator_container(&docs)?;
    assert_eq!(
        env_value(&container, "HRL_RLS_SERVICE"),
        None,
        "no service: Cluster policies are not accepted"
    );
    assert!(
        named(&docs, "Deployment", RATELIMIT).is_err() && all_of(&docs, "ConfigMap").is_empty(),
        "nothing bundled by default"
    );
    let address = "ratelimit.platform.svc.cluster.local:8081";
    let docs = render(&[
        "--set",
        &format!("rateLimitService.address={address}"),
        "--set",
        "rateLimitService.domain=edge",
        "--set",
        "rateLimitService.timeout=1s",
    ])?;
    let container = operator_container(&docs)?;
    for (name, value) in [
        ("HRL_RLS_SERVICE", address),
        ("HRL_RLS_DOMAIN", "edge"),
        ("HRL_RLS_TIMEOUT", "1s"),
    ] {
        assert_eq!(
            env_value(&container, name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn the_bundled_rate_limit_service_is_pinned_non_root_read_only_and_used_by_the_operator()
-> TestResult {
    let docs = render_all_features()?;
    let deployment = named(&docs, "Deployment", RATELIMIT)?;
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "it never calls the API"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "registry.example/envoyproxy/ratelimit:example@sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for (name, value) in [
        ("REDIS_SOCKET_TYPE", "tcp"),
        ("REDIS_URL", "redis.hrl-system.svc.cluster.local:6379"),
        ("USE_STATSD", "false"),
        ("LOG_LEVEL", "info"),
        ("RUNTIME_ROOT", "/data"),
        ("RUNTIME_SUBDIRECTORY", "ratelimit"),
        ("RUNTIME_WATCH_ROOT", "false"),
        ("RUNTIME_IGNOREDOTFILES", "true"),
    ] {
        assert_eq!(env_value(container, name).as_deref(), Some(value), "{name}");
    }
    // envoyproxy/ratelimit reads RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config/*.yaml.
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/data/ratelimit/config"
    );
    let config_map = named(&docs, "ConfigMap", &format!("{RATELIMIT}-config"))?;
    assert_eq!(
        pod["volumes"][0]["configMap"]["name"],
        config_map["metadata"]["name"]
    );
    let config: Value = serde_norway::from_str(
        config_map["data"]["hrl.yaml"]
            .as_str()
            .ok_or("no hrl.yaml")?,
    )?;
    assert_eq!(
        config,
        serde_json::json!({"domain": "shop", "descriptors": []}),
        "the domain, its limits come with each request"
    );
    let service = named(&docs, "Service", RATELIMIT)?;
    let port = &service["spec"]["ports"][0];
    assert_eq!(
        (&port["name"], &port["port"], &port["targetPort"]),
        (
            &Value::from("grpc"),
            &Value::from(8081),
            &Value::from("grpc")
        )
    );
    assert_eq!(container["ports"][0]["name"], "grpc");
    assert_eq!(container["ports"][0]["containerPort"], 8081);
    // Neither Deployment selects the other's pods.
    let operator = operator_deployment(&docs)?;
    let selects = |selector: &Value, labels: &Value| {
        selector["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| &labels[k] == v)
    };
    let rl_labels = &pod_labels(deployment);
    let op_labels = &pod_labels(operator);
    assert!(!selects(&operator["spec"]["selector"], rl_labels));
    assert!(!selects(&deployment["spec"]["selector"], op_labels));
    assert!(selects(&deployment["spec"]["selector"], rl_labels));
    let service_selector = serde_json::json!({"matchLabels": service["spec"]["selector"]});
    assert!(selects(&service_selector, rl_labels));
    assert!(!selects(&service_selector, op_labels));
    let container = operator_container(&docs)?;
    for (name, value) in [
        (
            "HRL_RLS_SERVICE",
            "hrl-ratelimit.hrl-system.svc.cluster.local:8081",
        ),
        ("HRL_RLS_DOMAIN", "shop"),
        ("HRL_RLS_TIMEOUT", "250ms"),
    ] {
        assert_eq!(
            env_value(&container, name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    Ok(())
}

fn pod_labels(deployment: &Value) -> Value {
    deployment["spec"]["template"]["metadata"]["labels"].clone()
}

#[test]
fn the_bundled_service_needs_a_digest_and_a_redis_url_and_a_short_enough_name() -> TestResult {
    let digest = "rateLimitService.bundled.image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let redis = "rateLimitService.bundled.redisUrl=redis.hrl-system.svc.cluster.local:6379";
    let on = "rateLimitService.bundled.enabled=true";
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["--set", on, "--set", redis],
            "rateLimitService.bundled.image.digest is empty",
        ),
        (
            vec!["--set", on, "--set", digest],
            "rateLimitService.bundled.redisUrl is empty",
        ),
        (
            vec![
                "--set",
                on,
                "--set",
                digest,
                "--set",
                redis,
                "--set",
                "rateLimitService.address=rl.ops.svc.cluster.local:8081",
            ],
            "not both",
        ),
        (
            vec![
                "--set",
                "rateLimitService.address=a-rather-long-rate-limit-service.a-long-namespace.svc.cluster.local:8081",
            ],
            "too long for the filter",
        ),
    ];
    for (args, needle) in cases {
        match try_render(&args)? {
            Ok(_) => return Err(format!("helm template {args:?} should fail").into()),
            Err(stderr) => assert!(
                stderr.contains(needle),
                "helm template {args:?}: expected {needle:?}, got:\n{stderr}"
            ),
        }
    }
    for (args, needle) in [
        (
            ["--set", "rateLimitService.address=ratelimit:8081"],
            "/rateLimitService/address",
        ),
        (
            ["--set", "rateLimitService.timeout=0.1"],
            "/rateLimitService/timeout",
        ),
    ] {
        match try_render(&args)? {
            Ok(_) => return Err(format!("helm template {args:?} should fail").into()),
            Err(stderr) => assert!(
                stderr.contains(needle),
                "helm template {args:?}: expected {needle:?}, got:\n{stderr}"
            ),
        }
    }
    Ok(())
}

/// JSON paths where `a` and `b` differ.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let (l, r) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                differences(&format!("{path}.{key}"), l, r, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), l, r, out);
            }
        }
        _ if a != b => out.push(format!("{path}: rendered {a}, Kubernetes type keeps {b}")),
        _ => {}
    }
}

/// Deserialises `doc` as `T` and back: a misspelt or misplaced field is dropped on the way and
/// shows up as a difference, a wrong type fails to deserialise.
fn round_trips<T>(doc: &Value) -> Result<(), String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let name = format!("{} {}", kind_of(doc), doc["metadata"]["name"]);
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| format!("{name}: {e}"))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("{name}: {e}"))?;
    let mut diffs = Vec::new();
    differences("", doc, &back, &mut diffs);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name} has fields Kubernetes does not know:\n{}",
            diffs.join("\n")
        ))
    }
}

#[test]
fn rendered_objects_are_kubernetes_objects_without_unknown_fields() -> TestResult {
    use k8s_openapi::api::{apps, core, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let with_crds = render(&["--include-crds"])?;
    assert_eq!(
        all_of(&with_crds, "CustomResourceDefinition").len(),
        1,
        "the chart installs the CRD"
    );
    for docs in [with_crds, render_all_features()?] {
        for doc in &docs {
            match kind_of(doc) {
                "Deployment" => round_trips::<apps::v1::Deployment>(doc)?,
                "Service" => round_trips::<core::v1::Service>(doc)?,
                "ConfigMap" => round_trips::<core::v1::ConfigMap>(doc)?,
                "ServiceAccount" => round_trips::<core::v1::ServiceAccount>(doc)?,
                "ClusterRole" => round_trips::<rbac::v1::ClusterRole>(doc)?,
                "ClusterRoleBinding" => round_trips::<rbac::v1::ClusterRoleBinding>(doc)?,
                "Role" => round_trips::<rbac::v1::Role>(doc)?,
                "RoleBinding" => round_trips::<rbac::v1::RoleBinding>(doc)?,
                "PodDisruptionBudget" => round_trips::<policy::v1::PodDisruptionBudget>(doc)?,
                "CustomResourceDefinition" => round_trips::<CustomResourceDefinition>(doc)?,
                "ServiceMonitor" => assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1"),
                other => return Err(format!("unexpected kind {other} in the chart").into()),
            }
        }
    }
    Ok(())
}
