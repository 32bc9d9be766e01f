"""Password login: every failure path costs one real Argon2 verification, so names cannot be probed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy.orm import Session

from api import accounts
from api.security import hash_password


@pytest.fixture
def verified_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The hashes each Argon2 verification was run against (the real verifier still runs)."""
    seen: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        seen.append(hash if isinstance(hash, str) else hash.decode())
        return real_verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    yield seen


def test_unknown_user_costs_one_verification_with_real_cost(session: Session, verified_hashes: list[str]) -> None:
    assert accounts.authenticate_password(session, "no-such-user", "password123") is None
    (dummy,) = verified_hashes
    # Same algorithm and cost as a real user's hash, or the two paths would still differ in time.
    assert extract_parameters(dummy) == extract_parameters(hash_password("password123"))

    accounts.authenticate_password(session, "another-unknown", "x")
    assert verified_hashes == [dummy, dummy]  # computed once, then reused


def test_inactive_and_passwordless_users_cost_one_verification(session: Session,
                                                               verified_hashes: list[str]) -> None:
    inactive = accounts.create_user(session, username="left-office", role="staff", password="password123")
    inactive.is_active = False
    accounts.create_user(session, username="token-only", role="viewer")  # no password set
    session.flush()

    assert accounts.authenticate_password(session, "left-office", "password123") is None
    assert accounts.authenticate_password(session, "token-only", "password123") is None
    assert len(verified_hashes) == 2
    assert inactive.password_hash not in verified_hashes  # the right password of a disabled user proves nothing


def test_known_user_costs_one_verification_either_way(session: Session, verified_hashes: list[str]) -> None:
    user = accounts.create_user(session, username="wangfang", role="staff", password="password123")
    assert accounts.authenticate_password(session, "wangfang", "wrong-password") is None
    assert accounts.authenticate_password(session, "wangfang", "password123") is user
    assert verified_hashes == [user.password_hash, user.password_hash]
    assert user.last_login_at is not None
