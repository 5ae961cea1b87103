# SupportPulse developer commands. `make help` lists them.
# Every target installs what it needs: a fresh machine needs nothing but python3, java, mvn and apt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install stack down demo test test-fast lint bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install SupportPulse with its dev tools

stack: install ## Install (if missing) and start Kafka, Postgres, Prometheus, Alertmanager
	$(BIN)/supportpulse stack up

down: install ## Stop the local stack (data is kept)
	$(BIN)/supportpulse stack down

demo: install ## Quick start 1: the whole pipeline with simulated traffic and a live KPI summary
	$(BIN)/supportpulse demo

lint: install ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || true
	$(BIN)/mypy shared services

test: install ## Quick start 2: lint, start the stack, run every test against the real services
	$(BIN)/ruff check .
	$(BIN)/mypy shared services
	$(BIN)/supportpulse stack up
	$(BIN)/pytest

test-fast: install ## Unit tests only (no Kafka or Postgres needed)
	$(BIN)/pytest -m "not integration"

bench: install ## Benchmarks (see bench/README.md); needs the stack
	$(BIN)/supportpulse stack up
	$(BIN)/python -m bench

clean: ## Remove the virtualenv and caches (the stack's data stays in .stack/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
