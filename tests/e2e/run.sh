#!/usr/bin/env bash
# End-to-end test on a real cluster: kind + Istio + a local OCI registry.
#
#   tests/e2e/run.sh            # create everything, test, delete the cluster
#   KEEP=1 tests/e2e/run.sh     # keep the cluster and registry afterwards (for debugging)
#
# Needs: docker (with BuildKit), kind, istioctl, kubectl, helm (or `make tools`), curl, make.
# See tests/e2e/README.md for what each step checks and how to debug a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=${CLUSTER:-hrl-e2e}
REG_NAME=${REG_NAME:-kind-registry}   # registry container, reachable from pods by this name
REG_PORT=${REG_PORT:-5001}            # its port on the host (127.0.0.1 only)
TAG=${TAG:-e2e}
KEEP=${KEEP:-0}
OPERATOR_NS=hrl-system
RELEASE=hrl-operator
APP_NS=default                        # examples/seed-equivalent.yaml lives in "default"
EXAMPLE=$ROOT/examples/seed-equivalent.yaml
HRL=httpbin                           # metadata.name in that example
HTTPBIN_IMAGE=${HTTPBIN_IMAGE:-docker.io/mccutchen/go-httpbin:v2.15.0}
CURL_IMAGE=${CURL_IMAGE:-docker.io/curlimages/curl:8.11.1}
KUBECTL=${KUBECTL:-kubectl}
if [[ -z "${HELM:-}" ]]; then
  if [[ -x "$ROOT/.tools/helm/helm" ]]; then HELM=$ROOT/.tools/helm/helm; else HELM=helm; fi
fi

OPERATOR_IMAGE=hrl-operator:$TAG
FILTER_PUSH=localhost:$REG_PORT/hrl-filter:$TAG   # as the host pushes it
FILTER_URL=oci://$REG_NAME:5000/hrl-filter:$TAG   # as Istio's agent in the pods pulls it

created_registry=0
step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
k() { "$KUBECTL" --context "kind-$CLUSTER" "$@"; }

need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  ((${#missing[@]} == 0)) || fail "missing tools: ${missing[*]} (see tests/e2e/README.md)"
}

diagnostics() {
  step "diagnostics"
  k get hrl,wasmplugins -A -o wide || true
  k describe hrl -n "$APP_NS" "$HRL" || true
  k get events -n "$APP_NS" --sort-by=.lastTimestamp | tail -n 20 || true
  k logs -n "$OPERATOR_NS" -l app.kubernetes.io/name=hrl-operator --tail=100 --prefix || true
  k logs -n "$APP_NS" -l app=httpbin -c istio-proxy --tail=50 | grep -i wasm || true
}

cleanup() {
  local status=$?
  ((status == 0)) || diagnostics
  if [[ "$KEEP" == 1 ]]; then
    step "KEEP=1: leaving cluster kind-$CLUSTER and registry $REG_NAME running"
    return
  fi
  step "cleanup"
  kind delete cluster --name "$CLUSTER" || true
  if ((created_registry)); then docker rm -f "$REG_NAME" >/dev/null || true; fi
}

# Polls a command until it succeeds: retry SECONDS DESCRIPTION CMD...
retry() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what"
    sleep 2
  done
}

# One request from the client pod; prints the status line, headers and body.
request() {
  k exec -n "$APP_NS" deploy/curl -c curl -- curl -s -i --max-time 5 "http://httpbin:8000/headers"
}

# A 200 response that carries / lacks response header $1.
header_present() {
  local r
  r=$(request) || return 1
  grep -q '^HTTP/[0-9.]* 200' <<<"$r" && grep -qi "^$1:" <<<"$r"
}
header_absent() {
  local r
  r=$(request) || return 1
  grep -q '^HTTP/[0-9.]* 200' <<<"$r" && ! grep -qi "^$1:" <<<"$r"
}

lease_held() {
  [[ -n "$(k -n "$OPERATOR_NS" get lease "$RELEASE" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" ]]
}

need docker kind istioctl "$KUBECTL" "$HELM" curl make
trap cleanup EXIT

step "local registry $REG_NAME on 127.0.0.1:$REG_PORT"
if [[ "$(docker inspect -f '{{.State.Running}}' "$REG_NAME" 2>/dev/null || true)" != true ]]; then
  docker run -d --restart=always -p "127.0.0.1:$REG_PORT:5000" --name "$REG_NAME" registry:2 >/dev/null
  created_registry=1
fi

step "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
# Pods resolve the registry by container name through the docker network kind uses.
if [[ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$REG_NAME")" == null ]]; then
  docker network connect kind "$REG_NAME"
fi

step "the registry is reachable from inside the cluster"
code=$(k run regcheck -n default --rm -i --quiet --restart=Never --image="$CURL_IMAGE" \
  --labels=sidecar.istio.io/inject=false -- \
  curl -s -o /dev/null -w '%{http_code}' "http://$REG_NAME:5000/v2/" || true)
[[ "$code" == 200 ]] || fail "http://$REG_NAME:5000/v2/ answered '$code' from a pod (expected 200)"

step "build images"
# No attestation manifests: `kind load` cannot import an image index whose attestation
# blobs are missing (Docker's containerd image store).
make -C "$ROOT" image-operator OPERATOR_IMAGE="$OPERATOR_IMAGE" DOCKER_BUILD_FLAGS=--provenance=false
make -C "$ROOT" image-filter FILTER_IMAGE="$FILTER_PUSH"
docker push "$FILTER_PUSH"
kind load docker-image "$OPERATOR_IMAGE" --name "$CLUSTER"

step "the filter image is one manifest with one layer; its digest pins the WasmPlugin"
# For oci:// URLs Istio compares WasmPlugin.spec.sha256 with the image MANIFEST digest.
accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
headers=$(curl -sfI -H "Accept: $accept" "http://localhost:$REG_PORT/v2/hrl-filter/manifests/$TAG")
media=$(tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1)=="content-type" {print $2}')
digest=$(tr -d '\r' <<<"$headers" | awk -F': ' 'tolower($1)=="docker-content-digest" {print $2}')
case "$media" in
  application/vnd.oci.image.manifest.v1+json | application/vnd.docker.distribution.manifest.v2+json) ;;
  *) fail "registry serves $FILTER_PUSH as '$media', not a single image manifest (build with make image-filter)" ;;
esac
[[ "$digest" =~ ^sha256:[a-f0-9]{64}$ ]] || fail "no manifest digest for $FILTER_PUSH: '$digest'"
# One "digest" for the config plus one per layer.
digests=$(curl -sf -H "Accept: $accept" "http://localhost:$REG_PORT/v2/hrl-filter/manifests/$TAG" |
  grep -o '"digest"' | wc -l)
layers=$((digests - 1))
((layers == 1)) || fail "the filter image has $layers layers; Istio needs exactly 1"
FILTER_SHA256=${digest#sha256:}
echo "filter: $FILTER_URL sha256 $FILTER_SHA256"

step "install Istio (minimal profile; the registry is plain HTTP, so Istio's agent must allow it)"
istioctl install -y --context "kind-$CLUSTER" --set profile=minimal \
  --set "meshConfig.defaultConfig.proxyMetadata.WASM_INSECURE_REGISTRIES=$REG_NAME:5000"
k -n istio-system rollout status deploy/istiod --timeout=180s

step "install the chart"
"$HELM" upgrade --install "$RELEASE" "$ROOT/charts/hrl-operator" --kube-context "kind-$CLUSTER" \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository=hrl-operator --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set filter.url="$FILTER_URL" --set filter.sha256="$FILTER_SHA256" \
  --set logFormat=text --wait --timeout 180s
k wait --for=condition=Established crd/headerratelimits.hrl.dev --timeout=60s
k -n "$OPERATOR_NS" rollout status "deploy/$RELEASE" --timeout=120s
retry 60 "a leader in Lease $OPERATOR_NS/$RELEASE" lease_held
k get --raw "/api/v1/namespaces/$OPERATOR_NS/services/$RELEASE-metrics:8080/proxy/metrics" |
  grep -q '^# TYPE' || fail "the metrics Service does not serve Prometheus text"

step "workloads in the mesh: httpbin (app=httpbin) and a curl client"
k label namespace "$APP_NS" istio-injection=enabled --overwrite
k apply -n "$APP_NS" -f - <<EOF
apiVersion: v1
kind: Service
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers:
        - name: httpbin
          image: $HTTPBIN_IMAGE
          ports: [{containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl}
spec:
  replicas: 1
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      containers:
        - name: curl
          image: $CURL_IMAGE
          command: ["sleep", "infinity"]
EOF
k -n "$APP_NS" rollout status deploy/httpbin --timeout=180s
k -n "$APP_NS" rollout status deploy/curl --timeout=180s
retry 60 "httpbin to answer 200 through the mesh" header_present content-type
header_absent who-am-i || fail "who-am-i is on responses before any policy"

step "apply $(basename "$EXAMPLE")"
k apply -f "$EXAMPLE"
k -n "$APP_NS" wait --for=condition=Ready "hrl/$HRL" --timeout=120s
wasmplugin=$(k -n "$APP_NS" get hrl "$HRL" -o jsonpath='{.status.wasmPlugin}')
[[ -n "$wasmplugin" ]] || fail "status.wasmPlugin is empty"
owner=$(k -n "$APP_NS" get wasmplugin "$wasmplugin" -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')
[[ "$owner" == "HeaderRateLimit/$HRL" ]] || fail "WasmPlugin $wasmplugin is owned by '$owner'"
[[ "$(k -n "$APP_NS" get wasmplugin "$wasmplugin" -o jsonpath='{.spec.sha256}')" == "$FILTER_SHA256" ]] ||
  fail "WasmPlugin $wasmplugin is not pinned to the filter's digest"
k -n "$APP_NS" get hrl "$HRL"

step "the filter answers through the mesh (Istio pulls the module asynchronously)"
retry 180 "who-am-i on responses from httpbin" header_present who-am-i

step "headers on every response, 429 with Retry-After once the burst (2) is spent"
sleep 2 # let the bucket refill completely
# shellcheck disable=SC2016 # the loop runs in the client pod's shell
out=$(k exec -n "$APP_NS" deploy/curl -c curl -- sh -c '
  for i in 1 2 3 4 5 6; do
    curl -s -i --max-time 5 http://httpbin:8000/headers | tr -d "\r" > /tmp/r$i
  done
  for i in 1 2 3 4 5 6; do echo "=== $i"; cat /tmp/r$i; echo; done')
printf '%s\n' "$out" | grep -iE '^(=== |HTTP/|who-am-i|injected-by|hally|wang|ratelimit|retry-after|powered-by)'
statuses=$(printf '%s\n' "$out" | awk '/^HTTP\// {print $2}' | tr '\n' ' ')
echo "statuses: $statuses"
[[ "$statuses" == "200 200 "* ]] || fail "the first two requests of a full bucket must pass: $statuses"
[[ "$statuses" == *429* ]] || fail "no 429 after the burst: $statuses"
allowed=$(grep -o 200 <<<"$statuses" | wc -l)
((allowed <= 4)) || fail "$allowed of 6 allowed in well under a second at 2/s with burst 2"
for h in 'who-am-i: wasm-extension' 'injected-by: istio-api!' 'hally: wang' 'wang: 1234567'; do
  n=$(printf '%s\n' "$out" | grep -ciF "$h" || true)
  ((n == 6)) || fail "'$h' on $n of 6 responses (expected on every one, exactly once)"
done
# The first limited response: from its "=== i" marker to the next one.
limited=$(printf '%s\n' "$out" |
  awk '/^=== / {if (l) exit; r=""; next} {r = r $0 "\n"} /^HTTP\/[0-9.]+ 429/ {l=1} END {if (l) printf "%s", r}')
grep -qi '^retry-after: [1-9]' <<<"$limited" || fail "429 without Retry-After >= 1"
grep -qi '^powered-by: hrl-filter' <<<"$limited" || fail "429 without the rateLimit.responseHeaders"
grep -q 'rate limited, wait and retry.' <<<"$limited" || fail "429 without the configured body"
grep -qi '^ratelimit-policy:' <<<"$limited" || fail "429 without RateLimit-Policy (IETF headers)"
grep -qi '^ratelimit:' <<<"$limited" || fail "429 without RateLimit (IETF headers)"

step "a WasmPlugin deleted by hand is restored"
k -n "$APP_NS" delete wasmplugin "$wasmplugin" --wait=true
retry 60 "the operator to recreate WasmPlugin $wasmplugin" \
  k -n "$APP_NS" get wasmplugin "$wasmplugin" -o name

step "deleting the HeaderRateLimit garbage-collects its WasmPlugin"
k delete -f "$EXAMPLE" --wait=true
k -n "$APP_NS" wait --for=delete "wasmplugin/$wasmplugin" --timeout=60s
retry 120 "who-am-i to disappear from responses" header_absent who-am-i

step "PASS"
