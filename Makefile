# Two commands do all the set-up: `make run` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8750
PYTEST_ARGS ?=

.PHONY: run test test-faults bench lint venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	test -f upkeep.yaml || $(BIN)/upkeep init
	$(BIN)/upkeep serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python tests/support/setup_system.py
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# the fault-injection suite with long outages (5-40 s), each case 5 times; `make test` runs it short
test-faults: $(STAMP)
	$(BIN)/python tests/support/setup_system.py
	$(BIN)/pytest -n 2 --dist load --faults-long tests/faults $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports  # the layers and the acyclic import graph of [tool.importlinter]

clean:
	rm -rf $(VENV) .pytest_cache
