#!/usr/bin/env python3
"""Pull the filter image back with oras-py (not the client that pushed it) and check it.

Checked against istio pkg/wasm/imagefetcher.go (PrepareFetch, extractOCIStandardImage,
extractWasmPluginBinary): an OCI manifest whose last (here: only) layer is
application/vnd.oci.image.layer.v1.tar+gzip holding plugin.wasm; the digest Istio compares
filter.sha256 with is the manifest digest. Prints one line per check and
`registry round trip: N passed, N failed`; exits 1 on any failure.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

import oras.client

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {what}")
        else:
            self.failed += 1
            print(f"FAIL  {what}{': ' + detail if detail else ''}", file=sys.stderr)
        return ok


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main():
    p = argparse.ArgumentParser()
    for flag in ("--registry", "--repo", "--tag", "--expected-sha256", "--pushed-digest", "--wasm", "--work"):
        p.add_argument(flag, required=True)
    a = p.parse_args()
    checks = Checks()
    check = checks.check
    with open(a.wasm, "rb") as f:
        wasm = f.read()

    client = oras.client.OrasClient(hostname=a.registry, insecure=True)
    ref = f"{a.registry}/{a.repo}:{a.tag}"
    container = client.get_container(ref)

    # The manifest as the registry serves it for the tag: its bytes are what the digest covers.
    response = client.do_request(
        f"http://{container.manifest_url()}", "GET", headers={"Accept": MANIFEST_TYPE}
    )
    response.raise_for_status()
    raw = response.content
    served = sha256(raw)
    check(served == a.expected_sha256,
          "manifest digest served for the tag == filter.sha256 printed by make filter-image",
          f"served sha256:{served}, printed {a.expected_sha256}")
    check(a.pushed_digest == f"sha256:{a.expected_sha256}",
          "digest skopeo pushed == filter.sha256 printed by make filter-image",
          f"pushed {a.pushed_digest}")
    check(response.headers.get("Docker-Content-Digest") == f"sha256:{served}",
          "registry's Docker-Content-Digest header == sha256 of the manifest bytes",
          response.headers.get("Docker-Content-Digest", "<none>"))
    check(response.headers.get("Content-Type") == MANIFEST_TYPE,
          f"manifest Content-Type is {MANIFEST_TYPE}", response.headers.get("Content-Type", "<none>"))

    manifest = json.loads(raw)
    check(manifest.get("mediaType") == MANIFEST_TYPE, f"manifest mediaType is {MANIFEST_TYPE}",
          str(manifest.get("mediaType")))
    check(manifest.get("annotations", {}).get("module.wasm.image/variant") == "compat",
          "manifest annotation module.wasm.image/variant=compat", str(manifest.get("annotations")))
    layers = manifest.get("layers", [])
    if not check(len(layers) == 1, "exactly one layer", f"{len(layers)} layers"):
        return finish(checks)
    layer = layers[0]
    check(layer.get("mediaType") == LAYER_TYPE, f"layer mediaType is {LAYER_TYPE}", str(layer.get("mediaType")))
    check(manifest["config"].get("mediaType") == CONFIG_TYPE, f"config mediaType is {CONFIG_TYPE}",
          str(manifest["config"].get("mediaType")))

    try:
        by_digest = client.get_manifest(f"{a.registry}/{a.repo}@sha256:{a.expected_sha256}")
        detail = ""
    except ValueError as e:  # oras-py raises ValueError for a non-200 answer
        by_digest, detail = None, str(e)
    check(by_digest == manifest, "the registry serves the same manifest by digest (repo@sha256:<printed>)", detail)

    # The layer blob, checked like Istio reads it: gunzip, untar, the entry named plugin.wasm.
    blob_path = client.download_blob(container, layer["digest"], os.path.join(a.work, "layer.tar.gz"))
    with open(blob_path, "rb") as f:
        blob = f.read()
    check(f"sha256:{sha256(blob)}" == layer["digest"] and len(blob) == layer["size"],
          "layer blob matches its descriptor (digest, size)")
    tar_bytes = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        names = [(m.name, m.isreg()) for m in members]
        check(names == [("plugin.wasm", True)], "the layer holds exactly one regular file, plugin.wasm", str(names))
        extracted = tar.extractfile(members[0]).read() if members else b""
    check(extracted == wasm, f"plugin.wasm in the layer is byte-identical to {a.wasm}",
          f"{len(extracted)} bytes vs {len(wasm)}")

    config = json.loads(client.get_blob(container, manifest["config"]["digest"]).content)
    check(config.get("rootfs", {}).get("diff_ids") == [f"sha256:{sha256(tar_bytes)}"],
          "config rootfs.diff_ids == sha256 of the uncompressed layer", str(config.get("rootfs")))
    check((config.get("os"), config.get("architecture")) == ("linux", "amd64"),
          "config platform is linux/amd64 (as `make image-filter`)")

    # oras-py's own pull: it unpacks a tar+gzip layer into the output directory.
    out = os.path.join(a.work, "oras-pull")
    client.pull(target=ref, outdir=out)
    pulled = os.path.join(out, "plugin.wasm")
    check(os.path.isfile(pulled) and open(pulled, "rb").read() == wasm,
          f"`oras pull` unpacks plugin.wasm byte-identical to {a.wasm}")
    return finish(checks)


def finish(checks):
    print(f"registry round trip: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
