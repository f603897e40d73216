# Everything a fresh clone needs: `make test` builds the virtual environment with
# Python 3.13 (found by tools/find-python), installs the dependencies, lints and tests.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: test lint typecheck format golden venv node clean run bench

venv: $(STAMP)

# The app on this machine, no Azure account or Core Tools needed: python -m translators serve.
# With no CHANNEL_*_URL set (environment or local.settings.json), channels slack, teams and
# teams-messagecard deliver to the server's own inbox (GET /inbox). `make run PORT=8080 HOST=0.0.0.0`.
HOST ?= 127.0.0.1
PORT ?= 7071

run: $(STAMP)
	$(PY) -m translators serve --host '$(HOST)' --port '$(PORT)'

$(STAMP): requirements.txt requirements-dev.txt tools/find-python
	@py=$$(tools/find-python) || exit 1; \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
	    rm -rf $(VENV); echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# Azurite (the Azure Storage emulator) for the Table Storage state tests, exactly as locked in
# package-lock.json. Without npm those tests skip with the reason, and fail where CI is set.
node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  echo "npm ci (Azurite for the Table Storage tests)"; \
	  npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the Table Storage tests will be skipped (they fail where CI is set)"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(NODE_STAMP)
	$(PY) -m pytest

# Benchmarks, not tests (bench/run.py): translation cost, cold start, throughput of `serve`
# under wrk. About a minute; `make bench BENCH_ARGS=--quick` for a smoke run, `--help` for more.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Rewrite the golden files from the current templates; review the diff before committing.
golden: $(STAMP)
	$(PY) -m pytest tests/test_golden.py --update-golden

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules
