"""A local, durable spill for pushes that arrive while the database is away.

A chat bot (go-cqhttp and most OneBot frameworks) does not retry a push that failed: a 500 during
a database outage loses the message for good. So the push routes append what they accepted to
this spill and answer 202; a background task replays it in order once the database is back
(core.ingest is idempotent by key, so a replay after a crash half-way stores nothing twice).

Why SQLite and not an append-only file: one ``INSERT`` with ``synchronous=FULL`` is an atomic,
fsynced append that several processes (the API and `yuqing run`) can share without a lock of our
own, and removing a replayed entry is a ``DELETE`` instead of rewriting a file.

The payload is the request as it came, with unmasked phone numbers and raw sender ids (masking
and pseudonyms happen in core.ingest, at replay). It is therefore encrypted with a key derived
from the instance secret (Fernet: AES-CBC + HMAC), so no personal number lies readable under the
data dir.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from core.settings import get_settings

log = logging.getLogger(__name__)

SPILL_FILE = "push-spill.db"
TOKENS_FILE = "push-tokens.db"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spill ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
    " attempts INTEGER NOT NULL DEFAULT 0)"
)
# Push tokens seen valid recently (SHA-256 only, as in the database), in a file of their own
# (push-tokens.db), so a bot keeps being accepted while the database that holds the tokens is
# away, even after an API restart.
_TOKENS = (
    "CREATE TABLE IF NOT EXISTS push_tokens ("
    " token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, role TEXT NOT NULL, kind TEXT NOT NULL,"
    " seen_at REAL NOT NULL)"
)
TOKEN_MEMORY_SECONDS = 7 * 24 * 3600  # a token unused for a week is not trusted without the database


class SpillError(Exception):
    """The spill itself cannot be written (disk full, folder read-only): the caller answers 503."""


@dataclass(frozen=True)
class SpillEntry:
    id: int
    kind: str
    payload: dict[str, Any]


def _fernet(secret: bytes) -> Fernet:
    # A key of its own, derived from the instance secret: the secret's other uses (pseudonyms,
    # sessions) never see the same key bytes.
    key = hmac.digest(secret, b"yuqing push spill v1", hashlib.sha256)
    return Fernet(base64.urlsafe_b64encode(key))


class Spill:
    """The spill file ``<data_dir>/push-spill.db``: append, read in order, remove when stored."""

    def __init__(self, path: Path, secret: bytes) -> None:
        self.path = path
        self.tokens_path = path.with_name(TOKENS_FILE)
        self._fernet = _fernet(secret)

    @classmethod
    def default(cls) -> Spill:
        settings = get_settings()
        return cls(settings.data_dir / SPILL_FILE, settings.secret())

    @contextmanager
    def _connect(self, tokens: bool = False) -> Iterator[sqlite3.Connection]:
        path = self.tokens_path if tokens else self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an answered 202 survives a power cut
            conn.execute(_TOKENS if tokens else _SCHEMA)
            yield conn
        finally:
            conn.close()

    def append(self, kind: str, payload: dict[str, Any]) -> int:
        """Store one accepted request durably; raises SpillError when that is impossible."""
        blob = self._fernet.encrypt(orjson.dumps(payload))
        try:
            with self._connect() as conn:
                cur = conn.execute("INSERT INTO spill (kind, payload) VALUES (?, ?)", (kind, blob))
                return int(cur.lastrowid or 0)
        except (sqlite3.Error, OSError) as err:
            raise SpillError(f"push spill {self.path} cannot be written: {err}") from err

    def count(self) -> int:
        if not self.path.exists():
            return 0
        try:
            with self._connect() as conn:
                return int(conn.execute("SELECT count(*) FROM spill").fetchone()[0])
        except (sqlite3.Error, OSError):
            return 0

    def pending(self, limit: int = 100) -> list[SpillEntry]:
        """The oldest entries first. An entry that cannot be decrypted (the instance secret was
        changed) is logged and left in place for an administrator, never silently dropped."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT id, kind, payload FROM spill ORDER BY id LIMIT ?", (limit,)).fetchall()
        out = []
        for entry_id, kind, blob in rows:
            try:
                payload = orjson.loads(self._fernet.decrypt(blob))
            except InvalidToken:
                log.error("push spill entry %d cannot be decrypted: was YUQING_SECRET_KEY changed? "
                          "Restore the old secret to replay it", entry_id)
                continue
            out.append(SpillEntry(entry_id, kind, payload))
        return out

    def remove(self, entry_id: int) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM spill WHERE id = ?", (entry_id,))

    def note_attempt(self, entry_id: int) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE spill SET attempts = attempts + 1 WHERE id = ?", (entry_id,))

    def remember_token(self, token_hash: str, user_id: int, role: str, kind: str) -> None:
        """Note a push token the database just confirmed (best effort: a failure only means the
        token will not be accepted during an outage)."""
        try:
            with self._connect(tokens=True) as conn:
                conn.execute(
                    "INSERT INTO push_tokens VALUES (?, ?, ?, ?, ?) ON CONFLICT(token_hash) DO UPDATE SET "
                    "user_id = excluded.user_id, role = excluded.role, kind = excluded.kind, "
                    "seen_at = excluded.seen_at",
                    (token_hash, user_id, role, kind, time.time()),
                )
        except (sqlite3.Error, OSError) as err:
            log.warning("push token not remembered for outages: %s", err)

    def known_token(self, token_hash: str) -> tuple[int, str, str] | None:
        """(user id, role, kind) of a push token confirmed within TOKEN_MEMORY_SECONDS, else None."""
        try:
            with self._connect(tokens=True) as conn:
                row = conn.execute(
                    "SELECT user_id, role, kind FROM push_tokens WHERE token_hash = ? AND seen_at > ?",
                    (token_hash, time.time() - TOKEN_MEMORY_SECONDS),
                ).fetchone()
        except (sqlite3.Error, OSError):
            return None
        return (int(row[0]), str(row[1]), str(row[2])) if row else None

    def forget_token(self, token_hash: str) -> None:
        if not self.tokens_path.exists():
            return
        with self._connect(tokens=True) as conn:
            conn.execute("DELETE FROM push_tokens WHERE token_hash = ?", (token_hash,))


def seal(payload: dict[str, Any], secret: bytes | None = None) -> str:
    """One record encrypted for a spill file of another kind (the crawl spill's lines)."""
    return _fernet(secret or get_settings().secret()).encrypt(orjson.dumps(payload)).decode("ascii")


def unseal(token: str, secret: bytes | None = None) -> dict[str, Any]:
    """The record :func:`seal` made; raises ``InvalidToken`` under another instance secret."""
    value: dict[str, Any] = orjson.loads(_fernet(secret or get_settings().secret()).decrypt(token.encode("ascii")))
    return value
