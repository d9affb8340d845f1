# Two commands: `make dev` runs the service with its local storefront; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: dev test lint install clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

dev: $(INSTALLED)
	APP_ENV=development $(PY) -m app dev

lint: $(INSTALLED)
	$(VENV)/bin/ruff check app tests migrations bench
	$(VENV)/bin/ruff format --check app tests migrations bench
	$(VENV)/bin/mypy

test: $(INSTALLED) lint
	scripts/ensure-postgres
	APP_ENV=development $(VENV)/bin/pytest

clean:
	rm -rf $(VENV) data test-artifacts .pytest_cache .mypy_cache .ruff_cache
