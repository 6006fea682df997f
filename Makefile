# Corral on a Debian 12 machine, as root:
#   make run    install what is missing, then run Corral locally (foreground; Ctrl-C stops it)
#   make test   install what is missing, then lint and run the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-stamp
VM_DEPS := tests/fixtures/install_vm_deps.sh
PORT ?= 8080
PERSIST ?=
WORKERS ?= 2

.PHONY: help deps debian-deps run test lint bench clean

help:
	@echo "make run    run Corral locally on http://127.0.0.1:$(PORT) (make run PORT=8081 to move it;"
	@echo "            make run PERSIST=1 keeps the table in .corral/table/ across runs)"
	@echo "make test   lint (ruff, mypy) and run the whole test suite"
	@echo "make deps   install Debian packages and the virtualenv (both run this first)"
	@echo "make lint   ruff and mypy only"
	@echo "make bench  the benchmarks, written to bench/RESULTS.md (BENCH_ARGS=--quick for a smoke run)"
	@echo "make clean  remove .corral/ (local state) and tool caches; keeps $(VENV)"

deps: debian-deps $(DEPS_STAMP)

# Checks what is installed on every run (a few dpkg queries); apt-get runs only when
# something is missing.
debian-deps:
	@scripts/install-debian-deps.sh
	@if [ -f $(VM_DEPS) ]; then sh $(VM_DEPS); fi

# Order-only on debian-deps: python3-venv must be there, but a phony target must not
# force a reinstall of the venv every time.
$(DEPS_STAMP): pyproject.toml package-lock.json | debian-deps
	@scripts/ensure-venv.sh $(VENV)
	@scripts/package-serverless.sh --install-tools
	@touch $@

run: deps
	$(BIN)/python -m devstack --port $(PORT) --workers $(WORKERS) $(if $(PERSIST),--persist)

# Lint first (fast), then the suite, whose summary line closes the output.
test: deps lint
	$(BIN)/pytest -q

lint: deps
	$(BIN)/ruff check .
	$(BIN)/mypy shared infra services handlers workers devstack cli bench tests gunicorn.conf.py

bench: deps
	@if [ ! -f bench/__main__.py ]; then \
	  echo "make bench: bench/__main__.py does not exist yet: the benchmark is not built" >&2; \
	  exit 1; \
	fi
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	@if [ -f .corral/run.pid ] && kill -0 "$$(cat .corral/run.pid)" 2>/dev/null; then \
	  echo "make clean: make run is still running (pid $$(cat .corral/run.pid)); stop it first" >&2; \
	  exit 1; \
	fi
	rm -rf --one-file-system .corral .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
