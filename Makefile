# The obvious targets. Each one creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE   := node_modules/.installed

.PHONY: demo test lint up clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	$(BIN)/python -m consumer.kclpy_install
	touch $(STAMP)

# kinesis-local, the independent Kinesis emulator of the consumer's conformance tests
$(NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE)

## demo: start the local stack, replay four exam sessions live, write demo-report.json, exit
demo: $(STAMP)
	$(BIN)/proctor demo --exit-when-done --report demo-report.json

## test: lint, type-check and run the whole test suite against the local stack
test: $(STAMP) $(NODE) lint
	$(BIN)/python -m pytest

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## up: only the local stack (AWS emulator, provisioned), until Ctrl-C
up: $(STAMP)
	$(BIN)/proctor up

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
