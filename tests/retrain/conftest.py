"""Retraining tests use the tiny shipped model of tests/conftest.py (``shipped_model_dir``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def isolated_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped_model_dir: Path) -> Iterator[Path]:
    """Models trained by the test go under ``tmp_path`` (the data dir), the tiny model is shipped."""
    from core.settings import get_settings

    monkeypatch.setenv("YUQING_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
