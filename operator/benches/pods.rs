//! Memory of the controller's pod cache (`scope: Workload`) at 5,000 pods, with and without
//! `scope::strip_pod`. `cargo bench -p hrl-operator --bench pods` prints a table.
//!
//! Each mode runs in a fresh child process: it decodes N pods from JSON (as a watch does),
//! strips them or not, puts them in a reflector store, and reports the growth of its resident
//! set (VmRSS) and the JSON size of what the store holds. The pods are what an API server
//! serves for an Istio-injected Deployment pod: labels, annotations (the sidecar's status),
//! an owner reference, managedFields of the controller manager and the kubelet, a spec with
//! the app and istio-proxy containers, istio-init and volumes, and a full status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench fails loudly

#[path = "common/rss.rs"]
mod rss;

use hrl_operator::scope::strip_pod;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

const CHILD: &str = "HRL_POD_BENCH_CHILD";

fn main() {
    let pods = rss::objects(5_000, 100);
    if let Some(mode) = rss::child_mode(CHILD) {
        child(&mode, pods);
        return;
    }
    println!("{pods} pods in the controller's pod store");
    println!(
        "{:<10} {:>14} {:>14} {:>16}",
        "cache", "RSS growth", "per pod", "JSON per pod"
    );
    rss::each_mode_in_a_child(CHILD, &["full", "stripped"]);
    println!("served JSON per pod: {} B", served(0).to_string().len());
}

fn child(mode: &str, pods: usize) {
    let (store, mut writer) = reflector::store::<Pod>();
    // Warm the allocator and the code paths, then measure from here.
    fill(mode, 0..50, &mut Writer::default());
    let growth = rss::growth_kib(|| fill(mode, 0..pods, &mut writer)) as f64;
    let state = store.state();
    assert_eq!(state.len(), pods);
    println!(
        "{:<10} {:>10.1} MiB {:>12.0} B {:>14} B",
        mode,
        growth / 1024.0,
        growth * 1024.0 / pods.max(1) as f64,
        rss::json_bytes_per_object(&state)
    );
}

/// Decodes pods `range` from JSON as a watch would, strips them in mode `stripped`, stores them.
fn fill(mode: &str, range: std::ops::Range<usize>, writer: &mut Writer<Pod>) {
    for i in range {
        let bytes = serde_json::to_vec(&served(i)).unwrap();
        let mut pod: Pod = serde_json::from_slice(&bytes).unwrap();
        if mode == "stripped" {
            strip_pod(&mut pod);
        }
        writer.apply_watcher_event(&Event::Apply(pod));
    }
}

/// Pod `i` of 50 Deployments across 20 namespaces, as the API server serves it.
fn served(i: usize) -> Value {
    let app = format!("app-{}", i % 50);
    let namespace = format!("team-{}", i % 20);
    let hash = format!("{:010x}", 0x5f7c_9d00_u64 + (i % 50) as u64);
    let name = format!("{app}-{hash}-{:05x}", i);
    let sidecar_status = json!({"initContainers": ["istio-init"], "containers": ["istio-proxy"],
        "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy",
            "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
        "imagePullSecrets": null, "revision": "default"})
    .to_string();
    let env = |pairs: &[(&str, &str)]| -> Vec<Value> {
        pairs
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect()
    };
    let proxy_env = env(&[
        ("PILOT_CERT_PROVIDER", "istiod"),
        ("CA_ADDR", "istiod.istio-system.svc:15012"),
        ("INSTANCE_IP", "10.0.0.1"),
        ("SERVICE_ACCOUNT", "default"),
        ("HOST_IP", "192.168.0.10"),
        ("ISTIO_CPU_LIMIT", "0"),
        ("PROXY_CONFIG", "{}"),
        (
            "ISTIO_META_POD_PORTS",
            "[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"}]",
        ),
        ("ISTIO_META_APP_CONTAINERS", "app"),
        ("GOMEMLIMIT", "1073741824"),
        ("GOMAXPROCS", "2"),
        ("ISTIO_META_CLUSTER_ID", "Kubernetes"),
        ("ISTIO_META_NODE_NAME", "node-1"),
        ("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"),
        ("ISTIO_META_WORKLOAD_NAME", &app),
        (
            "ISTIO_META_OWNER",
            &format!("kubernetes://apis/apps/v1/namespaces/{namespace}/deployments/{app}"),
        ),
        ("ISTIO_META_MESH_ID", "cluster.local"),
        ("TRUST_DOMAIN", "cluster.local"),
    ]);
    let mount = |name: &str, path: &str| json!({"name": name, "mountPath": path});
    let running = json!({"running": {"startedAt": "2025-01-01T00:00:05Z"}});
    let condition = |type_: &str| {
        json!({"type": type_, "status": "True", "lastProbeTime": null,
            "lastTransitionTime": "2025-01-01T00:00:10Z"})
    };
    let f = |keys: &[&str]| -> Value {
        keys.iter()
            .map(|k| ((*k).to_string(), json!({})))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "generateName": format!("{app}-{hash}-"),
            "uid": format!("3c1f2a4e-0000-4000-8000-{i:012}"), "resourceVersion": format!("{}", 900_000 + i),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": app, "version": "v1", "pod-template-hash": hash,
                "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": app,
                "service.istio.io/canonical-revision": "v1"},
            "annotations": {"istio.io/rev": "default", "kubectl.kubernetes.io/default-container": "app",
                "kubectl.kubernetes.io/default-logs-container": "app",
                "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020",
                "prometheus.io/scrape": "true", "sidecar.istio.io/status": sidecar_status},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{hash}"),
                "uid": format!("9a8b7c6d-0000-4000-8000-{:012}", i % 50), "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                 "time": "2025-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:metadata": {"f:generateName": {}, "f:labels": f(&[".", "f:app", "f:pod-template-hash", "f:version"]),
                        "f:ownerReferences": {".": {}, "k:{\"uid\":\"9a8b7c6d\"}": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": f(&[".", "f:image", "f:imagePullPolicy", "f:name", "f:ports", "f:resources", "f:terminationMessagePath", "f:terminationMessagePolicy"])},
                        "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                        "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "subresource": "status",
                 "time": "2025-01-01T00:00:10Z", "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:status": {"f:conditions": {
                        "k:{\"type\":\"ContainersReady\"}": f(&[".", "f:lastProbeTime", "f:lastTransitionTime", "f:status", "f:type"]),
                        "k:{\"type\":\"Initialized\"}": f(&[".", "f:lastProbeTime", "f:lastTransitionTime", "f:status", "f:type"]),
                        "k:{\"type\":\"PodReadyToStartContainers\"}": f(&[".", "f:lastProbeTime", "f:lastTransitionTime", "f:status", "f:type"]),
                        "k:{\"type\":\"Ready\"}": f(&[".", "f:lastProbeTime", "f:lastTransitionTime", "f:status", "f:type"])},
                        "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:initContainerStatuses": {},
                        "f:phase": {}, "f:podIP": {}, "f:podIPs": {".": {}, "k:{\"ip\":\"10.0.0.1\"}": {}}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.27.0",
                "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                    "privileged": false, "readOnlyRootFilesystem": false, "runAsGroup": 0, "runAsNonRoot": false, "runAsUser": 0},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "containers": [
                {"name": "app", "image": format!("registry.example/{app}:1.4.2"), "imagePullPolicy": "IfNotPresent",
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "env": env(&[("LOG_LEVEL", "info"), ("PORT", "8080")]),
                 "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/app-health/app/readyz", "port": 15020, "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                 "volumeMounts": [mount("kube-api-access-x1", "/var/run/secrets/kubernetes.io/serviceaccount")],
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.27.0", "imagePullPolicy": "IfNotPresent",
                 "args": ["proxy", "sidecar", "--domain", format!("{namespace}.svc.cluster.local"), "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
                 "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
                 "env": proxy_env,
                 "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "initialDelaySeconds": 1, "periodSeconds": 2, "timeoutSeconds": 3, "successThreshold": 1, "failureThreshold": 30},
                 "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": false,
                    "readOnlyRootFilesystem": true, "runAsGroup": 1337, "runAsNonRoot": true, "runAsUser": 1337},
                 "volumeMounts": [mount("workload-socket", "/var/run/secrets/workload-spiffe-uds"), mount("credential-socket", "/var/run/secrets/credential-uds"),
                    mount("workload-certs", "/var/run/secrets/workload-spiffe-credentials"), mount("istiod-ca-cert", "/var/run/secrets/istio"),
                    mount("istio-data", "/var/lib/istio/data"), mount("istio-envoy", "/etc/istio/proxy"), mount("istio-token", "/var/run/secrets/tokens"),
                    mount("istio-podinfo", "/etc/istio/pod"), mount("kube-api-access-x1", "/var/run/secrets/kubernetes.io/serviceaccount")],
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
            ],
            "volumes": [
                {"name": "workload-socket", "emptyDir": {}}, {"name": "credential-socket", "emptyDir": {}},
                {"name": "workload-certs", "emptyDir": {}}, {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
                {"name": "istio-data", "emptyDir": {}},
                {"name": "istio-podinfo", "downwardAPI": {"defaultMode": 420, "items": [
                    {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}}]}},
                {"name": "istio-token", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
                {"name": "istiod-ca-cert", "configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}},
                {"name": "kube-api-access-x1", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
            ],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": format!("node-{}", i % 30),
            "securityContext": {}, "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running", "hostIP": "192.168.0.10", "hostIPs": [{"ip": "192.168.0.10"}],
            "podIP": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256), "podIPs": [{"ip": "10.0.0.1"}],
            "startTime": "2025-01-01T00:00:00Z", "qosClass": "Burstable",
            "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"), condition("Ready"),
                condition("ContainersReady"), condition("PodScheduled")],
            "initContainerStatuses": [{"name": "istio-init", "ready": true, "restartCount": 0, "image": "docker.io/istio/proxyv2:1.27.0",
                "imageID": "docker.io/istio/proxyv2@sha256:0f3c", "containerID": "containerd://aa11",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2025-01-01T00:00:02Z", "finishedAt": "2025-01-01T00:00:03Z", "containerID": "containerd://aa11"}},
                "lastState": {}, "started": false}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "started": true, "state": running, "lastState": {},
                 "image": format!("registry.example/{app}:1.4.2"), "imageID": format!("registry.example/{app}@sha256:7d1e"),
                 "containerID": format!("containerd://{i:064x}")},
                {"name": "istio-proxy", "ready": true, "restartCount": 0, "started": true, "state": running, "lastState": {},
                 "image": "docker.io/istio/proxyv2:1.27.0", "imageID": "docker.io/istio/proxyv2@sha256:0f3c",
                 "containerID": format!("containerd://{:064x}", i + 1)}
            ]
        }
    })
}
