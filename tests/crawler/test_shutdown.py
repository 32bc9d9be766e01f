"""Stopping a crawl cleanly (Ctrl+C, or SIGTERM from a service manager) records it as interrupted.

Staff read a stopped crawl in the console; "失败: 爬虫未能启动" for a crawl they stopped themselves
sent them looking for a fault that was not there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.tables import Post, SourceRun
from tests.crawler.conftest import NEWS, REPO, crawl_env, source, start_site, write_sources

ARTICLES = 400


@pytest.fixture(scope="module")
def slow_site() -> Iterator[str]:
    """The fixture site with its /slow-news/ articles answering after 0.5 s each, 400 of them.

    A crawl of all of them takes over 200 s, so the stop lands in the middle even when a loaded
    machine makes the first batch write late (on CI a crawl of 40 once stored all 40 before the stop took hold)."""
    proc, base = start_site("--delay", "0.5", "--big", str(ARTICLES))
    yield base
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for_posts(url: str, proc: subprocess.Popen[str], deadline: float) -> None:
    engine = make_engine(url)
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            with Session(engine) as s:
                if s.scalar(select(Post.id).limit(1)) is not None:
                    return
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise AssertionError("the crawl stored nothing before the deadline")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopped_crawl_is_recorded_as_interrupted(slow_site: str, fresh_db_url: str, tmp_path: Path,
                                                   signum: signal.Signals) -> None:
    news = source(NEWS, slow_site, "/slow-news/list-1.html", concurrency=1, max_pages=ARTICLES // 10)
    sources = write_sources(tmp_path / "s.yaml", news)
    proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "crawl", "--sources", str(sources)],
                            cwd=REPO, env=crawl_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_posts(fresh_db_url, proc, time.monotonic() + 60)
        proc.send_signal(signum)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        run = s.scalars(select(SourceRun)).one()
        stored = len(s.scalars(select(Post.id)).all())
    engine.dispose()
    assert run.status == "interrupted", out
    assert run.finished_at is not None
    assert 0 < stored < ARTICLES and run.items_new == stored, (stored, out)  # what was stored before the stop is counted
    assert [e["reason"] for e in run.errors if e.get("kind") == "run"] == [
        "已中断：抓取在结束前被停止（Ctrl+C 或停止服务），已入库的内容保留，下次运行继续。"]
    assert "爬虫未能启动" not in out and "已中断" in out
    assert proc.returncode == 0  # a stop asked for is not a failure


@pytest.mark.slow
def test_stopping_yuqing_run_stops_its_crawls_cleanly(slow_site: str, fresh_db_url: str, tmp_path: Path) -> None:
    """Ctrl+C on `yuqing run` reaches only the scheduler (crawl children run in their own session),
    which asks each crawl in progress to stop once and waits for it to record itself."""
    news = source(NEWS, slow_site, "/slow-news/list-1.html", concurrency=1, max_pages=ARTICLES // 10)
    sources = write_sources(tmp_path / "s.yaml", news)
    env = crawl_env(YUQING_SOURCES_FILE=str(sources), YUQING_DATA_DIR=str(tmp_path / "var"),
                    YUQING_ANALYZE_INTERVAL_SECONDS="3600")
    proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "run", "--port", str(_free_port())],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_posts(fresh_db_url, proc, time.monotonic() + 90)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        run = s.scalars(select(SourceRun)).one()
    engine.dispose()
    assert run.status == "interrupted", out
    assert "已停止" in out and "Traceback" not in out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
