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

.PHONY: help setup prometheus chromium run test test-unit test-integration test-browser lint format schemas bench looker-url up down clean-state clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "coinstream: $(PYTHON) not found; install Python 3.11 or newer" >&2; exit 2; }
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet uv==$(UV_VERSION)

# The environment is rebuilt from the lock file whenever it or pyproject.toml changes.
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra emulator
	@touch $@

setup: $(VENV)/.synced prometheus chromium $(DASHBOARD_ASSETS) ## install locked Python packages, Prometheus, Chromium, the dashboard's chart library, fetch Kafka and Spark jars (once)
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

test: setup ## run every test (starts its own broker and emulator on test ports)
	$(VENV_BIN)/pytest

test-unit: setup ## run the unit tests only
	$(VENV_BIN)/pytest -m unit

test-integration: setup ## run the integration tests only
	$(VENV_BIN)/pytest -m integration

test-browser: setup ## run the browser tests only (the dashboard in headless Chromium)
	$(VENV_BIN)/pytest -m browser

lint: $(VENV)/.synced ## ruff (lint and format check) and mypy
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy

format: $(VENV)/.synced ## apply ruff's fixes and formatting
	$(VENV_BIN)/ruff check --fix .
	$(VENV_BIN)/ruff format .

schemas: $(VENV)/.synced ## rewrite terraform/schemas/*.json from shared/schemas.py
	$(VENV_BIN)/python -m shared.schemas

up: ## start the pipeline on Docker Compose (needs a Docker engine)
	docker compose up --build --detach
	@echo "control API on http://127.0.0.1:8100, Prometheus on http://127.0.0.1:9090"

down: ## stop the Docker Compose pipeline (volumes stay)
	docker compose down

clean-state: ## delete local Kafka and BigQuery data (.state); jars and packages stay
	rm -rf .state

clean: clean-state ## also delete the environment and downloaded jars
	rm -rf $(VENV) .cache

bench: setup ## run the benchmarks against the real local stack and print their figures
	$(VENV_BIN)/python -m bench.ingest_throughput
	$(VENV_BIN)/python -m bench.stream_worker
	$(VENV_BIN)/python -m bench.dashboard_queries

looker-url: $(VENV)/.synced ## print a Looker Studio link that opens a report on the coinstream views
	@$(VENV_BIN)/python -m services.dashboard.looker
