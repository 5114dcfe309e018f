# WeakSeg: `make serve` runs the service on the default models, `make test` runs the tests.
# Each creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch==2.13.0 (CPU build) lies in /opt/wheels on the project's machines; elsewhere PyPI serves it.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: setup serve test models proto proto-check lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.serve: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install --quiet $(FIND_LINKS) -e '.[dev,train]'
	@touch $@ $(VENV)/.serve

setup: $(VENV)/.serve

serve: $(VENV)/.serve
	$(PY) -m service

test: $(VENV)/.dev
	$(PY) -m pytest -q

# Rebuild the default models in model_repo/ from the procedural generator (~15 min on 2 CPU cores).
models: $(VENV)/.dev
	$(PY) -m training build-defaults --repo model_repo --report docs/default_models.json

proto: $(VENV)/.dev
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. protos/wsss/v1/segmentation.proto

lint: $(VENV)/.dev
	$(PY) -m ruff check service training tests bench
	$(PY) -m mypy service

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
