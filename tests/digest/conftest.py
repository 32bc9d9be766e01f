"""Digest fixtures: the busy day, the artifacts folder, SMTP servers (plain, down, TLS)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine
from tests.digest.scenario import ARTIFACTS, BusyDay, seed_busy_day
from tests.digest.smtp import Inbox, SmtpServer, authenticator, free_port, self_signed, smtp_server_at


@pytest.fixture
def db(fresh_db_url: str) -> Iterator[Session]:
    """A session on a new, empty, migrated database of its own.

    The digest commits as it goes (store, claim, send, mark), so its tests need a database they
    own rather than the shared rolled-back ``session`` (on SQLite, pysqlite's savepoints would
    let those commits through to the shared database).
    """
    engine = make_engine(fresh_db_url)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


@pytest.fixture
def busy_day(db: Session) -> BusyDay:
    day = seed_busy_day(db)
    db.commit()
    return day


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on a free loopback port, running."""
    server = smtp_server_at(free_port(), Inbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """An SMTP server on a free port that is NOT started yet (call .start() to bring it up)."""
    server = smtp_server_at(free_port(), Inbox())
    yield server
    server.stop()


@pytest.fixture
def tls_servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A STARTTLS server and an implicit-TLS server, both requiring login, and the CA file to trust."""
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    starttls = smtp_server_at(free_port(), inbox, tls_context=ctx, require_starttls=True, auth_require_tls=True,
                              authenticator=authenticator(inbox))
    # implicit TLS: aiosmtpd does not count it as TLS for auth_require_tls, but it is encrypted
    implicit = smtp_server_at(free_port(), inbox, ssl_context=ctx, auth_require_tls=False,
                              authenticator=authenticator(inbox))
    starttls.start()
    implicit.start()
    yield {"starttls": starttls, "ssl": implicit, "ca": cert, "inbox": inbox}
    starttls.stop()
    implicit.stop()
