# charq: `make up` runs the service on embedded defaults, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch lies on this machine's disk; an unpinned torch would pull CUDA wheels.
# On a CUDA machine: make TORCH_SPEC='torch' (or your CUDA build) ...
TORCH_SPEC ?= torch==2.13.0

.PHONY: install up test bench bench-engine bench-service compose-check clean

$(BIN)/charq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e '.[worker,dev]'
	touch $@

install: $(BIN)/charq

up: install
	$(BIN)/charq up

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: bench-engine bench-service

bench-engine: install
	$(BIN)/python -m bench.engine

bench-service: install
	$(BIN)/python -m bench.service

compose-check: install
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

clean:
	rm -rf $(VENV) var
