//! Static checks of Dockerfile.operator and Dockerfile.filter (there is no Docker engine in CI):
//! what they COPY exists in the repository or is produced by their own build step, every
//! workspace member reaches the builder, the runtime images are minimal and non-root, and the
//! filter is built exactly like `make filter`.

#[path = "image_support/dockerfile.rs"]
mod dockerfile;

use dockerfile::*;
use std::fs;

const DOCKERFILES: [&str; 2] = ["Dockerfile.operator", "Dockerfile.filter"];

#[test]
fn dockerfiles_copy_only_paths_that_exist_in_the_repository_and_are_not_docker_ignored()
-> TestResult {
    let ignored = dockerignore()?;
    for name in DOCKERFILES {
        for stage in dockerfile(name)? {
            for (sources, _) in context_copies(&stage) {
                for source in sources {
                    let path = workspace().join(&source);
                    assert!(
                        path.exists(),
                        "{name}: COPY {source}: {} does not exist",
                        path.display()
                    );
                    let first = source
                        .trim_end_matches('/')
                        .split('/')
                        .next()
                        .unwrap_or_default();
                    assert!(
                        !ignored
                            .iter()
                            .any(|pattern| pattern == first || pattern == &source),
                        "{name}: COPY {source} is excluded by .dockerignore"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn dockerfiles_copy_every_workspace_member_into_the_builder() -> TestResult {
    let members = workspace_members()?;
    assert!(!members.is_empty());
    for name in DOCKERFILES {
        let stages = dockerfile(name)?;
        let copied: Vec<String> = context_copies(&stages[0])
            .into_iter()
            .flat_map(|(sources, _)| sources)
            .collect();
        for file in ["Cargo.toml", "Cargo.lock"] {
            assert!(
                copied.iter().any(|c| c == file),
                "{name}: the builder must COPY {file}"
            );
        }
        for member in &members {
            assert!(
                copied.iter().any(|c| {
                    let dir = c.trim_end_matches('/');
                    member == dir || member.starts_with(&format!("{dir}/"))
                }),
                "{name}: workspace member {member} is not copied into the builder (cargo needs every member's manifest)"
            );
        }
    }
    Ok(())
}

#[test]
fn cargo_lock_is_in_the_repository_for_locked_builds() {
    assert!(
        workspace().join("Cargo.lock").is_file(),
        "Cargo.lock is missing: `cargo build --locked` in the Dockerfiles needs it"
    );
}

#[test]
fn builders_use_a_rust_version_at_least_the_workspace_rust_version() -> TestResult {
    let manifest = read("Cargo.toml")?;
    let required = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|rest| rest.split('"').nth(1))
        .ok_or("root Cargo.toml has no rust-version")?;
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    for name in DOCKERFILES {
        let text = read(name)?;
        let version = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("ARG RUST_VERSION="))
            .ok_or_else(|| format!("{name}: no `ARG RUST_VERSION=`"))?;
        assert!(
            parse(version) >= parse(required),
            "{name}: RUST_VERSION {version} is older than the workspace rust-version {required}"
        );
        let stages = dockerfile(name)?;
        assert!(
            stages[0].from.starts_with("rust:${RUST_VERSION}"),
            "{name}: the builder should be FROM rust:${{RUST_VERSION}}-..., is {}",
            stages[0].from
        );
    }
    Ok(())
}

/// Fails unless the `cargo build` RUN of `name`'s builder stage has each of `parts`.
fn assert_cargo_build_has(name: &str, builder: &Stage, parts: &[String]) -> TestResult {
    let runs = builder.all("RUN");
    let build = runs
        .iter()
        .find(|r| r.args.contains("cargo build"))
        .ok_or_else(|| format!("{name}: no `cargo build` in the builder"))?;
    for part in parts {
        assert!(
            build.args.contains(part.as_str()),
            "{name}: the build lacks `{part}`: {}",
            build.args
        );
    }
    Ok(())
}

/// Fails with `message` unless the workspace file `relative` contains `needle`.
fn assert_file_has(relative: &str, needle: &str, message: &str) -> TestResult {
    assert!(read(relative)?.contains(needle), "{message}");
    Ok(())
}

#[test]
fn operator_builder_runs_a_locked_release_build_of_the_operator_binary() -> TestResult {
    let stages = dockerfile("Dockerfile.operator")?;
    assert_cargo_build_has(
        "Dockerfile.operator",
        &stages[0],
        &[
            "--release".into(),
            "--locked".into(),
            "-p hrl-operator".into(),
            // Where the runtime stage copies it from.
            "target/release/hrl-operator /out/hrl-operator".into(),
        ],
    )?;
    assert_file_has(
        "operator/Cargo.toml",
        "name = \"hrl-operator\"",
        "operator/Cargo.toml no longer names the binary hrl-operator",
    )
}

#[test]
fn operator_image_holds_only_the_binary_and_runs_as_non_root() -> TestResult {
    let stages = dockerfile("Dockerfile.operator")?;
    let runtime = stages.last().ok_or("no stages")?;
    assert!(
        runtime.from.starts_with("gcr.io/distroless/") || runtime.from == "scratch",
        "runtime base should be distroless or scratch, is {}",
        runtime.from
    );
    for instruction in &runtime.instructions {
        assert!(
            ["COPY", "USER", "LABEL", "EXPOSE", "ENTRYPOINT", "CMD"]
                .contains(&instruction.keyword.as_str()),
            "unexpected {} in the operator's runtime stage",
            instruction.keyword
        );
    }
    let copies = runtime.all("COPY");
    assert_eq!(copies.len(), 1, "the runtime stage copies exactly one file");
    let builder = stages[0]
        .name
        .clone()
        .ok_or("the builder stage has no name")?;
    assert_eq!(
        copies[0].args,
        format!("--from={builder} /out/hrl-operator /hrl-operator")
    );
    let user = runtime.all("USER");
    let user = user.last().ok_or("no USER in the runtime stage")?;
    let uid: u32 = user
        .args
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| {
            format!(
                "USER {} is not numeric (kubelet can only verify runAsNonRoot for numeric users)",
                user.args
            )
        })?;
    assert_ne!(uid, 0, "the operator image must not run as root");
    let entrypoint = runtime.all("ENTRYPOINT");
    assert_eq!(
        entrypoint.first().map(|e| e.args.as_str()),
        Some(r#"["/hrl-operator"]"#)
    );
    Ok(())
}

#[test]
fn filter_image_is_from_scratch_and_holds_only_plugin_wasm() -> TestResult {
    let stages = dockerfile("Dockerfile.filter")?;
    let runtime = stages.last().ok_or("no stages")?;
    assert_eq!(
        runtime.from, "scratch",
        "the compat Wasm image must be FROM scratch"
    );
    for instruction in &runtime.instructions {
        assert!(
            ["COPY", "LABEL"].contains(&instruction.keyword.as_str()),
            "{} in the filter image's stage would add a layer or config beyond /plugin.wasm",
            instruction.keyword
        );
    }
    let copies = runtime.all("COPY");
    assert_eq!(
        copies.len(),
        1,
        "Istio requires exactly one layer in a compat Wasm image"
    );
    let producer = stages[stages.len() - 2]
        .name
        .clone()
        .ok_or("the optimising stage has no name")?;
    assert_eq!(
        copies[0].args,
        format!("--from={producer} /out/plugin.wasm /plugin.wasm")
    );
    Ok(())
}

#[test]
fn filter_builder_uses_the_same_target_profile_and_size_budget_as_make_filter() -> TestResult {
    let target = make_var("WASM_TARGET")?;
    let profile = make_var("WASM_PROFILE")?;
    let budget = make_var("FILTER_MAX_BYTES")?;
    let stages = dockerfile("Dockerfile.filter")?;
    assert!(
        stages[0]
            .all("RUN")
            .iter()
            .any(|r| r.args.contains(&format!("rustup target add {target}"))),
        "the builder must install the {target} target"
    );
    assert_cargo_build_has(
        "Dockerfile.filter",
        &stages[0],
        &[
            "--locked".into(),
            "-p hrl-filter".into(),
            format!("--target {target}"),
            format!("--profile {profile}"),
            format!("target/{target}/{profile}/hrl_filter.wasm /out/hrl_filter.wasm"),
        ],
    )?;
    assert_file_has(
        "Makefile",
        "-p hrl-filter --target $(WASM_TARGET) --profile $(WASM_PROFILE)",
        "`make filter` changed: update Dockerfile.filter and this test together",
    )?;
    let optimise = stages[stages.len() - 2]
        .all("RUN")
        .into_iter()
        .find(|r| r.args.contains("wasm-opt"))
        .ok_or("Dockerfile.filter: no wasm-opt step before the final stage")?;
    assert!(
        optimise.args.contains(&format!("-le {budget}")),
        "the Docker build must enforce FILTER_MAX_BYTES={budget}: {}",
        optimise.args
    );
    Ok(())
}

#[test]
fn filter_image_shrinks_the_module_with_the_same_binaryen_and_flags_as_make_filter() -> TestResult {
    let lines = makefile_lines()?;
    let make_opt = lines
        .iter()
        .find_map(|l| between(l, "$$wasm_opt -Oz", "$(WASM_OUT)"))
        .and_then(|flags| flags.strip_prefix("$$wasm_opt "))
        .ok_or("Makefile: no `wasm-opt -Oz ... $(WASM_OUT)` line in `make filter`")?;
    let make_binaryen = lines
        .iter()
        .find_map(|l| between(l, "binaryen@", " "))
        .ok_or("Makefile: no binaryen@VERSION")?;
    let stages = dockerfile("Dockerfile.filter")?;
    let runs = stages[stages.len() - 2].all("RUN");
    let docker_opt = runs
        .iter()
        .find_map(|r| between(&r.args, "-Oz", "/in/"))
        .ok_or("Dockerfile.filter: no `wasm-opt -Oz ... /in/...`")?;
    assert_eq!(
        normalize(docker_opt),
        normalize(make_opt),
        "wasm-opt flags differ from `make filter`"
    );
    assert!(
        runs.iter().any(|r| r
            .args
            .contains(&format!("npm pack --silent {make_binaryen}"))),
        "Dockerfile.filter must use {make_binaryen} like `make filter`"
    );
    Ok(())
}

#[test]
fn dockerfile_parser_joins_continuations_and_splits_stages() {
    let stages = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM rust:1 AS build\nRUN a \\\n && b\n\nFROM scratch\nCOPY --from=build /x /y\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    assert_eq!(stages[0].all("RUN")[0].args, "a  && b");
    assert_eq!(stages[1].from, "scratch");
    assert!(context_copies(&stages[1]).is_empty());
}

#[test]
fn e2e_script_is_executable_valid_bash() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let script = workspace().join("tests/e2e/run.sh");
    let mode = fs::metadata(&script)?.permissions().mode();
    assert!(mode & 0o111 != 0, "tests/e2e/run.sh is not executable");
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()?;
    assert!(
        out.status.success(),
        "bash -n tests/e2e/run.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
