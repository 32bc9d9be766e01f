# The two commands: `make run` (the main job on the embedded default) and `make test`.
# Each creates .venv and installs what it needs, and is quick when nothing changed:
# `make run` installs only the runtime dependencies (`pip install -e .`); `make test` adds the
# dev/test tools (`.[dev]`: pytest, playwright, mypy, schemathesis, ipykernel...), which are most of
# the download. Separate stamps, so running one after the other installs each part once.

VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip install -q --disable-pip-version-check
UV        := $(VENV)/bin/uv
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
PYTHON    ?= python3
# uv installs the same packages as pip about ten times faster (parallel, no bytecode compile at
# install). It does not read pip's config: pass on an index mirror set there (common in China).
PIP_INDEX  = $(shell $(PYTHON) -m pip config get global.index-url 2>/dev/null)
UV_PIP     = $(UV) pip install -q --python $(PY) $(if $(PIP_INDEX),--default-index $(PIP_INDEX))
# With a warm cache, resolving offline first saves asking the index about every package again
# (9 s against 28-38 s here); anything not in the cache sends it to the index as before.
UV_INSTALL = $(UV_PIP) --offline $(1) 2>/dev/null || $(UV_PIP) $(1)
PIP_FALLBACK = $(PY) -m ensurepip -q >/dev/null && $(PIP)
# in a variable: the comma of the extras list would split a $(call) argument
DEV_EXTRAS   = -e '.[dev,ocr]'

.PHONY: run test install install-dev system-deps bench lint clean

# The venv is made without pip: ensurepip unpacking pip into it took 5 s idle, 20 s on a busy
# machine, and uv does the installing. pip comes in only when uv cannot be had (PIP_FALLBACK).
$(PY):
	@$(PYTHON) -m venv --without-pip $(VENV)

# uv: the one on PATH if there is one; else from the package registry with the system pip
# (`pip --python` installs into the venv without pip in it). Without it (offline mirror, no wheel
# for this platform) everything installs with pip, only slower.
$(UV): | $(PY)
	@if command -v uv >/dev/null 2>&1; then ln -sf "$$(command -v uv)" $(UV); \
	else $(PYTHON) -m pip --python $(PY) install -q --disable-pip-version-check uv >/dev/null 2>&1 \
	  || echo "（未能安装 uv，改用 pip 安装，会慢一些）"; fi

$(STAMP_RUN): pyproject.toml | $(UV)
	@echo "正在安装运行所需的软件包（首次约半分钟，用 pip 时约 3 分钟；之后几秒）…"
	@# opencc-python-reimplemented (replaced by opencc) installs the same `opencc` folder: remove both
	@# from an older venv so that opencc installs whole
	@if $(PY) -c "import importlib.metadata as m; m.version('opencc-python-reimplemented')" >/dev/null 2>&1; then \
		if [ -x $(UV) ]; then $(UV) pip uninstall -q --python $(PY) opencc-python-reimplemented opencc; \
		else $(PY) -m pip uninstall -y -q opencc-python-reimplemented opencc; fi; fi
	@if [ -x $(UV) ]; then $(call UV_INSTALL,-e .); else $(PIP_FALLBACK) -e .; fi
	@touch $(STAMP_RUN)

$(STAMP_DEV): pyproject.toml $(STAMP_RUN)
	@echo "正在安装测试与开发工具（pytest、playwright、mypy、图片识别等，首次约 1 分钟，用 pip 时约 3 分钟）…"
	@if [ -x $(UV) ]; then $(call UV_INSTALL,$(DEV_EXTRAS)); else $(PIP_FALLBACK) $(DEV_EXTRAS); fi
	@touch $(STAMP_DEV)

install: $(STAMP_RUN)

install-dev: $(STAMP_DEV)

system-deps:
	@bash scripts/system-deps.sh

# Python may cache compiled modules (__pycache__, ignored by git) even where the environment says
# PYTHONDONTWRITEBYTECODE (container images often do): otherwise every process, each analyze
# worker and every CLI call in the tests, compiles the same sources again (tests/cli: 28 s -> 18 s).
export PYTHONDONTWRITEBYTECODE :=

## make run: create the SQLite database, a demo admin (password printed once), serve the bundled
## sample sources on loopback, and run everything with the API and console on 127.0.0.1:8000.
run: install
	@echo "正在启动（建库、启动审核台，约 15 秒；模型在审核台启动后载入）…"
	$(VENV)/bin/yuqing run --demo

## make test: the whole suite on SQLite and, side by side, every database test again on
## PostgreSQL (its report follows the SQLite one). One pytest process keeps about one core busy
## and often waits on servers, subprocesses and the database, so two runs on two cores take
## little longer than one. They share nothing: each makes its own databases, temp dirs and Redis keys.
## YUQING_TEST_HALF: a few long tests that use no database run in the PostgreSQL process instead
## (tests/conftest.py OTHER_HALF), so that both end at about the same time; each prints its time.
test: install-dev system-deps
	@mkdir -p var
	@(start=$$(date +%s); YUQING_TEST_HALF=postgres YUQING_TEST_DATABASE=postgres $(PY) -m pytest -p no:cacheprovider; \
	  rc=$$?; echo "PostgreSQL half: $$(( $$(date +%s) - start )) s"; exit $$rc) > var/test-postgres.log 2>&1 & pg=$$!; \
	start=$$(date +%s); YUQING_TEST_HALF=sqlite $(PY) -m pytest; sqlite=$$?; \
	echo "SQLite half: $$(( $$(date +%s) - start )) s"; \
	echo "（SQLite 测试结束，等待 PostgreSQL 测试…）"; wait $$pg; postgres=$$?; \
	echo "=============== PostgreSQL: the database tests again ==============="; cat var/test-postgres.log; \
	test $$sqlite -eq 0 && test $$postgres -eq 0

bench: install-dev
	$(PY) -m bench

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --config pyproject.toml
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
