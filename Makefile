# coinstream: `make run` starts the local pipeline, `make test` proves it. `make help` lists all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV_HOME := .cache/uv
UV := $(UV_HOME)/bin/uv
VENV := .venv
VENV_BIN := $(VENV)/bin
DASHBOARD_DIR := services/dashboard
DASHBOARD_ASSETS := $(DASHBOARD_DIR)/node_modules/.installed
# Processes started by make find the project's tools first.
export PATH := $(CURDIR)/$(VENV_BIN):$(PATH)
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: help setup prometheus chromium run test test-unit test-integration test-browser test-cluster chaos lint format schemas bench looker-url status docker-prerequisites up down logs test-docker clean-state clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "coinstream: $(PYTHON) not found; install Python 3.11 or newer" >&2; exit 2; }
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet uv==$(UV_VERSION)

# The environment is rebuilt from the lock file whenever it or pyproject.toml changes. Its
# modules are compiled to bytecode once, here: a process that must compile what it imports
# (when PYTHONDONTWRITEBYTECODE is set no .pyc is ever kept) spends 3.8 CPU-seconds importing
# the stream worker and control service instead of 1.6, and every service a test starts pays it.
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra emulator --compile-bytecode
	@touch $@

# checkov, the Dockerfile scanner of `make test`, in an environment of its own (its pins would
# hold back a runtime dependency in ours), from its own lock file.
CHECKOV := .cache/checkov/bin/checkov
$(CHECKOV): $(UV) deploy/docker/checkov/uv.lock deploy/docker/checkov/pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/.cache/checkov $(UV) sync --frozen --quiet --compile-bytecode --project deploy/docker/checkov
	@touch $@

setup: $(VENV)/.synced $(CHECKOV) prometheus chromium $(DASHBOARD_ASSETS) ## install locked Python packages, Prometheus, Chromium, the dashboard's chart library, fetch Kafka and Spark jars (once)
	$(VENV_BIN)/python -m deploy.local.stack setup

# The dashboard's chart library (Chart.js) from npm, at the version package-lock.json pins; the
# dashboard serves it itself. Reinstalled whenever the lock file changes.
$(DASHBOARD_ASSETS): $(DASHBOARD_DIR)/package.json $(DASHBOARD_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "coinstream: npm not found; the dashboard's chart library comes from the npm registry: install Node.js and npm (Debian/Ubuntu: \`apt-get install npm\`) and retry" >&2; exit 2; }
	npm ci --prefix $(DASHBOARD_DIR) --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# Debian's Chromium drives the dashboard's browser tests (Playwright's own download is not used).
chromium:
	@[ -x /usr/bin/chromium ] || { \
	  [ "$$(id -u)" = 0 ] || { echo "coinstream: Chromium (for the dashboard's browser tests) is not installed and installing it needs root; run \`sudo apt-get update && sudo apt-get install -y chromium\` and retry" >&2; exit 2; }; \
	  echo "setup: installing Chromium (apt-get install chromium) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	    || { echo "coinstream: apt-get could not install chromium; see the output above" >&2; exit 2; }; \
	}

# Debian's package; the service it would start is stopped again: `make run` runs its own.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "coinstream: Prometheus is not installed and installing it needs root; run \`sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus\` and retry" >&2; exit 2; }; \
	  echo "setup: installing Prometheus (apt-get install prometheus) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
	    || { echo "coinstream: apt-get could not install prometheus; see the output above" >&2; exit 2; }; \
	  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
	}

run: setup ## start the local stack in the foreground; Ctrl-C stops everything
	$(VENV_BIN)/python -m deploy.local.stack run

# `make test` runs its test modules on this many processes (pytest-xdist), each with its own
# broker, emulator and test ports; 0 runs them all in pytest's own process. Three keep two cores
# busy (96%; two left 12% idle while tests waited on brokers and triggers: docs/testing.md).
TEST_PROCESSES ?= 3
# The tests keep Python's compiled modules (__pycache__, Python's default) even where
# PYTHONDONTWRITEBYTECODE is set: without them each test process rewrote and compiled every
# test module again (collection 10.7 s instead of 4.7 s), and each service it started compiled
# our own modules again.
KEEP_BYTECODE := PYTHONDONTWRITEBYTECODE=
# The cluster suite's three modules: two processes, as its clusters fill two cores already.
CLUSTER_TEST_PROCESSES ?= 2

test: setup ## run every test (starts its own broker and emulator on test ports)
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest --numprocesses $(TEST_PROCESSES) --dist loadfile

test-unit: setup ## run the unit tests only
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest -m unit

test-integration: setup ## run the integration tests only
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest -m integration

test-browser: setup ## run the browser tests only (the dashboard in headless Chromium)
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest -m browser

test-cluster: setup ## the Spark standalone and three-broker Kafka tests: executors and brokers SIGKILLed, each record once (about 4 min)
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest -m cluster --numprocesses $(CLUSTER_TEST_PROCESSES) --dist loadfile tests/cluster

chaos: setup ## the fault suite: the whole local pipeline under kills, outages and CoinCap fault storms, checked record by record (about 40 min; COINSTREAM_CHAOS_LONG_MINUTES shortens its long run)
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest -m 'chaos or integration' tests/chaos tests/integration/test_fast_faults.py

lint: $(VENV)/.synced ## ruff (lint and format check) and mypy
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy

format: $(VENV)/.synced ## apply ruff's fixes and formatting
	$(VENV_BIN)/ruff check --fix .
	$(VENV_BIN)/ruff format .

schemas: $(VENV)/.synced ## rewrite terraform/schemas/*.json and terraform/views/*.sql from the code's definitions
	$(VENV_BIN)/python -m shared.schemas
	$(VENV_BIN)/python -m shared.warehouse.view_files

# --- Docker Compose (docs/docker.md) ------------------------------------------------------------
DOCKER ?= docker
COMPOSE ?= $(DOCKER) compose
COMPOSE_MIN_VERSION := 2.20.0
# A variable from the environment, else its last assignment in .env (as Compose reads it).
compose_variable = $(strip $(or $($(1)),$(shell sed -n 's/^[[:space:]]*$(1)=//p' .env 2>/dev/null | tail -n 1 | tr -d "\"'")))
GCP_PROJECT = $(call compose_variable,COINSTREAM_GCP_PROJECT)
# compose.live.yaml (Google credentials) with a GCP project; the simulator without a CoinCap key,
# the BigQuery emulator without a GCP project.
COMPOSE_FILES = -f compose.yaml $(if $(GCP_PROJECT),-f compose.live.yaml)
COMPOSE_UP_PROFILES = $(subst $() ,$(comma),$(strip $(if $(call compose_variable,COINSTREAM_COINCAP_API_KEY),,simulator) $(if $(GCP_PROJECT),,emulator)))
comma := ,
GOOGLE_APPLICATION_CREDENTIALS ?= $(HOME)/.config/gcloud/application_default_credentials.json
host_port = $(or $(call compose_variable,$(1)),$(2))
# Compose builds with its own BuildKit client; Bake would need the buildx plugin.
export COMPOSE_BAKE ?= false

docker-prerequisites:
	@command -v $(DOCKER) >/dev/null || { echo "coinstream: docker not found; install Docker Engine 20.10 or newer and retry" >&2; exit 2; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "coinstream: the Docker engine does not answer (\`docker info\` failed); start it, or get permission to use it, and retry" >&2; exit 2; }
	@version=$$($(COMPOSE) version --short 2>/dev/null | sed 's/^v//'); \
	  [ -n "$$version" ] || { echo "coinstream: Docker Compose v2 not found (\`$(COMPOSE) version\` failed); install the Compose plugin $(COMPOSE_MIN_VERSION) or newer and retry" >&2; exit 2; }; \
	  [ "$$(printf '%s\n' $(COMPOSE_MIN_VERSION) "$$version" | sort -V | head -n 1)" = $(COMPOSE_MIN_VERSION) ] \
	    || { echo "coinstream: Docker Compose $$version is too old; install Compose $(COMPOSE_MIN_VERSION) or newer and retry" >&2; exit 2; }

up: docker-prerequisites ## build and start the pipeline on Docker Compose; returns once every service is healthy
	@[ -n "$(call compose_variable,COINSTREAM_CONTROL_API_TOKEN)" ] || { echo "coinstream: COINSTREAM_CONTROL_API_TOKEN is not set; the control service needs one under Docker: add it to .env, e.g. \`echo COINSTREAM_CONTROL_API_TOKEN=\$$(openssl rand -hex 32) >> .env\`, and retry" >&2; exit 2; }
	@[ -z "$(GCP_PROJECT)" ] || [ -r "$(GOOGLE_APPLICATION_CREDENTIALS)" ] || { echo "coinstream: COINSTREAM_GCP_PROJECT is set but no Google credentials are readable at $(GOOGLE_APPLICATION_CREDENTIALS); run \`gcloud auth application-default login\` or set GOOGLE_APPLICATION_CREDENTIALS to a key file, and retry" >&2; exit 2; }
	$(if $(GCP_PROJECT),GOOGLE_CREDENTIALS_JSON="$$(cat '$(GOOGLE_APPLICATION_CREDENTIALS)')") COMPOSE_PROFILES=$(COMPOSE_UP_PROFILES) \
	  $(COMPOSE) $(COMPOSE_FILES) up --build --detach --wait --wait-timeout 600
	@echo "coinstream: up. Dashboard http://127.0.0.1:$(call host_port,DASHBOARD_HOST_PORT,8200)/ ; control API http://127.0.0.1:$(call host_port,CONTROL_HOST_PORT,8100)/docs ; Prometheus http://127.0.0.1:$(call host_port,PROMETHEUS_HOST_PORT,9090)/ ; \`make logs\` follows the logs, \`make down\` stops (data stays)"

down: ## stop and remove the Docker Compose pipeline's containers and network (its volumes, so the data, stay)
	COMPOSE_PROFILES='*' $(COMPOSE) -f compose.yaml down --remove-orphans

logs: ## follow the logs of the Docker Compose pipeline
	COMPOSE_PROFILES='*' $(COMPOSE) -f compose.yaml logs --follow --tail=100

test-docker: setup ## build the images and prove `make up` on a real Docker engine (starts one, as root, if none answers)
	deploy/docker/engine.sh
	$(KEEP_BYTECODE) $(VENV_BIN)/pytest -m docker tests/docker

clean-state: ## delete local Kafka and BigQuery data (.state); jars and packages stay
	rm -rf .state

clean: clean-state ## also delete the environment and downloaded jars
	rm -rf $(VENV) .cache

BENCH_RUNS ?= 3
bench: setup ## run the benchmarks against the real local stack; figures in docs/benchmarks.md (BENCH_RUNS=3 runs each)
	$(VENV_BIN)/python -m bench.ingest_throughput --runs $(BENCH_RUNS)
	$(VENV_BIN)/python -m bench.stack_footprint --runs $(BENCH_RUNS)
	$(VENV_BIN)/python -m bench.trigger_cost
	$(VENV_BIN)/python -m bench.stream_worker --runs $(BENCH_RUNS)
	$(VENV_BIN)/python -m bench.dashboard_queries
	$(VENV_BIN)/python -m bench.backfill

looker-url: $(VENV)/.synced ## print a Looker Studio link that opens a report on the coinstream views (coinstream looker-url)
	@$(VENV_BIN)/coinstream looker-url

status: $(VENV)/.synced ## the running pipeline's components, lag and freshness in one table (coinstream status)
	@$(VENV_BIN)/coinstream status

.PHONY: lint-terraform
lint-terraform: $(CHECKOV) ## terraform fmt -check and checkov on terraform/ (validate and plan need the provider: docs/gcp.md)
	terraform fmt -check -recursive -diff terraform
	BC_SKIP_MAPPING=TRUE $(CHECKOV) --config-file terraform/.checkov.yaml
