"""Fault injection, counted: items lost and duplicated, 5xx answers, recovery time; the figures go
to bench/results/faults.md. Target: 0 lost, 0 duplicated, 0 5xx.

- a PostgreSQL crash (pg_ctl stop -m immediate) and restart in the middle of a stream of bot
  pushes from a client that never retries (go-cqhttp);
- kill -9 of `yuqing analyze` (backlog 6,000, two worker processes) mid-run, then a new run;
- kill -9 of `yuqing import-chats` mid-file, then the same command again;
- kill -9 of `yuqing crawl` half-way through a slow site, then the next run;
- a crawl with the database crashing under it, then a crawl after it is back;
- the SMTP server down while alert mails are due, then back;
- kill -9 of `yuqing notify deliver` while it mails alerts to a slow mail server, then the next runs;
- kill -9 of `yuqing digest --send` mid-send (three recipient lists), then the next runs;
- a webhook receiver that crashes mid-request and stays down for a few seconds, then comes back,
  with delivery running in real time (the outbox's retry logic step by step is tested in
  tests/alerts/test_notify.py);
- bounded load (bot pushes and API reads at fixed rates) while `yuqing analyze` works through a
  backlog.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select, text

from api import accounts
from api.app import create_app
from core.db import make_engine, session_scope
from core.settings import get_settings
from core.tables import AnalysisRun, Notification, Post, PostScore, SourceRun
from tests.faults.conftest import REPO, Figures, OwnPostgres, wait_until
from yuqing.cli import KEEP_ALIVE_SECONDS

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "data"
    monkeypatch.setenv("YUQING_DATA_DIR", str(folder))
    monkeypatch.setenv("YUQING_SPILL_REPLAY_SECONDS", "0.5")
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def _serve(app) -> tuple[uvicorn.Server, threading.Thread, str]:  # type: ignore[no-untyped-def]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # as `yuqing serve` keeps connections alive (a shorter keep-alive races the clients' reuse)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", timeout_keep_alive=KEEP_ALIVE_SECONDS))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, 15) is not None
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_database_crash_and_restart_mid_push(
    own_postgres: OwnPostgres, data_dir: Path, fault_figures: Figures
) -> None:
    engine = make_engine(own_postgres.url)
    with session_scope(engine) as s:
        owner = accounts.create_user(s, username="qq-bot-owner", role="staff")
        token = accounts.create_token(s, owner, "qq-bot-1", kind="bot")
    server, thread, base = _serve(create_app(engine))
    answers: dict[int, int] = {}
    restarted_at = 0.0
    try:
        with httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            start = time.monotonic()
            n = during_outage = 0
            crashed = restarted = False
            # Phases by events, not by the clock alone: on a loaded machine stopping PostgreSQL can
            # take the whole planned outage, so it restarts only after a few pushes met it down.
            while not (restarted and time.monotonic() - restarted_at > 2.5) and time.monotonic() - start < 60:
                elapsed = time.monotonic() - start
                if elapsed > 2.0 and not crashed:
                    own_postgres.stop()
                    crashed = True
                if elapsed > 4.5 and crashed and not restarted and during_outage >= 5:
                    own_postgres.start()
                    restarted, restarted_at = True, time.monotonic()
                during_outage += crashed and not restarted
                n += 1
                event = {"time": 1764036000 + n, "post_type": "message", "message_type": "group",
                         "message_id": n, "group_id": 880001, "user_id": 20000 + n % 7,
                         "message": f"第{n}条：东湾村的消息", "sender": {"nickname": f"村民{n % 7}"}}
                try:  # like go-cqhttp: one POST per message, no retry
                    answers[n] = client.post("/api/v1/ingest/onebot", json=event).status_code
                except httpx.HTTPError:
                    answers[n] = 0
        accepted = {i for i, code in answers.items() if code in (200, 202)}

        def stored() -> set[int]:
            with session_scope(engine) as s:
                return {int(x) for x in s.scalars(select(Post.external_id))}

        recovery = wait_until(lambda: accepted <= stored(), 60, step=0.2)
        recovery_s = round(time.monotonic() - restarted_at, 1) if recovery is not None else None
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with session_scope(engine) as s:
        rows = s.scalar(select(func.count()).select_from(Post)) or 0
        distinct = s.scalar(select(func.count(func.distinct(Post.external_id)))) or 0
    engine.dispose()
    lost = len(set(answers) - stored_ids(own_postgres.url))
    spooled = sum(1 for code in answers.values() if code == 202)
    fifth = sum(1 for code in answers.values() if code >= 500 or code == 0)
    fault_figures.add(fault="PostgreSQL crash + restart mid-push (no client retry)", items=len(answers), lost=lost,
                      duplicated=rows - distinct, **{"5xx": fifth}, recovery_s=recovery_s,
                      note=f"{spooled} answered 202 (spilled), replayed after restart")
    assert spooled > 0, "the outage was not hit"
    assert (lost, rows - distinct, fifth) == (0, 0, 0)


def stored_ids(url: str) -> set[int]:
    engine = make_engine(url)
    try:
        with session_scope(engine) as s:
            return {int(x) for x in s.scalars(select(Post.external_id))}
    finally:
        engine.dispose()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_analyze_leaves_no_workers_and_loses_nothing(
    fresh_db_url: str, data_dir: Path, fault_figures: Figures
) -> None:
    from core.ingest import ingest_posts

    total = 6_000
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "故障测试", "external_id": str(i), "title": f"通知{i}",
                          "text": f"听说第{i % 97}村要停水{i}天，大家转告，不转不是中国人 {i}"} for i in range(total)])
    env = os.environ | {"PYTHONPATH": str(REPO), "YUQING_DATABASE_URL": fresh_db_url}
    cmd = [sys.executable, "-m", "yuqing.cli", "analyze", "--workers", "2", "--batch-size", "500"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def partial_recorded() -> bool:
        with session_scope(engine) as s:
            return bool(s.scalar(select(func.max(AnalysisRun.posts_processed))))

    assert wait_until(partial_recorded, 240, step=0.2) is not None, "analyze never committed a batch"
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    gone = wait_until(lambda: not any(_alive(p) for p in workers), 30)
    with session_scope(engine) as s:
        partial = s.scalar(select(AnalysisRun.posts_processed).order_by(AnalysisRun.id.desc()).limit(1))
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    with session_scope(engine) as s:
        left = s.scalar(select(func.count()).select_from(Post).where(Post.analyzed_at.is_(None)))
        scores = s.scalar(select(func.count()).select_from(PostScore)) or 0
        scored = s.scalar(select(func.count(func.distinct(PostScore.post_id)))) or 0
        states = [r.stats.get("state") for r in s.scalars(select(AnalysisRun).order_by(AnalysisRun.id))]
    engine.dispose()
    fault_figures.add(fault="kill -9 of yuqing analyze (6,000 backlog, 2 workers)", items=total, lost=left,
                      duplicated=scores - scored, **{"5xx": "-"},
                      recovery_s=round(gone, 1) if gone is not None else "workers survived",
                      note=f"{len(workers)} worker processes gone after the kill; killed run kept "
                           f"{partial} posts of work, marked {states[0]}")
    assert len(workers) >= 1 and gone is not None, "worker processes outlived their parent"
    assert (left, scores - scored) == (0, 0)
    assert states[0] == "interrupted" and states[-1] == "finished"
    del killed_at


def test_kill_9_of_an_import_then_the_same_command(
    fresh_db_url: str, data_dir: Path, tmp_path: Path, fault_figures: Figures
) -> None:
    from tests.chats.conftest import QQ_HEADER

    total = 40_000
    export = tmp_path / "东湾村群.txt"
    with export.open("w", encoding="utf-8") as f:
        f.write(QQ_HEADER.format(group="东湾村群"))
        for i in range(total):
            f.write(f"2026-11-{1 + i // 3600 % 28:02d} {i // 60 % 24:02d}:{i % 60:02d}:{i % 59:02d} "
                    f"村民{i % 50}({100000 + i % 50})\n第{i}条消息 东湾村\n\n")
    env = os.environ | {"PYTHONPATH": str(REPO), "YUQING_DATABASE_URL": fresh_db_url}
    cmd = [sys.executable, "-m", "yuqing.cli", "import-chats", str(export)]
    engine = make_engine(fresh_db_url)

    def some_stored() -> bool:
        with session_scope(engine) as s:
            return (s.scalar(select(func.count()).select_from(Post)) or 0) > 2_000

    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(some_stored, 240, step=0.1) is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    started = time.monotonic()
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    seconds = time.monotonic() - started
    with session_scope(engine) as s:
        rows = s.scalar(select(func.count()).select_from(Post)) or 0
        distinct = s.scalar(select(func.count(func.distinct(Post.dedup_key)))) or 0
        statuses = list(s.scalars(select(SourceRun.status).order_by(SourceRun.id)))
        texts = s.scalar(text("SELECT count(DISTINCT raw_text) FROM posts")) or 0
    engine.dispose()
    fault_figures.add(fault="kill -9 of yuqing import-chats, then the same command", items=total,
                      lost=total - texts, duplicated=rows - distinct, **{"5xx": "-"}, recovery_s=round(seconds, 1),
                      note=f"runs: {' → '.join(statuses)}")
    assert (total - texts, rows - distinct) == (0, 0)
    assert statuses[0] == "interrupted" and statuses[-1] in ("ok", "partial")


def test_kill_9_of_a_crawl_then_the_next_run(fresh_db_url: str, data_dir: Path, tmp_path: Path,
                                              fault_figures: Figures) -> None:
    """kill -9 of `yuqing crawl` half-way through a slow site; the next run stores the rest,
    fetches none of the stored pages again, and marks the killed run interrupted."""
    from collections import Counter
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.crawler.conftest import crawl_env, run_crawl, write_sources

    pages = 30
    hits: Counter[str] = Counter()

    class SlowSite(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            if self.path == "/list.html":
                body = "<html><body>" + "".join(f'<a class="t" href="/a/{i}.html">通知{i}</a>' for i in range(pages))
            elif self.path.startswith("/a/"):
                time.sleep(0.3)  # slow enough to kill the crawl half-way
                i = self.path.split("/")[-1].split(".")[0]
                body = (f'<html><body><h1>南坪村公告第{i}号</h1><div class="b">南坪村第{i}次道路施工，请绕行。</div>'
                        f'<span class="t">2026-11-23 09:{int(i) % 60:02d}</span>')
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = (body + "</body></html>").encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sources = write_sources(tmp_path / "sources.yaml", {
        "name": "慢速公告站", "kind": "html", "interval": "10m", "urls": [base + "/list.html"], "obey_robots": False,
        "concurrency": 2, "list": {"item_links": "a.t::attr(href)"},
        "detail": {"title": "h1::text", "body": "div.b", "published": "span.t::text"}})
    env = crawl_env(YUQING_DATA_DIR=str(data_dir), YUQING_DATABASE_URL=fresh_db_url, YUQING_CRAWL_BATCH_SIZE="3")
    engine = make_engine(fresh_db_url)

    def stored() -> list[str]:
        with session_scope(engine) as s:
            return list(s.scalars(select(Post.url).where(Post.title.like("南坪村公告第%"))))

    try:
        proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "crawl", "--sources", str(sources)], cwd=REPO,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: len(stored()) >= 8, 240, step=0.1) is not None, "the crawl stored nothing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = set(stored())
        hits.clear()
        started = time.monotonic()
        again = run_crawl("--sources", str(sources), env=env, timeout=300)
        seconds = time.monotonic() - started
    finally:
        server.shutdown()
    assert again.returncode == 0, again.stdout + again.stderr
    after = stored()
    with session_scope(engine) as s:
        statuses = list(s.scalars(select(SourceRun.status).order_by(SourceRun.id)))
    engine.dispose()
    refetched = sum(hits[u.removeprefix(base)] for u in before)
    fault_figures.add(fault="kill -9 of yuqing crawl, then the next run", items=pages, lost=pages - len(set(after)),
                      duplicated=len(after) - len(set(after)), **{"5xx": "-"}, recovery_s=round(seconds, 1),
                      note=f"{len(before)} pages stored before the kill, {refetched} of them fetched again; "
                           f"runs: {' → '.join(statuses)}")
    assert len(before) < pages, "the crawl finished before the kill"
    assert (pages - len(set(after)), len(after) - len(set(after)), refetched) == (0, 0, 0)
    assert statuses[0] == "interrupted" and statuses[-1] == "ok"


def test_crawl_while_the_database_is_down_then_after(
    own_postgres: OwnPostgres, data_dir: Path, tmp_path: Path, fault_figures: Figures
) -> None:
    """The crawl goes on at full speed while every write fails (retries run off the reactor),
    the posts are spilled, and the next run stores them without fetching those pages again."""
    from collections import Counter
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.crawler.conftest import crawl_env, run_crawl, write_sources

    pages = 40
    hits: Counter[str] = Counter()
    crash_on_list = threading.Event()

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            if self.path == "/list.html" and crash_on_list.is_set():
                crash_on_list.clear()
                own_postgres.stop()  # the database goes away once the crawl is under way
            if self.path == "/list.html":
                links = "".join(f'<a class="t" href="/a/{i}.html">通知{i}</a>' for i in range(pages))
                body = f"<html><body>{links}</body></html>"
            elif self.path.startswith("/a/"):
                i = self.path.split("/")[-1].split(".")[0]
                body = (f'<html><body><h1>东湾村通知第{i}号</h1><div class="b">东湾村第{i}次停水检修，'
                        f'请提前储水。</div><span class="t">2026-11-22 10:{int(i) % 60:02d}</span></body></html>')
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sources = write_sources(tmp_path / "sources.yaml", {
        "name": "停库测试站", "kind": "html", "interval": "10m", "urls": [base + "/list.html"], "obey_robots": False,
        "list": {"item_links": "a.t::attr(href)"},
        "detail": {"title": "h1::text", "body": "div.b", "published": "span.t::text"}})
    env = crawl_env(YUQING_DATA_DIR=str(data_dir), YUQING_DATABASE_URL=own_postgres.url,
                    YUQING_CRAWL_BATCH_SIZE="5")
    try:
        crash_on_list.set()
        started = time.monotonic()
        down = run_crawl("--sources", str(sources), env=env, timeout=300)
        down_seconds = time.monotonic() - started
        fetched_down = sum(n for p, n in hits.items() if p.startswith("/a/"))
        own_postgres.start()
        hits.clear()
        started = time.monotonic()
        up = run_crawl("--sources", str(sources), env=env, timeout=300)
        up_seconds = time.monotonic() - started
        refetched = sum(n for p, n in hits.items() if p.startswith("/a/"))
    finally:
        server.shutdown()
    assert up.returncode == 0, up.stdout + up.stderr
    engine = make_engine(own_postgres.url)
    with session_scope(engine) as s:
        rows = s.scalar(select(func.count()).select_from(Post).where(Post.title.like("东湾村通知第%"))) or 0
        distinct = s.scalar(select(func.count(func.distinct(Post.dedup_key)))
                            .where(Post.title.like("东湾村通知第%"))) or 0
    engine.dispose()
    fault_figures.add(fault="crawl with the database down, then a crawl after it is back", items=pages,
                      lost=pages - distinct, duplicated=rows - distinct, **{"5xx": "-"},
                      recovery_s=round(down_seconds, 1),
                      note=f"the down crawl fetched {fetched_down} pages in {down_seconds:.1f} s (exit "
                           f"{down.returncode}, partial; its writes retried off the reactor, then spilled); the next run "
                           f"({up_seconds:.1f} s) stored them and fetched {refetched} of them again")
    assert fetched_down == pages, down.stdout[-2000:] + down.stderr[-3000:]
    assert (pages - distinct, rows - distinct) == (0, 0)
    assert refetched == 0, "pages whose posts were spilled were fetched again"


def test_smtp_outage_then_back(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, fault_figures: Figures) -> None:
    """Twenty alert mails while the mail server is down, then up: each arrives once."""
    import datetime as dt
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    from alerts import notify
    from alerts.notify import deliver_due, parse_notify_config
    from tests.alerts.receivers import MailSink, free_port
    from tests.factories import make_alert

    port = free_port()
    monkeypatch.setenv("YUQING_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("YUQING_SMTP_PORT", str(port))
    monkeypatch.setenv("YUQING_SMTP_SECURITY", "none")
    get_settings.cache_clear()
    noon = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)
    engine = make_engine(fresh_db_url)
    config = parse_notify_config("routes:\n  - {name: m, channel: email, to: [duty@qinghe.example.org]}\n")
    total = 20
    with session_scope(engine) as s:
        for i in range(total):
            notify.enqueue(s, make_alert(s, severity="high", title=f"传言{i}"), "created", now=noon, config=config)
    down = deliver_due(engine, now=lambda: noon, config=config)
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    started = time.monotonic()
    try:
        later = noon
        for _ in range(10):
            later += dt.timedelta(seconds=get_settings().notify_backoff_max_seconds + 1)
            deliver_due(engine, now=lambda: later, config=config)  # noqa: B023 - called at once
            if len(sink.messages) >= total:
                break
        recovery = time.monotonic() - started
    finally:
        controller.stop()
        engine.dispose()
    ids = [message_from_bytes(e.content, policy=policy.default)["Message-ID"] for e in sink.messages]
    fault_figures.add(fault="SMTP server down, then back (alert mails)", items=total, lost=total - len(set(ids)),
                      duplicated=len(ids) - len(set(ids)), **{"5xx": "-"}, recovery_s=round(recovery, 1),
                      note=f"{down.failed} failed attempts while down, retried with backoff")
    assert down.failed == total and down.sent == 0
    assert (total - len(set(ids)), len(ids) - len(set(ids))) == (0, 0)


def _paced(rate: float, stop: threading.Event, call) -> None:  # type: ignore[no-untyped-def]
    """Call ``call(k)`` at ``rate`` per second until ``stop``: an open loop (calls start on a fixed
    schedule, up to 8 at once, whether or not earlier ones have answered), as independent clients do."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.monotonic()
    k = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while not stop.is_set():
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(call, k)
            k += 1


def _p95_ms(seconds: list[float]) -> int:
    return round(sorted(seconds)[int(0.95 * (len(seconds) - 1))] * 1000) if seconds else 0


@pytest.mark.timeout(900)  # about 30 s on two idle cores; a shared machine takes many times that
def test_bounded_load_during_analyze(fresh_db_url: str, data_dir: Path, fault_figures: Figures) -> None:
    """Bot pushes at 20/s and API reads at 10/s from the start to the end of a `yuqing analyze`
    scoring a 600-post backlog (two workers: both cores busy): every push is kept once, no read
    fails, and the next run analyzes the pushed posts. The backlog is small to keep the test short: analyze costs about
    9 s of CPU to start and 25 ms per post here."""
    from collections import Counter

    from core.ingest import ingest_posts

    backlog, push_rate, read_rate, max_load_s = 600, 20.0, 10.0, 120.0
    engine = make_engine(fresh_db_url)
    with session_scope(engine) as s:
        ingest_posts(s, [{"source": "负载测试", "external_id": f"b{i}", "title": f"通知{i}",
                          "text": f"听说第{i % 89}村要停电{i}小时，大家转告 {i}"} for i in range(backlog)])
        bot = accounts.create_token(s, accounts.create_user(s, username="qq-bot-load", role="staff"), "qq-bot-load",
                                    kind="bot")
        viewer = accounts.create_token(s, accounts.create_user(s, username="duty-viewer", role="viewer"), "duty")
    server, thread, base = _serve(create_app(engine))
    env = os.environ | {"PYTHONPATH": str(REPO), "YUQING_DATABASE_URL": fresh_db_url}
    cmd = [sys.executable, "-m", "yuqing.cli", "analyze", "--workers", "2", "--batch-size", "100"]
    pushes: dict[int, int] = {}
    reads: dict[int, int] = {}
    errors: list[str] = []
    push_s: list[float] = []
    read_s: list[float] = []
    reads_at = ["/api/v1/posts?limit=20", "/api/v1/stats", "/api/v1/stories?limit=20", "/api/v1/posts?q=停电"]
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def running() -> bool:
            ended = proc.poll() is not None
            with session_scope(engine) as s:
                committed = bool(s.scalar(select(func.count()).select_from(AnalysisRun)))
            assert committed or not ended, proc.stderr.read().decode() if proc.stderr else ""
            return committed

        stop = threading.Event()
        with (httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {bot}"}) as pusher,
              httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {viewer}"}) as reader):

            def push(k: int) -> None:
                n = 1_000_000 + k
                event = {"time": 1764036000 + k, "post_type": "message", "message_type": "group",
                         "message_id": n, "group_id": 880002, "user_id": 30000 + k % 11,
                         "message": f"第{k}条：西岭村今晚停电吗", "sender": {"nickname": f"村民{k % 11}"}}
                pushes[n] = 0  # no answer, unless one comes
                t0 = time.monotonic()
                try:
                    answer = pusher.post("/api/v1/ingest/onebot", json=event)
                    pushes[n] = answer.status_code
                    if answer.status_code >= 500:
                        errors.append(f"{answer.status_code} {answer.text[:160]}")
                except httpx.HTTPError as err:
                    pushes[n] = 0
                    errors.append(f"no answer: {type(err).__name__}")
                push_s.append(time.monotonic() - t0)

            def read(k: int) -> None:
                reads[k] = 0
                t0 = time.monotonic()
                try:
                    answer = reader.get(reads_at[k % len(reads_at)])
                    reads[k] = answer.status_code
                    if answer.status_code >= 500:
                        errors.append(f"read {answer.status_code} {answer.text[:160]}")
                except httpx.HTTPError as err:
                    reads[k] = 0
                    errors.append(f"read, no answer: {type(err).__name__}")
                read_s.append(time.monotonic() - t0)

            load = [threading.Thread(target=_paced, args=(rate, stop, fn), daemon=True)
                    for rate, fn in ((push_rate, push), (read_rate, read))]
            # The load runs from the process's start to its end, so it covers every batch commit however
            # fast this machine scores (a load started at the first commit saw 5 pushes on a fast one).
            started = time.monotonic()
            for t in load:
                t.start()
            try:
                assert wait_until(running, 240, step=0.2) is not None, "analyze never committed a batch"
                while proc.poll() is None and time.monotonic() - started < max_load_s:
                    time.sleep(0.1)
            finally:
                stop.set()
            for t in load:
                t.join(timeout=15)
            load_s = time.monotonic() - started
        load_ended = time.monotonic()
        assert proc.wait(timeout=600) == 0, proc.stderr.read().decode() if proc.stderr else ""
        accepted = {n for n, code in pushes.items() if code in (200, 202)}

        def stored_pushes() -> list[int]:
            with session_scope(engine) as s:
                return [int(x) for x in s.scalars(select(Post.external_id).where(Post.external_id.not_like("b%")))]

        assert wait_until(lambda: accepted <= set(stored_pushes()), 30, step=0.2) is not None
        # the next scheduled run, with its default workers (in-process for a small backlog)
        again = subprocess.run([*cmd[:4], "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                               check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        recovery_s = time.monotonic() - load_ended
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    pushed = stored_pushes()
    with session_scope(engine) as s:
        left = s.scalar(select(func.count()).select_from(Post).where(Post.analyzed_at.is_(None)))
        scores = s.scalar(select(func.count()).select_from(PostScore)) or 0
        scored = s.scalar(select(func.count(func.distinct(PostScore.post_id)))) or 0
    engine.dispose()
    lost = len(set(pushes) - set(pushed))
    duplicated = len(pushed) - len(set(pushed)) + scores - scored
    fifth = sum(1 for code in [*pushes.values(), *reads.values()] if code >= 500 or code == 0)
    spooled = sum(1 for code in pushes.values() if code == 202)
    fault_figures.add(
        fault=f"bounded load during yuqing analyze ({backlog:,} backlog, 2 workers)", items=len(pushes) + len(reads),
        lost=lost, duplicated=duplicated, **{"5xx": fifth}, recovery_s=round(recovery_s, 1),
        note=f"{len(pushes)} pushes ({push_rate:g}/s offered) and {len(reads)} reads ({read_rate:g}/s) over {load_s:.1f} s "
             f"of analyze; p95 {_p95_ms(push_s)} ms push, {_p95_ms(read_s)} ms read; {spooled} pushes spilled (202); "
             f"recovery = load end until the next run had analyzed every pushed post")
    assert len(pushes) >= 20 and len(reads) >= 10, "the load did not run"
    assert (lost, duplicated, fifth, left) == (0, 0, 0, 0), sorted(Counter(errors).items())[:10]
    assert all(code == 200 for code in reads.values())


def test_webhook_receiver_crash_and_outage_then_back(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, fault_figures: Figures
) -> None:
    """Twenty alert notifications to a webhook, delivered in real time: the receiver drops the
    connection after reading the 6th request (it crashed before answering), stays down 3 s, and
    comes back on the same port. Each notification arrives under one delivery key."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from alerts import notify
    from alerts.notify import deliver_due, parse_notify_config
    from tests.alerts.receivers import free_port
    from tests.factories import make_alert

    monkeypatch.setenv("YUQING_NOTIFY_BACKOFF_SECONDS", "0.5")
    monkeypatch.setenv("YUQING_NOTIFY_BACKOFF_MAX_SECONDS", "1")
    monkeypatch.setenv("YUQING_NOTIFY_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    total, crash_at, down_for = 20, 6, 3.0
    port = free_port()
    received: list[tuple[str, str]] = []  # (X-Yuqing-Notification, X-Yuqing-Delivery)
    crashed = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((self.headers["X-Yuqing-Notification"], self.headers["X-Yuqing-Delivery"]))
            if len(received) == crash_at and not crashed.is_set():
                crashed.set()
                self.close_connection = True  # the request arrived; the answer never leaves
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    def serve() -> ThreadingHTTPServer:
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    engine = make_engine(fresh_db_url)
    config = parse_notify_config(f"routes:\n  - {{name: 指挥中心, channel: webhook, url: 'http://127.0.0.1:{port}/hook', "
                                 "min_severity: low}\n")
    with session_scope(engine) as s:
        for i in range(total):
            notify.enqueue(s, make_alert(s, severity="high", title=f"停电传言{i}"), "created", config=config)
    server: ThreadingHTTPServer | None = serve()
    back_at = None
    failed, down_since = 0, 0.0
    started = time.monotonic()
    try:
        while time.monotonic() - started < 60:
            failed += deliver_due(engine, config=config, limit=5).failed  # the scheduler's loop, faster
            if crashed.is_set() and server is not None and back_at is None:
                server.shutdown()
                server.server_close()
                server, down_since = None, time.monotonic()
            if server is None and time.monotonic() - down_since >= down_for:
                server, back_at = serve(), time.monotonic()
            with session_scope(engine) as s:
                pending = s.scalar(select(func.count()).select_from(Notification).where(Notification.status != "sent"))
            if not pending and back_at is not None:
                break
            time.sleep(0.1)
        recovery_s = time.monotonic() - back_at if back_at is not None else None
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        engine.dispose()
    keys_per_notification: dict[str, set[str]] = {}
    for nid, key in received:
        keys_per_notification.setdefault(nid, set()).add(key)
    duplicated = sum(len(keys) - 1 for keys in keys_per_notification.values())
    redelivered = len(received) - len({key for _, key in received})
    fault_figures.add(
        fault="webhook receiver crashes mid-request, down 3 s, then back", items=total,
        lost=total - len(keys_per_notification), duplicated=duplicated, **{"5xx": "-"},
        recovery_s=round(recovery_s, 1) if recovery_s is not None else "never",
        note=f"{failed} failed attempts, retried with backoff; {redelivered} request(s) received again after the "
             f"receiver's answer was lost, under the same X-Yuqing-Delivery (a receiver dedupes on it)")
    assert back_at is not None and recovery_s is not None, "the receiver never came back or delivery never finished"
    assert (total - len(keys_per_notification), duplicated) == (0, 0)
    assert failed >= 1 and redelivered >= 1  # the outage and the lost answer were both hit


def test_kill_9_of_notification_delivery_then_the_next_runs(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_figures: Figures
) -> None:
    """`yuqing notify deliver` killed while it mails 30 alerts to a slow mail server: the
    next run sends what was never claimed, the mail in flight goes out once its claim window has
    passed, and every mail that arrives twice carries the same Message-ID (clients show it once)."""
    import asyncio
    import datetime as dt
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    from alerts import notify
    from alerts.notify import CLAIM_SECONDS, deliver_due, parse_notify_config
    from tests.alerts.receivers import MailSink, free_port
    from tests.factories import make_alert

    class SlowSink(MailSink):
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.3)  # a slow relay: the kill lands mid-batch
            return await super().handle_DATA(server, session, envelope)

    total = 30
    port = free_port()
    routes = tmp_path / "notify.yaml"
    routes.write_text("routes:\n  - {name: 值班, channel: email, to: [duty@qinghe.example.org]}\n", encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(REPO), "YUQING_DATABASE_URL": fresh_db_url, "YUQING_SMTP_HOST": "127.0.0.1",
                        "YUQING_SMTP_PORT": str(port), "YUQING_SMTP_SECURITY": "none",
                        "YUQING_NOTIFY_CONFIG_FILE": str(routes)}
    for name in ("YUQING_SMTP_HOST", "YUQING_SMTP_PORT", "YUQING_SMTP_SECURITY"):
        monkeypatch.setenv(name, env[name])  # the last run is in this process
    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    config = parse_notify_config(routes.read_text(encoding="utf-8"))
    with session_scope(engine) as s:
        for i in range(total):
            notify.enqueue(s, make_alert(s, severity="high", title=f"传言{i}"), "created", config=config)
    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    cmd = [sys.executable, "-m", "yuqing.cli", "notify", "deliver"]
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert wait_until(lambda: len(sink.messages) >= 5 or proc.poll() is not None, 240, step=0.05) is not None
        assert proc.poll() is None, "delivery ended before it could be killed"
        at_kill = len(sink.messages)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()
        again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        # the row that was in flight waits out its claim window; the run after that sends it
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=CLAIM_SECONDS + 1)
        deliver_due(engine, now=lambda: later, config=config)
        recovery = time.monotonic() - killed_at
    finally:
        controller.stop()
    with session_scope(engine) as s:
        statuses = dict(s.execute(select(Notification.status, func.count()).group_by(Notification.status)).all())
    engine.dispose()
    ids = [message_from_bytes(e.content, policy=policy.default)["Message-ID"] for e in sink.messages]
    lost, duplicated = total - len(set(ids)), len(ids) - len(set(ids))
    fault_figures.add(fault="kill -9 of yuqing notify deliver (slow mail server), then the next runs",
                      items=total, lost=lost, duplicated=f"{duplicated} (same Message-ID)", **{"5xx": "-"},
                      recovery_s=round(recovery, 1),
                      note=f"killed when {at_kill} mails had arrived; the mail in flight is "
                           f"sent again after its {CLAIM_SECONDS} s claim window, under its Message-ID")
    assert lost == 0 and statuses == {"sent": total}, statuses
    # a mail that arrived twice is the one in flight, under the Message-ID it had the first time
    assert len(set(ids)) == total and duplicated <= 1, (len(ids), len(set(ids)))


def test_kill_9_of_a_digest_send_then_the_next_runs(
    fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_figures: Figures
) -> None:
    """`yuqing digest --send` killed while it mails three recipient lists through a slow mail
    server: the same command again sends the lists that never went, the one in flight is resent
    by the scheduled retry once it is stale, under its Message-ID, and each list's archive row is
    one row, sent."""
    import asyncio
    import datetime as dt
    from email import message_from_bytes, policy

    import yaml
    from aiosmtpd.controller import Controller

    from core.tables import Digest
    from digest.service import SENDING_STALE, retry_failed
    from tests.alerts.receivers import MailSink, free_port

    class SlowSink(MailSink):
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            await asyncio.sleep(1.0)  # a slow relay: the kill lands mid-send
            return await super().handle_DATA(server, session, envelope)

    port = free_port()
    recipients = tmp_path / "digest.yaml"
    lists = [{"email": "shuji@qinghe.example", "sections": ["rumors"]},
             {"email": "zhenzhang@qinghe.example", "sections": ["concerns"]},
             {"email": "duty@qinghe.example"}]
    recipients.write_text(yaml.safe_dump({"title": "青禾镇舆情日报", "recipients": lists}, allow_unicode=True),
                          encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(REPO), "YUQING_DATABASE_URL": fresh_db_url,
                        "YUQING_SMTP_HOST": "127.0.0.1", "YUQING_SMTP_PORT": str(port),
                        "YUQING_SMTP_SECURITY": "none", "YUQING_DIGEST_RECIPIENTS_FILE": str(recipients)}
    for name in ("YUQING_DATABASE_URL", "YUQING_SMTP_HOST", "YUQING_SMTP_PORT", "YUQING_SMTP_SECURITY",
                 "YUQING_DIGEST_RECIPIENTS_FILE"):
        monkeypatch.setenv(name, env[name])  # the scheduled retry runs in this process
    get_settings.cache_clear()
    day = "2026-11-28"
    cmd = [sys.executable, "-m", "yuqing.cli", "digest", "--date", day, "--send"]
    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    engine = make_engine(fresh_db_url)

    def sending_started() -> bool:
        with session_scope(engine) as s:
            return bool(s.scalar(select(func.count()).select_from(Digest).where(Digest.status == "sending")))

    try:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert wait_until(lambda: sending_started() or proc.poll() is not None, 240, step=0.05) is not None
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.3)  # the mail is in the server's DATA step
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()
        at_kill = len(sink.messages)
        again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        later = dt.datetime.now(dt.UTC) + SENDING_STALE + dt.timedelta(seconds=1)
        with session_scope(engine) as s:  # the scheduled retry, once the killed send is stale
            retry_failed(s, now=later)
        recovery = time.monotonic() - killed_at
    finally:
        controller.stop()
    with session_scope(engine) as s:
        rows = [(r.recipients_key, r.status, r.message_id) for r in s.scalars(select(Digest))]
    engine.dispose()
    ids = [message_from_bytes(e.content, policy=policy.default)["Message-ID"] for e in sink.messages]
    lost = len(lists) - len(set(ids))
    duplicated = len(ids) - len(set(ids))
    fault_figures.add(fault="kill -9 of yuqing digest --send (3 recipient lists, slow mail server), then the next runs",
                      items=len(lists), lost=lost, duplicated=f"{duplicated} (same Message-ID)", **{"5xx": "-"},
                      recovery_s=round(recovery, 1),
                      note=f"killed mid-send with {at_kill} mail(s) accepted; the same command sent the lists that "
                           f"never went; the killed one was resent by the scheduled retry once stale "
                           f"({int(SENDING_STALE.total_seconds() // 60)} min), under its Message-ID")
    assert sorted(status for _, status, _ in rows) == ["sent"] * len(lists), rows
    assert len({key for key, _, _ in rows}) == len(lists)  # one archive row per list
    assert set(ids) == {mid for _, _, mid in rows}  # every list arrived, each under its own stable id
    assert duplicated <= 1, ids
