#!/usr/bin/env python3
"""Write dist/plugin.wasm as a Wasm OCI image ("compat" variant) without Docker.

The result is an OCI image layout directory (oci-layout, index.json, blobs/sha256/...), which
skopeo, oras, crane and regctl read directly, e.g.
    skopeo copy --preserve-digests oci:dist/filter-image:TAG docker://REGISTRY/hrl-filter:TAG

Why this variant (istio pkg/wasm/imagefetcher.go, PrepareFetch / extractOCIStandardImage):
for an OCI manifest Istio's agent takes the LAST layer, requires the media type
application/vnd.oci.image.layer.v1.tar+gzip and extracts the tar entry whose base name is
plugin.wasm. It does not look at the config media type nor at annotations. The "oci" variant
(extractOCIArtifactImage) needs exactly TWO layers, one of them
application/vnd.module.wasm.content.layer.v1+wasm, and docker/buildah cannot build it, so
Dockerfile.filter could not describe the same image. This is what Dockerfile.filter builds
(FROM scratch, one COPY to /plugin.wasm, linux/amd64), with the optional manifest annotation
module.wasm.image/variant=compat of the Wasm image spec (solo-io/wasm spec/spec-compat.md).

Reproducible: the tar entry has mtime 0, uid/gid 0, no user names, mode 0644 (USTAR, no pax
headers); gzip has no file name and mtime 0; JSON is written with sorted keys; the config has
no creation time. The same plugin.wasm (and the same zlib) gives the same manifest digest.

Prints what to push and the chart values, ending with `filter.sha256: <64 hex>`: the hex of the
manifest digest, which is what Istio compares filter.sha256 with for an oci:// URL
(PrepareFetch returns img.Digest().Hex; cache.go compares it with the configured sha256).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# The tag grammar of the OCI distribution spec.
TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
VARIANT_ANNOTATION = "module.wasm.image/variant"
# The path Istio looks for (by base name) and Dockerfile.filter copies to (/plugin.wasm).
WASM_ENTRY = "plugin.wasm"
# Istio resolves an image index to linux/amd64; a single manifest is used as it is. Same
# platform as `make image-filter` (docker build --platform linux/amd64).
PLATFORM = {"os": "linux", "architecture": "amd64"}
# Same labels as Dockerfile.filter's final stage (operator/tests/images.rs compares them).
LABELS = {
    "org.opencontainers.image.title": "hrl-filter",
    "org.opencontainers.image.description": "hrl-filter proxy-wasm module (compat Wasm image: /plugin.wasm)",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.source": "https://github.com/hrl-dev/header-rate-limit",
}


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(wasm):
    """An uncompressed tar with one regular file, plugin.wasm, and nothing that varies."""
    info = tarfile.TarInfo(WASM_ENTRY)
    info.size = len(wasm)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(wasm))
    return out.getvalue()


def descriptor(media_type, blob):
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
    }


def build(wasm):
    """The blobs of the image and the manifest descriptor: (blobs by digest, manifest bytes)."""
    tar = layer_tar(wasm)
    layer = gzip.compress(tar, compresslevel=9, mtime=0)
    config = canonical_json(
        {
            **PLATFORM,
            "config": {"Labels": LABELS},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()],
            },
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(CONFIG_TYPE, config),
            "layers": [descriptor(LAYER_TYPE, layer)],
            "annotations": {VARIANT_ANNOTATION: "compat"},
        }
    )
    return [layer, config, manifest], manifest


def write_layout(out_dir, tag, wasm):
    """Writes the layout next to out_dir, then swaps it in, so a failure leaves no half image."""
    blobs, manifest = build(wasm)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".filter-image-", dir=parent)
    try:
        blob_dir = os.path.join(staging, "blobs", "sha256")
        os.makedirs(blob_dir)
        for blob in blobs:
            with open(os.path.join(blob_dir, hashlib.sha256(blob).hexdigest()), "wb") as f:
                f.write(blob)
        entry = descriptor(MANIFEST_TYPE, manifest)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [entry]}
        with open(os.path.join(staging, "index.json"), "wb") as f:
            f.write(canonical_json(index))
        with open(os.path.join(staging, "oci-layout"), "wb") as f:
            f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return hashlib.sha256(manifest).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--wasm", required=True, help="the module, e.g. dist/plugin.wasm")
    parser.add_argument("--out", required=True, help="OCI layout directory to (re)write")
    parser.add_argument("--tag", required=True, help="tag recorded in index.json")
    args = parser.parse_args()
    try:
        with open(args.wasm, "rb") as f:
            wasm = f.read()
    except OSError as e:
        sys.exit(f"filter-image: cannot read --wasm {args.wasm}: {e.strerror} (run `make filter`)")
    if not wasm.startswith(b"\0asm"):
        sys.exit(f"filter-image: --wasm {args.wasm} is not a WebAssembly module (no \\0asm magic)")
    if not TAG.fullmatch(args.tag):
        sys.exit(f"filter-image: --tag {args.tag!r} is not an OCI tag ({TAG.pattern})")
    digest = write_layout(args.out, args.tag, wasm)
    print(
        f"{args.out}: OCI image layout, tag {args.tag}; compat Wasm image: one {LAYER_TYPE}\n"
        f"  layer holding {WASM_ENTRY} ({len(wasm)} bytes), manifest annotation {VARIANT_ANNOTATION}=compat\n"
        f"manifest digest: sha256:{digest}\n"
        f"push (keeps the digest): skopeo copy --preserve-digests oci:{args.out}:{args.tag} docker://REGISTRY/hrl-filter:{args.tag}\n"
        f"chart values:   --set filter.url=oci://REGISTRY/hrl-filter:{args.tag} --set filter.sha256={digest}\n"
        f"filter.sha256: {digest}"
    )


if __name__ == "__main__":
    main()
