# The two commands: `make run` (the main job on the embedded default) and `make test`.
# Each creates .venv and installs the project when needed, and is quick when nothing changed.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTHON ?= python3

.PHONY: run test install system-deps bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,ocr]'
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

## make run: create the SQLite database, a demo admin (password printed once), serve the bundled
## sample sources on loopback, and run everything with the API and console on 127.0.0.1:8000.
run: install
	$(VENV)/bin/yuqing run --demo

## make test: the whole suite on SQLite, then every database test again on PostgreSQL.
test: install system-deps
	$(PY) -m pytest
	YUQING_TEST_DATABASE=postgres $(PY) -m pytest -m db

bench: install
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --config pyproject.toml
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
