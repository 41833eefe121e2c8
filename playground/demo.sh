#!/usr/bin/env bash
# `make demo`: start the playground with examples/seed-equivalent.yaml on a free loopback port,
# send a few requests with curl, print each status and the headers that matter, and stop.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${HRL_PLAYGROUND_BIN:-target/debug/hrl-playground}
policy=${POLICY:-examples/seed-equivalent.yaml}
module=${HRL_FILTER_WASM:-dist/plugin.wasm}
out=$(mktemp)
"$bin" --policy "$policy" --module "$module" --listen 127.0.0.1:0 --workers 2 >"$out" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"; }
trap cleanup EXIT

for _ in $(seq 1 300); do
  grep -q 'listening on' "$out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; exit 1; }
  sleep 0.1
done
grep -q 'listening on' "$out" || { cat "$out" >&2; echo "the playground did not start" >&2; exit 1; }
cat "$out"
url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$out" | head -n 1)

request() {
  echo
  echo "\$ curl -si $url/headers   # $1"
  curl -si --max-time 5 "$url/headers" | tr -d '\r' \
    | grep -iE '^(HTTP/|who-am-i|injected-by|hally|wang|ratelimit|ratelimit-policy|retry-after|powered-by):?' \
    | sed 's/^/  /'
}
request "1st: allowed (burst 2)"
request "2nd: allowed, bucket now empty"
request "3rd: limited -> 429 with retry-after"
echo
echo "... sleeping 1 s (2 tokens per second) ..."
sleep 1
request "4th: allowed again"
echo
echo "Keep it running yourself:"
echo "  $bin --policy $policy --module $module --listen 127.0.0.1:8080"
echo "  curl -si http://127.0.0.1:8080/headers"
