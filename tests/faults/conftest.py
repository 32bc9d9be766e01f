"""Fault injection: a PostgreSQL of the test's own (initdb + pg_ctl in a temp dir, on its own
port) that a test may stop and start, and the figures table written to bench/results/faults.md."""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "faults.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnPostgres:
    """A throw-away PostgreSQL server: ``stop()`` is a crash (immediate mode), ``start()`` a restart."""

    folder: Path
    port: int
    bin: Path
    user: str | None  # run the server as this user (initdb refuses root)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/yuqing"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
    bin_dir = Path(found[-1]).parent
    # Not under pytest's temp root: as root, that is private to root, and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="yuqing-own-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(folder, user)
    pg = OwnPostgres(folder, free_port(), bin_dir, user)
    pg._run("initdb", "-D", str(folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    pg.start()
    from sqlalchemy import create_engine, text

    admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE yuqing"))
    admin.dispose()
    from core.migrate import upgrade

    upgrade(pg.url)
    yield pg
    with contextlib.suppress(subprocess.CalledProcessError):
        pg.stop()
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Figures:
    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, **row: object) -> None:
        self.rows.append(row)


COLUMNS = ["fault", "items", "lost", "duplicated", "5xx", "recovery_s", "note"]


def _rows_in(path: Path) -> list[dict[str, object]]:
    """The table rows already in the results file (so running one test keeps the others' figures)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == len(COLUMNS) and cells[0] != "fault":
            rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


@pytest.fixture(scope="session")
def fault_figures() -> Iterator[Figures]:
    figures = Figures()
    yield figures
    if not figures.rows:
        return
    fresh = {str(row["fault"]): row for row in figures.rows}
    old = _rows_in(RESULTS)
    rows = [fresh.get(str(row["fault"]), row) for row in old]  # in place, the order kept
    rows += [row for name, row in fresh.items() if name not in {str(r["fault"]) for r in old}]
    lines = [
        "# Fault injection (tests/faults, `pytest -m faults`)",
        "",
        f"Last written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on this machine (each row is its test's "
        f"latest run; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores when written: times on a "
        "shared machine are upper bounds). Target: 0 lost, 0 duplicated, 0 5xx.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")


def wait_until(predicate, timeout: float, step: float = 0.1) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds until ``predicate()`` is true, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return None
