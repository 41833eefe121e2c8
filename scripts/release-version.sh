#!/usr/bin/env bash
# Usage: scripts/release-version.sh vX.Y.Z[-pre]
# Prints X.Y.Z[-pre] when the tag matches the workspace version (Cargo.toml) and the chart's
# version and appVersion (charts/hrl-operator/Chart.yaml), and CHANGELOG.md has a
# `## [X.Y.Z...]` section; fails naming the file otherwise.
# The release workflow runs it first, so a tag that disagrees with the sources publishes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-}
if [[ ! $tag =~ ^v([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$ ]]; then
  echo "release tag '$tag' is not vMAJOR.MINOR.PATCH[-PRERELEASE]" >&2
  exit 1
fi
version=${BASH_REMATCH[1]}

cargo=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
chart=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/hrl-operator/Chart.yaml)
app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/hrl-operator/Chart.yaml)
status=0
for pair in "Cargo.toml [workspace.package] version:$cargo" \
  "charts/hrl-operator/Chart.yaml version:$chart" \
  "charts/hrl-operator/Chart.yaml appVersion:$app"; do
  if [ "${pair##*:}" != "$version" ]; then
    echo "tag $tag: ${pair%:*} is '${pair##*:}', expected '$version' (bump it, see RELEASING.md)" >&2
    status=1
  fi
done
if ! awk -v v="$version" 'index($0, "## [" v "]") == 1 { found = 1 } END { exit !found }' CHANGELOG.md; then
  echo "tag $tag: CHANGELOG.md has no '## [$version]' section (see RELEASING.md)" >&2
  status=1
fi
[ "$status" = 0 ] && echo "$version"
exit "$status"
