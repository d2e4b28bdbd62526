# Set-up and entry points. Needs only python3 (3.10+), git and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands call `python`: the virtual environment's, as after `source .venv/bin/activate`.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test test-all bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The main job: the whole DVC pipeline on the built-in synthetic corpus.
repro: $(STAMP)
	$(BIN)/dvc repro

## The default test suite (no internet, no GPU needed).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Also the slow tests (the internet tests stay deselected).
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not internet'

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
