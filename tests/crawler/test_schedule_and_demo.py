"""The crawl jobs of `yuqing run`, the demo site, and `yuqing run --demo` crawling it on loopback."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import make_engine, session_scope
from core.settings import get_settings
from core.tables import Post, SourceRun
from crawler import service
from crawler.demo import serve_demo_site
from tests.crawler.conftest import REPO, RSS, FixtureSite, source, write_sources
from yuqing.scheduler import collect_jobs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_site_serves_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("YUQING_DEMO_SITE_PORT", str(port))
    base = serve_demo_site()
    assert base == f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/news/list-1.html", timeout=5) as resp:
        page = resp.read().decode("utf-8")
    assert "下一页" in page and "封城" in page
    with urllib.request.urlopen(f"{base}/api/posts?page=1", timeout=5) as resp:
        assert b'"list"' in resp.read()
    random_base = serve_demo_site(port=0)
    assert random_base != base and random_base.startswith("http://127.0.0.1:")


def test_each_source_is_a_job_on_its_interval(site: FixtureSite, fresh_db_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rss = source(RSS, site.base, "/feed/rss.xml", interval="2m")
    off = source(RSS, site.base, "/feed/atom.xml", name="停用的源", interval="1h", enabled=False)
    sources = write_sources(tmp_path / "s.yaml", rss, off)
    monkeypatch.setenv("YUQING_SOURCES_FILE", str(sources))
    monkeypatch.setenv("YUQING_CRAWL_AUTOTHROTTLE", "false")
    get_settings.cache_clear()
    jobs = {j.id: j for j in collect_jobs(get_settings())}
    assert jobs["crawl:青禾镇RSS"].seconds == 120 and jobs["crawl:青禾镇RSS"].run_now
    assert jobs["crawl:停用的源"].seconds == 3600
    with session_scope() as s:  # collect_jobs synced the file into the sources table
        assert service.source_enabled(s, "停用的源") is False

    assert jobs["crawl:青禾镇RSS"].func() == 0  # a real `yuqing crawl --source` subprocess
    assert jobs["crawl:停用的源"].func() == 0  # disabled: skipped without a run
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Post)) == 10
        assert s.scalar(select(func.count()).select_from(SourceRun)) == 1
    engine.dispose()


def test_no_sources_file_means_no_crawl_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUQING_SOURCES_FILE", raising=False)
    get_settings.cache_clear()
    assert not [j for j in collect_jobs(get_settings()) if j.id.startswith("crawl:")]


@pytest.mark.slow
def test_run_demo_crawls_the_bundled_site(tmp_path: Path) -> None:
    """What `make run` does: `yuqing run --demo` serves the demo site and crawls every source from loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    env |= {"YUQING_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(REPO), "YUQING_DEMO_SITE_PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "run", "--demo", "--port", str(_free_port())],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    db = tmp_path / "var" / "yuqing.db"
    names: set[str] = set()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as conn:
                        rows = conn.execute("SELECT s.name FROM source_runs r JOIN sources s ON s.id = r.source_id"
                                            " WHERE r.status = 'ok' AND r.items_new > 0").fetchall()
                    names = {r[0] for r in rows}
                except sqlite3.OperationalError:
                    pass  # not migrated yet
            if len(names) == 6:
                break
            time.sleep(1)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert names == {"青禾镇新闻网", "青禾论坛", "东湾村村民交流区", "青禾镇融媒体RSS", "青禾镇政府公告", "青禾生活App"}, out
    assert "演示信息源网站：http://127.0.0.1:" in out
    with sqlite3.connect(db) as conn:
        posts = conn.execute("SELECT count(*), sum(raw_text LIKE '%封城%') FROM posts").fetchone()
        # the demo group board's messages (the live demo also pushes chat messages of its own)
        group_messages = conn.execute("SELECT count(*), sum(author LIKE '用户%') FROM posts p"
                                      " JOIN sources s ON s.id = p.source_id WHERE p.channel = 'chat'"
                                      " AND p.group_id IS NOT NULL AND s.name = '东湾村村民交流区'").fetchone()
    assert posts[0] >= 40 and posts[1] >= 3
    assert group_messages == (4, 4)  # the demo group board: pseudonymous senders
