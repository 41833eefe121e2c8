#!/usr/bin/env bash
# `make demo-cluster`: one limit shared by two proxies. Starts redis-server, the hrl-rls rate
# limit service (Kuadrant's Limitador behind Envoy's RLS v3 API) counting in it, and two
# playground proxies (two "pods") with a scope: Cluster policy of 5 per minute; curls both in
# turn and shows that together they admit 5, then answer 429; stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

playground=${HRL_PLAYGROUND_BIN:-target/debug/hrl-playground}
rls=${HRL_RLS_BIN:-target/debug/hrl-rls}
module=${HRL_FILTER_WASM:-dist/plugin.wasm}
command -v redis-server >/dev/null || {
  echo "redis-server is not installed: apt-get install -y redis-server" >&2
  exit 1
}

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# A free loopback port (bound and released by Python, which the test tools need anyway).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for FILE PATTERN PID WHAT
wait_for() {
  for _ in $(seq 1 300); do
    grep -q "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  cat "$1" >&2
  echo "$4 did not start" >&2
  exit 1
}

# The policy: 5 requests per minute for the whole workload, counted by the service. (Like
# examples/cluster-limit.yaml, without its per-key count, so curl alone shows the limit.)
policy=${POLICY:-$dir/five-per-minute.yaml}
[ -n "${POLICY:-}" ] || cat >"$policy" <<'YAML'
apiVersion: hrl.dev/v1alpha1
kind: HeaderRateLimit
metadata:
  name: shared
  namespace: default
spec:
  selector:
    matchLabels:
      app: demo
  rateLimit:
    tokens: 5
    per: 1m
    scope: Cluster
YAML

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_for "$dir/redis.log" 'Ready to accept connections' "${pids[-1]}" redis-server

rls_port=$(free_port)
"$rls" --listen "127.0.0.1:$rls_port" --redis "redis://127.0.0.1:$redis_port" --domain hrl \
  >"$dir/rls.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$rls_port") 2>/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$dir/rls.log" >&2; exit 1; }
  sleep 0.1
done
echo "redis-server on 127.0.0.1:$redis_port; hrl-rls (Limitador) on 127.0.0.1:$rls_port"

urls=()
for pod in a b; do
  "$playground" --policy "$policy" --module "$module" --listen 127.0.0.1:0 --workers 2 \
    --rls "127.0.0.1:$rls_port" >"$dir/$pod.log" 2>&1 &
  pids+=($!)
  wait_for "$dir/$pod.log" 'listening on' "${pids[-1]}" "playground $pod"
  urls+=("$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$dir/$pod.log" | head -n 1)")
done
cat "$dir/a.log"
echo "second proxy: ${urls[1]}"

for i in $(seq 1 8); do
  url=${urls[$(((i - 1) % 2))]}
  echo
  echo "\$ curl -si $url/headers   # request $i, proxy $(((i - 1) % 2 + 1))"
  curl -si --max-time 5 "$url/headers" | tr -d '\r' \
    | grep -iE '^(HTTP/|ratelimit|ratelimit-policy|retry-after):?' | sed 's/^/  /'
done
echo
echo "Both proxies drew from one count of 5 per minute, kept by the rate limit service."
