# Everything a fresh clone needs: `make test` builds the virtual environment with
# Python 3.13 (found by tools/find-python), installs the dependencies, lints and tests.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck format golden venv clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt tools/find-python
	@py=$$(tools/find-python) || exit 1; \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
	    rm -rf $(VENV); echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(PY) -m pytest

# Rewrite the golden files from the current templates; review the diff before committing.
golden: $(STAMP)
	$(PY) -m pytest tests/test_golden.py --update-golden

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
