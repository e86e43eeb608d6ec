# The two set-up commands of README.md: `make demo` (the main job) and `make test`.
# Each creates .venv on first use and installs what it needs; `make test` also installs the
# Debian packages the data-plane tests need (nftables, iproute2, conntrack, curl) when run as root.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

system-deps:
	@scripts/install-system-deps

demo: $(STAMP) system-deps
	@scripts/demo

test: $(STAMP) system-deps
	@scripts/check

check: $(STAMP)
	@scripts/check

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis src/*.egg-info
