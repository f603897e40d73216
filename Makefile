# Everything a fresh clone needs: `make test` builds the virtual environment with
# Python 3.13 (found by tools/find-python), installs the dependencies, lints and tests.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: test lint typecheck format golden venv node browser clean run bench screenshots docs

venv: $(STAMP)

# The app on this machine, no Azure account or Core Tools needed: python -m translators serve.
# With no CHANNEL_*_URL set (environment or local.settings.json), channels slack, teams and
# teams-messagecard deliver to the server's own inbox (GET /inbox). `make run PORT=8080 HOST=0.0.0.0`.
HOST ?= 127.0.0.1
PORT ?= 7071

run: $(STAMP) $(NODE_STAMP)
	$(PY) -m translators serve --host '$(HOST)' --port '$(PORT)'

$(STAMP): requirements.txt requirements-dev.txt tools/find-python
	@py=$$(tools/find-python) || exit 1; \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
	    rm -rf $(VENV); echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

# npm packages, exactly as locked in package-lock.json: Azurite (the Azure Storage emulator) for
# the storage tests, and Microsoft's adaptivecards renderer with markdown-it and the Teams host
# config for the preview page. Without npm, `make run` serves everything else (the preview says
# what to install) and those tests skip with the reason, failing where CI is set.
node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json .npmrc
	@if command -v npm >/dev/null 2>&1; then \
	  echo "npm ci (Azurite, and the Adaptive Cards renderer for the preview page)"; \
	  npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: no Azurite and no Teams drawings in the preview (tests needing them fail where CI is set)"; fi

# Debian's chromium, which Playwright drives in the browser tests (never a downloaded browser).
# Installed with apt-get when this runs as root and it is missing, as Azurite is installed above.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "apt-get install chromium (for the browser tests)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "chromium not found: install Debian's chromium; the browser tests skip (they fail where CI is set)"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(NODE_STAMP) browser
	$(PY) -m pytest

# Benchmarks, not tests (bench/run.py): translation cost, cold start, throughput of `serve`
# under wrk. About a minute; `make bench BENCH_ARGS=--quick` for a smoke run, `--help` for more.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Pictures of representative messages, drawn by the preview page in chromium, for the README.
# Emoji need a colour emoji font: installed with apt-get when this runs as root.
screenshots: $(STAMP) $(NODE_STAMP) browser
	@if ! fc-list 2>/dev/null | grep -qi "color emoji" && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji >/dev/null; fi
	$(PY) -m tools.screenshots docs/images

# The settings tables of docs/configuration.md, made from the settings model (a test keeps them equal).
docs: $(STAMP)
	$(PY) -m tools.docs docs/configuration.md

# Rewrite the golden files from the current templates; review the diff before committing.
golden: $(STAMP)
	$(PY) -m pytest tests/test_golden.py --update-golden

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules
