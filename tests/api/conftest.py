"""API fixtures: the app on a fresh database, and users with tokens for each role."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope


@pytest.fixture
def api_engine(fresh_db_url: str):
    eng = make_engine(fresh_db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def api_client(api_engine) -> Iterator[TestClient]:
    with TestClient(create_app(api_engine), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def make_user(api_engine) -> Callable[[str], dict[str, str]]:
    """make_user("staff") -> {"Authorization": "Bearer ..."} for a new user of that role."""
    counter = iter(range(10_000))

    def make(role: str) -> dict[str, str]:
        with session_scope(api_engine) as s:
            user = accounts.create_user(s, username=f"{role}{next(counter)}", role=role, password="password123")
            token = accounts.create_token(s, user, "test")
        return {"Authorization": f"Bearer {token}"}

    return make
