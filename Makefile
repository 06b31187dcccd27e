# Build, run and test audience-pull. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: install run test test-deps

install: $(VENV)/.installed static/vendor/.built

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The vendor step pins Pyodide and the mParticle Web SDK, checks their npm
# tarball integrity and builds the browser package; see scripts/vendor.py.
static/vendor/.built: $(VENV)/.installed vendor.json scripts/vendor.py scripts/*.mjs $(shell find browser -name "*.py") static/*.js static/*.mjs
	$(BIN)/python scripts/vendor.py

run: install
	$(BIN)/python scripts/announce_demo.py --port $(PORT)
	$(BIN)/flask --app server run --host 127.0.0.1 --port $(PORT)

test-deps: $(VENV)/.test-installed
	@command -v chromium >/dev/null 2>&1 || { apt-get update && apt-get install -y chromium; }

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: install test-deps
	$(BIN)/pytest
