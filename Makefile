# TrendFlow ML platform. Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, generate demo data, start Triton, run the whole platform
#   make test   - create .venv, install, run the tests (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_N ?= 2000
DEMO := data/demo
ARTIFACTS := data/artifacts
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast lint bench triton-start triton-stop clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 resolves to the CPU build; see README "GPU install" for CUDA.
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m demo --n $(DEMO_N)

test: setup
	$(PY) -m pytest -q

# Pure unit tests only: no server, no encoding, no subprocess (< 60 s).
test-fast: setup
	$(PY) -m pytest -q tests/unit

# ruff (rules in pyproject.toml) + import-linter (the allowed imports in .importlinter, docs/architecture.md).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) -m benchmarks.extraction
	$(PY) -m benchmarks.features
	$(PY) -m benchmarks.training
	$(PY) -m benchmarks.inference
	$(PY) -m benchmarks.retention
	$(PY) -m benchmarks.observability
	$(PY) -m benchmarks.faces
	$(PY) -m benchmarks.engines

triton-start: setup
	$(PY) -m extraction triton start

triton-stop: setup
	$(PY) -m extraction triton stop

clean:
	-$(PY) -m extraction triton stop
	rm -rf data .trendflow outputs multirun

# Licence gate (README "Trust"): model rows in licenses.yaml vs model_repository/, conf/license_policy.yaml,
# installed distributions' licences (pip-licenses), MODEL_LICENSES.md current. Fails naming each offender.
.PHONY: licenses sbom
licenses: setup
	$(PY) -m compliance licenses

# CycloneDX JSON SBOM of the installed environment (cyclonedx-py, validated) -> .trendflow/sbom/sbom.cdx.json
sbom: setup
	$(PY) -m compliance sbom
