# Two commands: `make dev` runs the service with its local storefront; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: dev test lint install clean bench

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

NODE_INSTALLED := node_modules/.package-lock.json

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(INSTALLED) $(NODE_INSTALLED)

dev: $(INSTALLED)
	APP_ENV=development $(PY) -m app dev

lint: $(INSTALLED)
	$(VENV)/bin/ruff check app tests migrations bench
	$(VENV)/bin/ruff format --check app tests migrations bench
	$(VENV)/bin/mypy

test: $(INSTALLED) $(NODE_INSTALLED) lint
	scripts/ensure-postgres
	scripts/ensure-redis
	scripts/ensure-chromium
	APP_ENV=development $(VENV)/bin/pytest

bench: $(INSTALLED)
	scripts/ensure-postgres
	$(PY) -m bench

clean:
	rm -rf $(VENV) data test-artifacts .pytest_cache .mypy_cache .ruff_cache
