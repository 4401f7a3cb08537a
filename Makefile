# Two commands matter on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the FinOps Foundation's FOCUS validator pins old libraries: it lives in a virtualenv of its own
VALIDATOR_VENV := .venv-focus-validator
VALIDATOR := $(VALIDATOR_VENV)/bin/focus-validator

.PHONY: setup demo test unit integration lint schemas asyncapi bench fuzz clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py services/ingest/_records.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

demo: setup
	$(BIN)/finfocus demo

$(VALIDATOR):
	test -x $(VALIDATOR_VENV)/bin/python || $(PYTHON) -m venv $(VALIDATOR_VENV)
	$(VALIDATOR_VENV)/bin/python -m pip install --quiet 'focus-validator==1.0.0' 'multimethod<1.11'

# two pytest-xdist workers (TEST_WORKERS=0: one process); a file's tests stay on one worker
# (--dist loadfile), for the module fixtures that share one stack between them
TEST_WORKERS ?= 2
test: setup $(VALIDATOR)
	$(BIN)/ruff format --check schemas finfocus services tests bench
	$(BIN)/ruff check schemas finfocus services tests bench
	$(BIN)/mypy schemas finfocus services
	FINFOCUS_FOCUS_VALIDATOR=$${FINFOCUS_FOCUS_VALIDATOR:-$(CURDIR)/$(VALIDATOR)} \
		$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 \
		-n $(TEST_WORKERS) --dist loadfile

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup
	$(BIN)/python -m pytest -q tests/integration tests/e2e

lint: setup
	$(BIN)/ruff format --check schemas finfocus services tests bench
	$(BIN)/ruff check schemas finfocus services tests bench
	$(BIN)/mypy schemas finfocus services

schemas: setup
	$(BIN)/python -m schemas.generate

asyncapi: setup
	$(BIN)/python -m finfocus.asyncapi

bench: setup
	$(BIN)/python bench/pipeline.py

# the fuzz targets of tests/fuzz at length (the suite runs each briefly);
# FUZZ_EXAMPLES per target, failures kept in .hypothesis/ and replayed first next time
FUZZ_EXAMPLES ?= 5000
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz FINFOCUS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

clean:
	rm -rf $(VENV) $(VALIDATOR_VENV) build *.egg-info services/ingest/_records.*.so
