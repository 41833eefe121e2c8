//! `make filter-image` (scripts/filter-image.py, no Docker) and Dockerfile.filter (Docker) must
//! describe the same Wasm image: the "compat" variant Istio's agent extracts (istio
//! pkg/wasm/imagefetcher.go, extractOCIStandardImage): one tar+gzip layer whose only file is
//! /plugin.wasm, the same platform and labels. The image must also be reproducible, since its
//! manifest digest is the chart's filter.sha256. And the registry round trip
//! (tests/registry/roundtrip.sh, run by `make test`) must fail, never skip, without a registry.

#[path = "image_support/dockerfile.rs"]
mod dockerfile;

use dockerfile::*;
use serde_json::Value;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Self, Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("hrl-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs scripts/filter-image.py on `wasm`; returns its stdout.
fn filter_image(wasm: &Path, out: &Path, tag: &str) -> Result<String, Box<dyn Error>> {
    let output = Command::new("python3")
        .arg(workspace().join("scripts/filter-image.py"))
        .arg("--wasm")
        .arg(wasm)
        .arg("--out")
        .arg(out)
        .args(["--tag", tag])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "scripts/filter-image.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn json_file(path: &Path) -> Result<Value, Box<dyn Error>> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn blob(layout: &Path, digest: &Value) -> PathBuf {
    let digest = digest.as_str().unwrap_or_default();
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// A small valid-looking module: the Wasm magic and version, then `fill` bytes.
fn fake_wasm(path: &Path, fill: u8) -> Result<(), Box<dyn Error>> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend(std::iter::repeat_n(fill, 4096));
    fs::write(path, bytes)?;
    Ok(())
}

#[test]
fn make_filter_image_and_dockerfile_filter_describe_the_same_compat_variant() -> TestResult {
    let stages = dockerfile("Dockerfile.filter")?;
    let runtime = stages.last().ok_or("Dockerfile.filter has no stages")?;
    assert_eq!(runtime.from, "scratch");
    let copies = runtime.all("COPY");
    assert_eq!(copies.len(), 1, "one COPY = one layer");
    let (_, words) = copies[0].flags_and_words();
    let destination = words.last().ok_or("COPY without destination")?;
    let docker_labels = labels(runtime)?;

    let scratch = Scratch::new("filter-image-variant")?;
    let wasm = scratch.0.join("plugin.wasm");
    fake_wasm(&wasm, 7)?;
    let layout = scratch.0.join("layout");
    filter_image(&wasm, &layout, "t1")?;

    let index = json_file(&layout.join("index.json"))?;
    let manifests = index["manifests"]
        .as_array()
        .ok_or("index.json: no manifests")?;
    assert_eq!(manifests.len(), 1, "one image in the layout");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "t1"
    );
    let manifest = json_file(&blob(&layout, &manifests[0]["digest"]))?;
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"], "compat",
        "the Wasm image spec's compat annotation"
    );
    let layers = manifest["layers"].as_array().ok_or("manifest: no layers")?;
    assert_eq!(layers.len(), 1, "exactly one layer, like the Dockerfile");
    assert_eq!(
        layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "Istio's compat variant needs a tar+gzip last layer"
    );

    // The layer's files, listed by GNU tar: only the Dockerfile's COPY destination.
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(blob(&layout, &layers[0]["digest"]))
        .output()?;
    assert!(listing.status.success(), "tar cannot read the layer");
    let listing = String::from_utf8(listing.stdout)?;
    let entries: Vec<&str> = listing.lines().collect();
    assert_eq!(entries.len(), 1, "one file in the layer: {listing}");
    assert!(
        entries[0].starts_with("-rw-r--r-- 0/0"),
        "a regular file, mode 0644, owned by 0/0: {}",
        entries[0]
    );
    assert!(
        entries[0].ends_with(&format!(" {}", destination.trim_start_matches('/'))),
        "the layer holds {destination} like Dockerfile.filter's COPY: {}",
        entries[0]
    );

    // The config: same platform as `make image-filter`, same labels as the Dockerfile.
    let config = json_file(&blob(&layout, &manifest["config"]["digest"]))?;
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let platform = format!(
        "{}/{}",
        config["os"].as_str().unwrap_or_default(),
        config["architecture"].as_str().unwrap_or_default()
    );
    assert!(
        makefile_lines()?
            .iter()
            .any(|l| l.contains(&format!("--platform {platform}"))
                && l.contains("Dockerfile.filter")),
        "`make image-filter` does not build for {platform}, the platform of `make filter-image`"
    );
    let config_labels = config["config"]["Labels"]
        .as_object()
        .ok_or("config: no Labels")?;
    assert_eq!(config_labels.len(), docker_labels.len(), "same label count");
    for (key, value) in &docker_labels {
        assert_eq!(
            config_labels.get(key).and_then(Value::as_str),
            Some(value.as_str()),
            "label {key} differs between Dockerfile.filter and make filter-image"
        );
    }
    Ok(())
}

#[test]
fn filter_image_digest_depends_only_on_the_module_bytes() -> TestResult {
    let scratch = Scratch::new("filter-image-reproducible")?;
    let wasm = scratch.0.join("plugin.wasm");
    let digest_line = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("filter.sha256: "))
            .map(str::to_string)
    };

    fake_wasm(&wasm, 1)?;
    let first = digest_line(&filter_image(&wasm, &scratch.0.join("a"), "t")?)
        .ok_or("no `filter.sha256: ` line")?;
    // Same bytes, new file (new mtime), other output directory and tag: same digest.
    fs::remove_file(&wasm)?;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fake_wasm(&wasm, 1)?;
    let again = digest_line(&filter_image(&wasm, &scratch.0.join("b"), "other-tag")?)
        .ok_or("no `filter.sha256: ` line")?;
    assert_eq!(
        first, again,
        "the same module must give the same manifest digest"
    );
    assert_eq!(first.len(), 64);
    assert!(
        first
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    fake_wasm(&wasm, 2)?;
    let changed = digest_line(&filter_image(&wasm, &scratch.0.join("c"), "t")?)
        .ok_or("no `filter.sha256: ` line")?;
    assert_ne!(first, changed, "another module must give another digest");
    Ok(())
}

#[test]
fn filter_image_refuses_a_file_that_is_not_a_wasm_module() -> TestResult {
    let scratch = Scratch::new("filter-image-not-wasm")?;
    let not_wasm = scratch.0.join("plugin.wasm");
    fs::write(&not_wasm, "#!/bin/sh\n")?;
    let error = filter_image(&not_wasm, &scratch.0.join("out"), "t")
        .err()
        .ok_or("a non-Wasm file was packaged")?;
    assert!(
        error.to_string().contains("not a WebAssembly module"),
        "{error}"
    );
    assert!(
        !scratch.0.join("out").exists(),
        "nothing written on failure"
    );
    Ok(())
}

#[test]
fn registry_round_trip_fails_loudly_when_the_registry_is_missing_or_dies() -> TestResult {
    let script = workspace().join("tests/registry/roundtrip.sh");
    for (registry_bin, message) in [
        (
            "/nonexistent/docker-registry",
            "not found: apt-get install -y docker-registry",
        ),
        ("false", "exited before it answered"),
    ] {
        let out = Command::new("bash")
            .arg(&script)
            .env("REGISTRY_BIN", registry_bin)
            // Any existing command: the registry check comes first.
            .env("SKOPEO", "true")
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "roundtrip.sh passed with REGISTRY_BIN={registry_bin}"
        );
        assert!(
            stderr.contains("registry round trip FAILED") && stderr.contains(message),
            "REGISTRY_BIN={registry_bin}: expected '{message}', got: {stderr}"
        );
    }
    Ok(())
}
