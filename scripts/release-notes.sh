#!/usr/bin/env bash
# Usage: scripts/release-notes.sh VERSION REGISTRY FILTER_SHA256 OPERATOR_DIGEST REPOSITORY
# Prints the GitHub release notes: the version's CHANGELOG.md section (`## [VERSION] ...`), how
# to install the published chart, and how to verify signatures and checksums.
# CHANGELOG names another changelog file (tests/release/check.sh uses a fixture).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" = 5 ] || { echo "usage: $0 VERSION REGISTRY FILTER_SHA256 OPERATOR_DIGEST OWNER/REPO" >&2; exit 1; }
version=$1 registry=$2 filter_sha256=$3 operator_digest=$4 repository=$5
changelog=${CHANGELOG:-CHANGELOG.md}

section=$(awk -v v="$version" '
  index($0, "## [" v "]") == 1 { on = 1; next }
  on && /^## \[/ { exit }
  on { print }' "$changelog")
if [ -z "${section//[[:space:]]/}" ]; then
  echo "$changelog has no '## [$version]' section (or it is empty): add it before tagging" >&2
  exit 1
fi
identity="https://github.com/$repository/.github/workflows/release.yml@refs/tags/v$version"
issuer=https://token.actions.githubusercontent.com

cat <<NOTES
$section

## Install

\`\`\`sh
helm install hrl-operator oci://$registry/charts/hrl-operator --version $version \\
  -n hrl-system --create-namespace
\`\`\`

The chart's default values pin both images by digest:

- operator: \`$registry/hrl-operator@$operator_digest\` (linux/amd64, linux/arm64)
- filter: \`oci://$registry/hrl-filter:$version\`, \`filter.sha256=$filter_sha256\` (the
  image's manifest digest, which Istio checks)

Assets: \`headerratelimits.hrl.dev.yaml\` (the CRD, for \`kubectl apply --server-side\` before
\`helm upgrade\`), \`hrl-operator-$version-<target>.tar.gz\` (the \`hrl-operator\` binary:
\`render -f FILE\` prints the WasmPlugins for HeaderRateLimits offline, \`crd\` prints the CRD),
the packaged chart, the filter's SBOM (SPDX) and \`SHA256SUMS\`.

## Verify

Everything was signed keyless by this repository's release workflow:

\`\`\`sh
for ref in $registry/hrl-operator@$operator_digest \\
           $registry/hrl-filter@sha256:$filter_sha256 \\
           $registry/charts/hrl-operator:$version; do
  cosign verify "\$ref" --certificate-identity "$identity" \\
    --certificate-oidc-issuer $issuer
done
cosign verify-attestation --type spdxjson $registry/hrl-filter@sha256:$filter_sha256 \\
  --certificate-identity "$identity" --certificate-oidc-issuer $issuer
sha256sum -c SHA256SUMS
\`\`\`
NOTES
