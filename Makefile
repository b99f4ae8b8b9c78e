# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv system-deps test lint typecheck unit demo bench tox matrix clean

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

# Chromium, nginx, Node and the npm client the browser and real-server tests use.
system-deps:
	bash .ci/install-system-deps

test: system-deps lint typecheck unit

demo: venv
	@echo "Serving the sse_response demo at http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	cd examples && SSE_DEMO_SERVER=uvicorn ../$(BIN)/uvicorn demo.asgi:application \
		--host $(HOST) --port $(PORT) --timeout-graceful-shutdown 1

# Benchmarks against the peers (bench/README.md): makes its own venvs under
# bench/, writes bench/results/ and docs/benchmarks.md.
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)

# The core suite on every Python and Django the project supports (tox.ini), with
# the interpreters pyenv has; `make matrix` runs just the oldest and newest pairs.
PYENV_PYTHONS = $(wildcard $(HOME)/.pyenv/versions/3.1[0-3].*/bin/python3)
TOX = $(BIN)/python -m tox $(if $(PYENV_PYTHONS),--discover $(PYENV_PYTHONS))

tox: venv
	$(BIN)/python -m pip install --quiet tox
	$(TOX)

matrix: venv
	$(BIN)/python -m pip install --quiet tox
	$(TOX) -e py310-django52,py313-django61

clean:
	rm -rf $(VENV) .tox .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
