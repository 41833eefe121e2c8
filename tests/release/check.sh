#!/usr/bin/env bash
# Offline checks of the release scripts that .github/workflows/release.yml runs (the workflow
# itself cannot run here: it needs GitHub, ghcr.io and Sigstore). Run by `make test`.
# HELM names the helm binary (`make release-check` passes .tools/helm/helm).
set -euo pipefail
cd "$(dirname "$0")/../.."
HELM=${HELM:-helm}
export HELM

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $*"; }
flunk() { failed=$((failed + 1)); echo "FAIL  $*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "release check FAILED: no version in Cargo.toml" >&2; exit 1; }

# 1. The tag check: the repository's own version passes, anything else is refused.
if out=$(scripts/release-version.sh "v$version") && [ "$out" = "$version" ]; then
  pass "release-version.sh accepts v$version, the version of Cargo.toml and Chart.yaml"
else
  flunk "release-version.sh v$version did not print $version (Cargo.toml, Chart.yaml disagree?)"
fi
for bad in "v$version.1" "$version" "v9999.0.0" "vX"; do
  if scripts/release-version.sh "$bad" >/dev/null 2>"$work/err"; then
    flunk "release-version.sh accepted the tag '$bad'"
  elif [ ! -s "$work/err" ]; then
    flunk "release-version.sh refused '$bad' without saying why"
  else
    pass "release-version.sh refuses the tag '$bad' and says why"
  fi
done

# 2. The chart as the release packages it: pinned digests in its default values.
chart_sums() { find charts/hrl-operator -type f -exec sha256sum {} + | sort; }
before=$(chart_sums)
filter_hex=$(printf '%064d' 7 | tr 0 a)
operator_digest=sha256:$(printf '%064d' 3 | tr 0 b)
if package=$(scripts/pin-chart.py --version "$version" --registry ghcr.io/example-owner \
  --filter-sha256 "$filter_hex" --operator-digest "$operator_digest" --out "$work/chart"); then
  pass "pin-chart.py packages the chart and renders it with the pins ($package)"
  values=$(tar -xzOf "$package" hrl-operator/values.yaml)
  for want in "  sha256: \"$filter_hex\"" "  url: \"oci://ghcr.io/example-owner/hrl-filter:$version\"" \
    "  repository: \"ghcr.io/example-owner/hrl-operator\"" "  digest: \"$operator_digest\""; do
    if grep -qxF "$want" <<<"$values"; then
      pass "the packaged values.yaml holds '${want#  }'"
    else
      flunk "the packaged values.yaml lacks '${want#  }'"
    fi
  done
  if "$HELM" lint "$package" >"$work/lint" 2>&1; then
    pass "helm lint passes on the packaged chart with its own defaults (filter pinned, no --set)"
  else
    cat "$work/lint" >&2
    flunk "helm lint fails on the packaged chart"
  fi
  if [ "$(chart_sums)" = "$before" ]; then
    pass "pin-chart.py leaves charts/hrl-operator in the repository unchanged"
  else
    flunk "pin-chart.py changed charts/hrl-operator"
  fi
else
  flunk "pin-chart.py failed"
fi
if scripts/pin-chart.py --version "$version" --registry ghcr.io/x --filter-sha256 "sha256:$filter_hex" \
  --operator-digest "$operator_digest" --out "$work/bad" 2>"$work/err" >/dev/null; then
  flunk "pin-chart.py accepted a filter sha256 with a sha256: prefix"
elif grep -q -- "--filter-sha256" "$work/err"; then
  pass "pin-chart.py refuses a filter sha256 that is not 64 hex and names the flag"
else
  flunk "pin-chart.py refused a bad filter sha256 without naming --filter-sha256"
fi

# 3. Release notes: the version's CHANGELOG section and the install/verify commands.
cat >"$work/CHANGELOG.md" <<'MD'
# Changelog
## [1.2.0] - 2030-01-02
- the new thing
## [1.1.0] - 2030-01-01
- the old thing
MD
if notes=$(CHANGELOG="$work/CHANGELOG.md" scripts/release-notes.sh 1.2.0 ghcr.io/example-owner \
  "$filter_hex" "$operator_digest" example-owner/header-rate-limit); then
  if grep -qx -- "- the new thing" <<<"$notes" && ! grep -q "the old thing" <<<"$notes"; then
    pass "release-notes.sh takes exactly the version's CHANGELOG section"
  else
    flunk "release-notes.sh did not take exactly the [1.2.0] section"
  fi
  for want in "helm install hrl-operator oci://ghcr.io/example-owner/charts/hrl-operator --version 1.2.0" \
    "ghcr.io/example-owner/hrl-filter@sha256:$filter_hex" \
    "https://github.com/example-owner/header-rate-limit/.github/workflows/release.yml@refs/tags/v1.2.0"; do
    if grep -qF -- "$want" <<<"$notes"; then
      pass "the release notes name '$want'"
    else
      flunk "the release notes lack '$want'"
    fi
  done
else
  flunk "release-notes.sh failed on a changelog with the version's section"
fi
if CHANGELOG="$work/CHANGELOG.md" scripts/release-notes.sh 1.3.0 ghcr.io/x "$filter_hex" \
  "$operator_digest" x/y >/dev/null 2>"$work/err" || ! grep -q "1.3.0" "$work/err"; then
  flunk "release-notes.sh did not refuse a version without a CHANGELOG section, naming it"
else
  pass "release-notes.sh refuses a version without a CHANGELOG section and names it"
fi

echo "release check: $passed passed, $failed failed"
[ "$failed" = 0 ]
