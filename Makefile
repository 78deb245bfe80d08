# Entry points: `make demo` and `make test` for a new user; `make test-fast`, `make lint` and `make docs` for
# contributors. Each creates the virtual environment on first use (python3 -m venv, then pip), so nothing needs
# installing beforehand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint docs bench system-deps

$(STAMP): pyproject.toml src/cryoplan/service/viewer/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,dev]'
	@# NiiVue, the service's browser viewer, comes from npm (pinned by its package-lock.json).
	if command -v npm >/dev/null; then npm ci --silent --prefix src/cryoplan/service/viewer; \
	else echo "npm not found: the service's image viewer is not installed"; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cryoplan demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The quick loop: no browser, no PostgreSQL, no slow physics.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres" -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Debian packages the full test suite uses (browser tests, PostgreSQL tests, PDF rendering, DICOM validation);
# needs root.
system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql poppler-utils dicom3tools \
	  libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core >/dev/null
