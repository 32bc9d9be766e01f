"""Fixtures for nlp tests. Tests that read ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import pytest

from nlp import data


@pytest.fixture(scope="session")
def shared_data():
    try:
        return data.shared_data_dir()
    except data.SharedDataMissing as e:
        pytest.skip(f"shared data absent: {e}")
