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
install: ## Set up: system packages, .venv with pinned deps, the secure random op
	@command -v g++ >/dev/null && [ -e /usr/include/sodium.h ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ libsodium-dev; }
	[ -x $(PYTHON) ] || python3.11 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade "pip<26"
	$(PYTHON) -m pip install --progress-bar on -c operator/constraints.txt -e 'operator[operator,test]'
	$(PYTHON) -m privatemodel.runtime.secure_random.build

.PHONY: demo
demo: ## Train (or reuse) the reference CNN, share it, serve 3 private predictions
	$(PRIVATEMODEL) demo

.PHONY: test
test: ## Run all tests (unit, engine on local players, cluster, e2e)
	$(PYTEST) -ra tests

.PHONY: bench
bench: ## Benchmark plaintext vs private vs tf-encrypted's QueueServer (JSON in build/)
	$(PRIVATEMODEL) bench --output build/bench.json

# --- Test cluster (issue: real Kubernetes cluster for e2e) -------------------

# --- Operator, chart, images (issue: PrivateModel operator) -----------------
