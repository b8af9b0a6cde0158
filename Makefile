# The obvious targets. Each one creates or reuses .venv and installs what it needs, exactly as
# locked in requirements/*.txt (`make lock` writes the locks; docs/dependencies.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCKED := $(VENV)/.locked
STAMP  := $(VENV)/.installed
NODE   := node_modules/.installed
# The template scanners live apart: checkov pins an old boto3 (docs/dependencies.md).
INFRA_VENV  := .venv-infra
INFRA_BIN   := $(INFRA_VENV)/bin
INFRA_STAMP := $(INFRA_VENV)/.installed
TEMPLATES   := infrastructure/template.yaml infrastructure/bootstrap.yaml

.PHONY: demo test lint infra-check package up bench soak clean chromium lock check-locked web

# The venv is a function of the lock: a new lock makes a new venv (nothing stale stays in it).
$(LOCKED): requirements/dev.txt
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	touch $(LOCKED)

# The project itself, editable, with nothing resolved: every dependency came from the lock.
# (-qq: setuptools' note on every editable install is information, not a warning.)
$(STAMP): $(LOCKED) setup.cfg pyproject.toml requirements/kcl.txt
	$(BIN)/python -m pip install -qq --no-deps --no-build-isolation -e .
	$(BIN)/python -m consumer.kclpy_install
	$(BIN)/python -m infrastructure.locks requirements/dev.txt requirements/kcl.txt
	touch $(STAMP)

## check-locked: the .venv holds exactly what requirements/dev.txt and kcl.txt pin
check-locked: $(STAMP)
	$(BIN)/python -m infrastructure.locks requirements/dev.txt requirements/kcl.txt

# Every lock, and how it is resolved. UPGRADE=1 moves every pin to the newest release that
# setup.cfg's ranges allow; UPGRADE=moto moves that package alone. Without it the pins stay
# (the existing lock is preferred), so a second `make lock` changes nothing.
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --custom-compile-command "make lock" \
	$(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE)))
ALL_EXTRAS = --extra local --extra dev --extra bench --extra load --extra objects

## lock: regenerate requirements/*.txt from setup.cfg and requirements/*.in (UPGRADE=1|name)
lock: $(STAMP)
	$(UV_COMPILE) --universal --python-version 3.11 setup.cfg requirements/dev.in $(ALL_EXTRAS) \
		-o requirements/dev.txt
	$(UV_COMPILE) --universal --python-version 3.11 setup.cfg --extra local \
		-o requirements/consumer.txt
	$(UV_COMPILE) --python-version 3.12 --python-platform x86_64-manylinux_2_28 --only-binary :all: setup.cfg \
		-o requirements/lambda.txt
	$(UV_COMPILE) --universal --python-version 3.11 requirements/infra.in -o requirements/infra.txt
	$(UV_COMPILE) --universal --python-version 3.11 --no-deps requirements/kcl.in \
		-o requirements/kcl.txt

# kinesis-local, the independent Kinesis emulator of the consumer's conformance tests; the
# Chime SDK for JavaScript and esbuild, which bundles it for the pages (docs/dependencies.md)
$(NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE)

# The pages' Chime SDK: one ES module built from the npm lock, served from the app's own origin
# (no CDN). A build artefact (git-ignored); the explicit main fields make esbuild take the
# AWS SDK's browser builds even where the Chime SDK require()s them, and the SDK's own
# `"document" in global` checks (written for webpack's Node shim) get the browser's globalThis.
CHIME_BUNDLE := dashboard/web/js/vendor/amazon-chime-sdk.js
$(CHIME_BUNDLE): $(NODE) dashboard/sdk/chime-sdk.mjs Makefile
	node_modules/.bin/esbuild dashboard/sdk/chime-sdk.mjs --bundle --format=esm --platform=browser \
		--main-fields=browser,module,main --define:global=globalThis --target=es2020 --minify \
		--legal-comments=eof --log-level=warning --outfile=$@

## web: build what the web pages load beside their own modules (the Chime SDK bundle)
web: $(CHIME_BUNDLE)

BENCH_STAMP := $(VENV)/.bench-installed

# The benchmarks' extras are in the lock already. Debian's ffmpeg for the subprocess baseline
# of the frame benchmark (without it that baseline is reported as not measured, with the reason).
$(BENCH_STAMP): $(STAMP)
	command -v ffmpeg >/dev/null || { command -v apt-get >/dev/null && apt-get update -qq && \
		apt-get install -y -qq ffmpeg >/dev/null; } || \
		echo "ffmpeg not installed: the frame benchmark's subprocess baseline will be skipped"
	touch $(BENCH_STAMP)

## bench: every benchmark against its in-run baseline (~10 min); writes bench/results/latest.json
## (refuses a busy machine, exit 3: BENCH_ARGS=--busy-ok writes the figures marked busy)
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## soak: 60 students for 10 minutes on the local stack; lag and memory must stay flat (bench/results/soak.*)
## (make soak SOAK_STUDENTS=200 SOAK_MINUTES=10 for another size)
SOAK_STUDENTS ?= 60
SOAK_MINUTES ?= 10
soak: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak --students $(SOAK_STUDENTS) --minutes $(SOAK_MINUTES)

## demo: start the local stack, replay four exam sessions live, write demo-report.json, exit
demo: $(STAMP) web
	$(BIN)/proctor demo --exit-when-done --report demo-report.json

## test: lint, type-check, scan the templates and run the whole test suite against the local stack
test: $(STAMP) $(NODE) web chromium lint infra-check
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

$(INFRA_STAMP): requirements/infra.txt
	rm -rf $(INFRA_VENV)
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/infra.txt
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
up: $(STAMP) web
	$(BIN)/proctor up

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules dashboard/web/js/vendor .pytest_cache .mypy_cache .ruff_cache build *.egg-info
