# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv test lint typecheck unit demo bench tox clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	rm -f $(VENV)/.installed-*
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

demo: venv
	@echo "Serving the sse_response demo at http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	cd examples && SSE_DEMO_SERVER=uvicorn ../$(BIN)/uvicorn demo.asgi:application \
		--host $(HOST) --port $(PORT) --timeout-graceful-shutdown 1

# Benchmarks against the peers (bench/README.md): makes its own venvs under
# bench/, writes bench/results/ and docs/benchmarks.md.
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)

tox:
	$(PYTHON) -m pip install --quiet tox
	$(PYTHON) -m tox

clean:
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
