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

.PHONY: run test install install-dev system-deps bench lint clean

$(PY):
	@$(PYTHON) -m venv $(VENV)

# uv itself comes from the package registry with pip; without it (offline mirror, no wheel for
# this platform) everything installs with pip, only slower.
$(UV): | $(PY)
	@$(PIP) uv 2>/dev/null || echo "（未能安装 uv，改用 pip 安装，会慢一些）"

$(STAMP_RUN): pyproject.toml | $(UV)
	@echo "正在安装运行所需的软件包（首次约半分钟，用 pip 时约 3 分钟；之后几秒）…"
	@# opencc-python-reimplemented (replaced by opencc) installs the same `opencc` folder: remove both
	@# from an older venv so that opencc installs whole
	@if $(PY) -m pip show -q opencc-python-reimplemented >/dev/null 2>&1; then \
		$(PY) -m pip uninstall -y -q opencc-python-reimplemented opencc; fi
	@if [ -x $(UV) ]; then $(UV_PIP) -e .; else $(PIP) -e .; fi
	@touch $(STAMP_RUN)

$(STAMP_DEV): pyproject.toml $(STAMP_RUN)
	@echo "正在安装测试与开发工具（pytest、playwright、mypy、图片识别等，首次约 1 分钟，用 pip 时约 3 分钟）…"
	@if [ -x $(UV) ]; then $(UV_PIP) -e '.[dev,ocr]'; else $(PIP) -e '.[dev,ocr]'; fi
	@touch $(STAMP_DEV)

install: $(STAMP_RUN)

install-dev: $(STAMP_DEV)

system-deps:
	@bash scripts/system-deps.sh

## make run: create the SQLite database, a demo admin (password printed once), serve the bundled
## sample sources on loopback, and run everything with the API and console on 127.0.0.1:8000.
run: install
	@echo "正在启动（建库、载入模型，约 10 秒）…"
	$(VENV)/bin/yuqing run --demo

## make test: the whole suite on SQLite, then every database test again on PostgreSQL.
test: install-dev system-deps
	$(PY) -m pytest
	YUQING_TEST_DATABASE=postgres $(PY) -m pytest -m db

bench: install-dev
	$(PY) -m bench

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --config pyproject.toml
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
