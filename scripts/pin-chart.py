#!/usr/bin/env python3
"""Package the chart for a release with the published images pinned in its default values.

    scripts/pin-chart.py --version 0.1.0 --registry ghcr.io/OWNER \\
        --filter-sha256 <64 hex> --operator-digest sha256:<64 hex> --out dist/chart

Sets, in a copy of charts/hrl-operator/values.yaml, image.repository=REGISTRY/hrl-operator,
image.digest, filter.url=oci://REGISTRY/hrl-filter:VERSION and filter.sha256 (the filter image's
manifest digest, which Istio compares for oci:// URLs), then `helm package`s it and renders the
package once to check that the pins reached the Deployment. The chart in the repository is not
changed. HELM names the helm binary (default: helm).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "charts", "hrl-operator")


def fail(message):
    sys.exit(f"pin-chart: {message}")


def set_value(text, section, key, value):
    """Replaces `  key: ...` inside the top-level `section:` block; exactly one such line."""
    lines = text.split("\n")
    start = [i for i, line in enumerate(lines) if line.rstrip() == f"{section}:"]
    if len(start) != 1:
        fail(f"values.yaml: expected one top-level '{section}:' block, found {len(start)}")
    hits = []
    for i in range(start[0] + 1, len(lines)):
        line = lines[i]
        if line and not line.startswith((" ", "#")):
            break  # the next top-level key ends the block
        if re.match(rf"^  {re.escape(key)}:", line):
            hits.append(i)
    if len(hits) != 1:
        fail(f"values.yaml: expected one '{section}.{key}' line, found {len(hits)}")
    lines[hits[0]] = f'  {key}: "{value}"'
    return "\n".join(lines)


def chart_field(chart_yaml, field):
    match = re.search(rf'^{field}:\s*"?([^"\n]+)"?\s*$', chart_yaml, re.M)
    return match.group(1) if match else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--version", required=True)
    p.add_argument("--registry", required=True, help="e.g. ghcr.io/OWNER (lower case)")
    p.add_argument("--filter-sha256", required=True, help="manifest digest of the filter image, 64 hex")
    p.add_argument("--operator-digest", required=True, help="sha256:<64 hex> of the operator image (index)")
    p.add_argument("--out", required=True, help="directory for hrl-operator-VERSION.tgz")
    a = p.parse_args()
    if not re.fullmatch(r"[a-f0-9]{64}", a.filter_sha256):
        fail(f"--filter-sha256 {a.filter_sha256!r} is not 64 lowercase hex characters")
    if not re.fullmatch(r"sha256:[a-f0-9]{64}", a.operator_digest):
        fail(f"--operator-digest {a.operator_digest!r} is not sha256:<64 lowercase hex>")
    if not re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+", a.registry):
        fail(f"--registry {a.registry!r} is not REGISTRY/NAMESPACE in lower case")
    helm = os.environ.get("HELM", "helm")

    with tempfile.TemporaryDirectory() as tmp:
        chart = os.path.join(tmp, "hrl-operator")
        shutil.copytree(CHART, chart)
        with open(os.path.join(chart, "Chart.yaml")) as f:
            chart_yaml = f.read()
        for field in ("version", "appVersion"):
            if chart_field(chart_yaml, field) != a.version:
                fail(f"Chart.yaml {field} is {chart_field(chart_yaml, field)!r}, not {a.version!r}")
        values_path = os.path.join(chart, "values.yaml")
        with open(values_path) as f:
            values = f.read()
        filter_url = f"oci://{a.registry}/hrl-filter:{a.version}"
        operator_repo = f"{a.registry}/hrl-operator"
        values = set_value(values, "image", "repository", operator_repo)
        values = set_value(values, "image", "digest", a.operator_digest)
        values = set_value(values, "filter", "url", filter_url)
        values = set_value(values, "filter", "sha256", a.filter_sha256)
        with open(values_path, "w") as f:
            f.write(values)

        os.makedirs(a.out, exist_ok=True)
        subprocess.run([helm, "package", chart, "--destination", a.out], check=True, stdout=subprocess.DEVNULL)
    package = os.path.join(a.out, f"hrl-operator-{a.version}.tgz")
    if not os.path.isfile(package):
        fail(f"helm package did not write {package}")

    # The packaged defaults alone must render the pinned Deployment (no --set).
    rendered = subprocess.run(
        [helm, "template", "hrl", package, "--namespace", "hrl-system"],
        check=True, capture_output=True, text=True,
    ).stdout
    for want in (
        f'image: "{operator_repo}@{a.operator_digest}"',
        f'value: "{filter_url}"',
        f'value: "{a.filter_sha256}"',
    ):
        if want not in rendered:
            fail(f"the packaged chart does not render `{want}`")
    print(package)


if __name__ == "__main__":
    main()
