# The few commands a newcomer needs. Every target builds its own virtualenv from the pinned lock first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed

# Offline-friendly defaults for everything started from here (no cost-map or model-catalog downloads).
export LITELLM_LOCAL_MODEL_COST_MAP := True
export MLFLOW_MODEL_CATALOG_URI :=
# uv trusts the platform's certificate store (what pip uses here too), also behind a TLS-inspecting proxy.
export UV_SYSTEM_CERTS ?= 1
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost

.PHONY: venv demo test test-fast lint bench soak synth lock clean

venv: $(STAMP)

$(STAMP): requirements/dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip sync --quiet --python $(PY) requirements/dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $(STAMP)

## The whole pipeline on this machine: local MLflow + local SQS + a real LiteLLM proxy + the consumer.
demo: $(STAMP)
	$(VENV)/bin/litellm-mlflow demo $(ARGS)

## Lint, then every test (unit, integration, infra, end-to-end).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

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

## Re-resolve the pinned lock after changing pyproject.toml.
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

clean:
	rm -rf $(VENV) cdk.out layers/build .pytest_cache
