# image-promoter — the entry points. `make help` lists them.
#
# Everything the targets need beyond the machine's toolchains (Rust, Go, Python,
# apt) is installed by `make tools`, at pinned versions, into a cache outside the
# checkout; the test world runs from target/testenv/.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

TESTENV    := target/testenv
TESTENV_PY  = $(TESTENV)/bin/python tests/testenv/testenv.py
CARGO      ?= cargo
CRDS_FILE  := crds/imagepromoter.dev.yaml
VERSION    := $(shell awk -F'"' '/^version/ {print $$2; exit}' Cargo.toml)
CHART      := charts/image-promoter

.PHONY: help
help: ## List the entry points
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## Install the pinned tools (etcd, kube-apiserver, kubelet, controller manager, scheduler, registry, moto, cosign, helm, kubeconform, crane, regctl, regsync, cargo-cyclonedx, promtool; containerd, runc, CNI plugins, skopeo from Debian)
	@tests/testenv/install-tools.sh

.PHONY: env-up
env-up: tools ## Start (or reuse) the local test world; writes target/testenv/env
	@$(TESTENV_PY) up

.PHONY: env-up-argocd
env-up-argocd: tools ## The test world with Argo CD (application controller, repo server, API server, Redis) as `make env-up PROMOTER_TESTENV_ARGOCD=1`; tests/gitops needs it
	@PROMOTER_TESTENV_ARGOCD=1 $(TESTENV_PY) up

.PHONY: env-down
env-down: ## Stop every process of the test world and remove what its pods left (mounts, network namespaces, containers)
	@if [ -x $(TESTENV)/bin/python ]; then $(TESTENV_PY) down; else echo "testenv: not installed, nothing to stop"; fi

.PHONY: env-status
env-status: ## Show which test-world processes run
	@$(TESTENV_PY) status

.PHONY: build
build: ## Build the binary and every test target
	@$(CARGO) build --locked --all-targets

.PHONY: test
test: env-up ## Run every test: unit, integration against the test world (the chart on its node with the image `make image` pushes), generated-CRD, health-check, chart and image checks
	@$(MAKE) --no-print-directory image
	@set -a && . $(TESTENV)/env && set +a && export PROMOTER_TEST_OPERATOR_IMAGE=$$PROMOTER_TEST_ECR_REGISTRY/image-promoter:$(VERSION) && \
	  $(CARGO) test --locked --all-targets --no-fail-fast
	@set -a && . $(TESTENV)/env && set +a && if [ -n "$$PROMOTER_TEST_ARGOCD_SERVER" ]; then \
	  $(CARGO) test --locked --test gitops --no-fail-fast; else echo "test: the world has no Argo CD (PROMOTER_TESTENV_ARGOCD=1 make env-up): tests/gitops not run"; fi
	@$(MAKE) --no-print-directory crds-check
	@$(MAKE) --no-print-directory health-check
	@$(MAKE) --no-print-directory chart-check
	@$(MAKE) --no-print-directory image-check

.PHONY: lint
lint: ## cargo fmt --check and clippy -D warnings
	@$(CARGO) fmt --all -- --check
	@$(CARGO) clippy --locked --all-targets -- -D warnings
	@$(CARGO) clippy --locked --test gitops -- -D warnings

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types
	@mkdir -p crds
	@$(CARGO) run --quiet --locked --bin image-promoter -- crds > $(CRDS_FILE).tmp
	@mv $(CRDS_FILE).tmp $(CRDS_FILE)
	@echo "wrote $(CRDS_FILE)"
	@$(MAKE) --no-print-directory chart-sync

.PHONY: crds-check
crds-check: ## Fail when crds/ differs from what the Rust types generate
	@$(CARGO) run --quiet --locked --bin image-promoter -- crds | diff -u $(CRDS_FILE) - \
	  || { echo "crds/ is out of date with the Rust types: run 'make crds' and commit"; exit 1; }

.PHONY: health-check
health-check: ## Argo CD health checks (health.lua in gopher-lua) and Flux's kstatus on their fixtures (integrations/argocd)
	@cd integrations/argocd/harness && go test -count=1 ./...

.PHONY: health-fixtures
health-fixtures: env-up ## Export the health checks' testdata again from real objects of the test world (KINDS="ImagePromotion RegistryMirror")
	@$(CARGO) build --locked --bin image-promoter
	@$(TESTENV)/bin/python integrations/argocd/export-testdata.py $(foreach kind,$(or $(KINDS),ImagePromotion),--kind $(kind))

.PHONY: chart-sync
chart-sync: ## Copy crds/ and deploy/rbac.yaml into the chart and regenerate its README's values table
	@cp $(CRDS_FILE) $(CHART)/files/crds.yaml
	@cp deploy/rbac.yaml $(CHART)/files/rbac.yaml
	@$(TESTENV)/bin/python tests/chart/values_doc.py $(CHART) --write

.PHONY: chart-check
chart-check: env-up ## helm lint --strict; every value set rendered, validated offline by kubeconform and dry-run on the test world's apiserver; schema and README checks; the alerts through promtool check rules and promtool test rules
	@set -a && . $(TESTENV)/env && set +a && $(TESTENV)/bin/python tests/chart/check_chart.py --server

.PHONY: release-binary
release-binary: ## Build the release binary (target/release/image-promoter) that the image holds
	@$(CARGO) build --release --locked --bin image-promoter

.PHONY: release
release: tools $(if $(REGISTRY),,env-up) ## Publish VERSION (Cargo.toml's) to REGISTRY=host/path (default: the test world's internal ECR): the image, the chart as oci://REGISTRY/charts, both signed with COSIGN_KEY, the crates' SBOM attested (hack/release/release.py)
	@if [ -z "$(REGISTRY)" ]; then set -a && . $(TESTENV)/env && set +a; fi; \
	  export PATH=$(CURDIR)/$(TESTENV)/bin:$$PATH; \
	  registry="$(or $(REGISTRY),$$PROMOTER_TEST_ECR_REGISTRY)"; \
	  hack/release/release.py --preflight --version $(VERSION) --registry "$$registry" && \
	  $(MAKE) --no-print-directory release-binary && \
	  hack/release/release.py --version $(VERSION) --registry "$$registry"

.PHONY: image
image: tools $(if $(IMAGE),,env-up) release-binary ## Build the operator's image without Docker (OCI layout in target/image/) and push it to IMAGE=host/repo:tag (default: the test world's internal ECR; any world registry gets its CA and credentials)
	@if [ -z "$(IMAGE)" ]; then set -a && . $(TESTENV)/env && set +a; fi; \
	  PATH=$(CURDIR)/$(TESTENV)/bin:$$PATH hack/image/build.py \
	    --push "$(or $(IMAGE),$$PROMOTER_TEST_ECR_REGISTRY/image-promoter)"

.PHONY: image-check
image-check: env-up release-binary ## Build the image twice (same digest), check its config and layer, push it to the test world; hack/release's pure checks
	@set -a && . $(TESTENV)/env && set +a && python3 hack/image/test_build.py
	@python3 hack/release/test_release.py

.PHONY: demo demo-down
demo: $(if $(ARGOCD),env-up-argocd,env-up) image ## (ARGOCD=1: and the Argo CD Application view) The operator end to end: the test world with its node, the image, the chart, seeded images, the examples applied and watched until they settle (docs in README)
	@set -a && . $(TESTENV)/env && set +a && \
	  $(TESTENV)/bin/python demo/demo.py --image $$PROMOTER_TEST_ECR_REGISTRY/image-promoter:$(VERSION) $(if $(ARGOCD),--argocd)

demo-down: ## Stop the demo: the whole test world (as make env-down)
	@$(MAKE) --no-print-directory env-down

.PHONY: soak
soak: env-up release-binary ## The soak: 10 minutes of the release build under churn (1,000 promotions, 20 mirrors; apiserver restarted, ECR Public down 30 s, leader killed); checks, then writes docs/benchmarks-operator.md's soak section (SOAK_MINUTES, SOAK_PROMOTIONS, SOAK_MIRRORS override)
	@set -a && . $(TESTENV)/env && set +a && \
	  export IMAGE_PROMOTER_BIN=$$(realpath $${CARGO_TARGET_DIR:-target})/release/image-promoter \
	    SOAK_MINUTES=$(or $(SOAK_MINUTES),10) SOAK_PROMOTIONS=$(or $(SOAK_PROMOTIONS),1000) SOAK_MIRRORS=$(or $(SOAK_MIRRORS),20) \
	    SOAK_REPORT=$(CURDIR)/docs/benchmarks-operator.md && \
	  $(CARGO) test --release --locked --test soak -- --nocapture

.PHONY: bench bench-operator bench-mirror
bench-operator: env-up ## The operator at scale (bench profile = release): 100 and 1,000 promotions at once, 1,000 and 10,000 through one resync (requests per object at the registry and the apiserver); writes docs/benchmarks-operator.md (BENCH_QUICK=1: 100 and 1,000 only)
	@set -a && . $(TESTENV)/env && set +a && $(CARGO) bench --locked --bench operator

bench-mirror: env-up ## The RegistryMirror against regsync and skopeo sync: 1,000 tags, backfill and idle interval, requests counted at the registries (docs/benchmarks-mirror.md; BENCH_QUICK=1: 100 tags)
	@python3 bench/test_mirror.py --quiet
	@$(CARGO) build --release --locked --bin image-promoter
	@python3 bench/mirror.py

bench: env-up ## Benchmark the copy engine against skopeo, crane and regctl (docs/benchmarks.md; BENCH_QUICK=1 for a quick try), then the operator (docs/benchmarks-operator.md) and the mirror (docs/benchmarks-mirror.md)
	@$(CARGO) build --release --locked --bin image-promoter
	@python3 bench/bench.py
	@set -a && . $(TESTENV)/env && set +a && $(CARGO) bench --locked --bench operator
	@python3 bench/mirror.py
