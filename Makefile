# The few commands a newcomer needs. Every target builds its own virtualenv from the pinned lock first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed
# The Lambda side (consumer, presign, the event contract) is tested on the Lambda runtime's Python as well.
VENV313 := .venv313
STAMP313 := $(VENV313)/.installed
LAMBDA_TESTS := tests/sink tests/presign tests/rollup tests/test_events.py

# Offline-friendly defaults for everything started from here (no cost-map or model-catalog downloads).
export LITELLM_LOCAL_MODEL_COST_MAP := True
export MLFLOW_MODEL_CATALOG_URI :=
# uv trusts the platform's certificate store (what pip uses here too), also behind a TLS-inspecting proxy.
export UV_SYSTEM_CERTS ?= 1
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost

.PHONY: venv venv313 browser demo test test-lambda313 test-fast lint bench soak synth dist lock clean

venv: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip sync --quiet --python $(PY) requirements/dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $(STAMP)

venv313: $(STAMP313)

$(STAMP313): requirements/lambda313.lock pyproject.toml $(STAMP)
	python313="$$($(PY) -m infra.lambda_python)" && $(UV) venv --quiet --allow-existing --python "$$python313" $(VENV313)
	$(UV) pip sync --quiet --python $(VENV313)/bin/python requirements/lambda313.lock
	$(UV) pip install --quiet --python $(VENV313)/bin/python --no-deps -e .
	touch $(STAMP313)

## The whole pipeline on this machine: local MLflow + local SQS + a real LiteLLM proxy + the consumer.
demo: $(STAMP)
	$(VENV)/bin/litellm-mlflow demo $(ARGS)

## Debian's chromium for the browser test of the MLflow UI (tests/ui); nothing to do once it is installed.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| ($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y \
			--no-install-recommends chromium)

## Lint, then every test (unit, integration, infra, end-to-end, the UI in chromium), then the Lambda-side tests again
## on Python 3.13.
test: $(STAMP) $(STAMP313) $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-lambda313

## The consumer/presign/event tests on Python 3.13 (the Lambda runtime), against the pinned MLflow server only.
test-lambda313: $(STAMP313)
	LITELLM_MLFLOW_TEST_MLFLOW_VERSIONS=pinned $(VENV313)/bin/python -m pytest -p no:cacheprovider $(LAMBDA_TESTS) $(PYTEST313_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## Benchmarks: each prints a table and writes bench/results/*.json; BENCHMARKS.md is regenerated from them.
bench: $(STAMP)
	$(PY) -m bench.run_all

soak: $(STAMP)
	$(PY) -m bench.soak $(ARGS)

## Synthesize the CDK app (bundles the Lambda layer locally, no Docker), cdk-nag included.
synth: $(STAMP)
	$(PY) -m infra.synth $(ARGS)

## A wheel of the library in dist/ (what the README installs into a LiteLLM proxy and the Dockerfile copies).
dist: $(STAMP)
	rm -rf dist
	$(UV) build --quiet --wheel --out-dir dist
	@ls dist/*.whl

## Re-resolve the pinned locks after changing pyproject.toml or layers/requirements.in.
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock
	$(UV) pip compile pyproject.toml --extra lambda-test --python-version 3.13 -c requirements/dev.lock \
		-o requirements/lambda313.lock
	$(UV) pip compile layers/requirements.in -c requirements/dev.lock --python-version 3.13 \
		--python-platform aarch64-manylinux2014 --generate-hashes -o layers/requirements.txt

clean:
	rm -rf $(VENV) $(VENV313) cdk.out layers/build .pytest_cache dist
