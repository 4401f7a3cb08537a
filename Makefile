# Two commands matter on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test unit integration lint schemas asyncapi bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py services/ingest/_records.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/finfocus demo

test: setup
	$(BIN)/ruff check schemas finfocus services tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup
	$(BIN)/python -m pytest -q tests/integration tests/e2e

lint: setup
	$(BIN)/ruff check schemas finfocus services tests bench
	$(BIN)/mypy schemas finfocus/*.py finfocus/embedded

schemas: setup
	$(BIN)/python -m schemas.generate

asyncapi: setup
	$(BIN)/python -m finfocus.asyncapi

bench: setup
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) build *.egg-info services/ingest/_records.*.so
