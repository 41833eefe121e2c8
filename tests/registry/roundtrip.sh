#!/usr/bin/env bash
# Registry round trip of the filter image: start a real registry (CNCF distribution, Debian's
# docker-registry) on 127.0.0.1, run `make filter-image`, push its OCI layout with skopeo, pull
# it back with a different client (oras-py, pull_check.py) and check what Istio's agent needs.
# Run by `make test`. Any missing tool or a registry that does not start is a failure, never a
# skip. Needs: docker-registry and skopeo (apt-get install -y docker-registry skopeo), a Python
# with oras (PYTHON, `make test` passes the .tools/py venv), and dist/plugin.wasm (make filter).
set -euo pipefail
cd "$(dirname "$0")/../.."

REGISTRY_BIN=${REGISTRY_BIN:-docker-registry}
SKOPEO=${SKOPEO:-skopeo}
PYTHON=${PYTHON:-python3}
MAKE=${MAKE:-make}
REPO=hrl-filter

fail() {
  echo "registry round trip FAILED: $*" >&2
  exit 1
}

command -v "$REGISTRY_BIN" >/dev/null ||
  fail "$REGISTRY_BIN not found: apt-get install -y docker-registry (.ci/run installs it)"
command -v "$SKOPEO" >/dev/null || fail "$SKOPEO not found: apt-get install -y skopeo (.ci/run installs it)"

work=$(mktemp -d)
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port: bind port 0, read it back, release it for the registry.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry=127.0.0.1:$port
mkdir -p "$work/storage"
cat >"$work/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: $registry
EOF
"$REGISTRY_BIN" serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!

# Up to 10 s for GET /v2/ to answer 200 (the distribution API's version check).
for _ in $(seq 100); do
  if ! kill -0 "$registry_pid" 2>/dev/null; then
    cat "$work/registry.log" >&2
    fail "the registry ($REGISTRY_BIN serve) exited before it answered on $registry"
  fi
  if python3 - "$registry" 2>/dev/null <<'EOF'; then
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=1)
EOF
    break
  fi
  sleep 0.1
done
python3 -c 'import sys, urllib.request; urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2)' \
  "$registry" 2>/dev/null || {
  cat "$work/registry.log" >&2
  fail "the registry did not answer GET http://$registry/v2/ within 10 s"
}
echo "registry: CNCF distribution ($REGISTRY_BIN) on $registry, storage in $work/storage"

"$PYTHON" -c 'import oras.client' 2>/dev/null ||
  fail "$PYTHON cannot import oras: run it through \`make filter-image-test\` (installs .tools/py)"
test -f dist/plugin.wasm || fail "dist/plugin.wasm is missing: run make filter"

# What a user runs; -o filter: package the dist/plugin.wasm that `make test` just built.
printed=$("$MAKE" --no-print-directory -s -o filter filter-image)
echo "$printed"
expected=$(sed -n 's/^filter\.sha256: \([0-9a-f]\{64\}\)$/\1/p' <<<"$printed")
[ -n "$expected" ] || fail "make filter-image printed no 'filter.sha256: <64 hex>' line"
layout=$(sed -n 's/^\([^ ]*\): OCI image layout, tag \([^;]*\);.*/\1:\2/p' <<<"$printed")
[ -n "$layout" ] || fail "make filter-image printed no '<dir>: OCI image layout, tag <tag>;' line"
tag=${layout##*:}

# Our own trust policy, so the test does not depend on /etc/containers/policy.json; signature
# checks are not what this test is about (release.yml signs with cosign).
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$work/policy.json"
"$SKOPEO" --policy "$work/policy.json" copy --quiet --preserve-digests --dest-tls-verify=false \
  --digestfile "$work/pushed.digest" "oci:$layout" "docker://$registry/$REPO:$tag"
pushed=$(cat "$work/pushed.digest")
echo "pushed with skopeo: $registry/$REPO:$tag@$pushed"

"$PYTHON" tests/registry/pull_check.py --registry "$registry" --repo "$REPO" --tag "$tag" \
  --expected-sha256 "$expected" --pushed-digest "$pushed" --wasm dist/plugin.wasm --work "$work/pull"
