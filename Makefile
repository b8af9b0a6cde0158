# The obvious targets. Each one creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE   := node_modules/.installed
# The template scanners live apart: checkov pins an old boto3 (docs/dependencies.md).
INFRA_VENV  := .venv-infra
INFRA_BIN   := $(INFRA_VENV)/bin
INFRA_STAMP := $(INFRA_VENV)/.installed
TEMPLATES   := infrastructure/template.yaml infrastructure/bootstrap.yaml

.PHONY: demo test lint infra-check package up bench soak clean chromium

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

BENCH_STAMP := $(VENV)/.bench-installed

# The benchmarks' extras; Debian's ffmpeg for the subprocess baseline of the frame benchmark
# (without it that baseline is reported as not measured, with the reason).
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[local,dev,bench]'
	command -v ffmpeg >/dev/null || { command -v apt-get >/dev/null && apt-get update -qq && \
		apt-get install -y -qq ffmpeg >/dev/null; } || \
		echo "ffmpeg not installed: the frame benchmark's subprocess baseline will be skipped"
	touch $(BENCH_STAMP)

## bench: every benchmark against its in-run baseline (~10 min); writes bench/results/latest.json
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

## soak: 60 students for 10 minutes on the local stack; lag and memory must stay flat (bench/results/soak.*)
soak: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak --students 60 --minutes 10

## demo: start the local stack, replay four exam sessions live, write demo-report.json, exit
demo: $(STAMP)
	$(BIN)/proctor demo --exit-when-done --report demo-report.json

## test: lint, type-check, scan the templates and run the whole test suite against the local stack
test: $(STAMP) $(NODE) chromium lint infra-check
	$(BIN)/python -m pytest

## chromium: Debian's chromium for the web pages' browser tests (Playwright drives it; nothing is
## downloaded by Playwright itself). CI runs as root; elsewhere install it once with sudo.
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(INFRA_STAMP): infrastructure/requirements-check.txt
	test -x $(INFRA_BIN)/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_BIN)/python -m pip install --quiet --upgrade pip
	$(INFRA_BIN)/python -m pip install --quiet -r infrastructure/requirements-check.txt
	touch $(INFRA_STAMP)

## infra-check: cfn-lint (errors and warnings) and checkov (every check, suppressions in the templates)
infra-check: $(INFRA_STAMP)
	$(INFRA_BIN)/cfn-lint $(TEMPLATES)
	$(INFRA_BIN)/checkov --quiet --compact --skip-download --framework cloudformation \
		$(addprefix --file ,$(TEMPLATES))

## package: build the Lambda code zip (build/lambda-<hash>.zip; its name is the CodeKey)
package: $(STAMP)
	$(BIN)/python -m infrastructure.package

## up: only the local stack (AWS emulator, provisioned), until Ctrl-C
up: $(STAMP)
	$(BIN)/proctor up

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
