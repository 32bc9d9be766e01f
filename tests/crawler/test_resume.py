"""Killing a crawl mid-run and starting it again loses nothing stored and does not fetch it again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.tables import Post, SourceRun
from tests.crawler.conftest import NEWS, REPO, FixtureSite, crawl_env, run_crawl, source, write_sources


def _stored_urls(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    with Session(engine) as s:
        urls = list(s.scalars(select(Post.url)))
    engine.dispose()
    return urls


def test_kill_and_resume(site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    slow = source(NEWS, site.base, "/slow-news/list-1.html", name="慢速新闻", concurrency=2, max_pages=10)
    sources = write_sources(tmp_path / "s.yaml", slow)
    env = crawl_env(YUQING_CRAWL_BATCH_SIZE="3")
    site.reset()
    proc = subprocess.Popen([sys.executable, "-m", "yuqing.cli", "crawl", "--sources", str(sources)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_stored_urls(fresh_db_url)) < 14:
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = set(_stored_urls(fresh_db_url))
    assert 14 <= len(before) < 40, "the crawl should have been killed half-way"

    site.reset()
    again = run_crawl("--sources", str(sources), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    after = _stored_urls(fresh_db_url)
    assert len(after) == len(set(after)) == 40
    assert before <= set(after)
    counts = site.requests()
    refetched = [u for u in before if counts.get(u.removeprefix(site.base), 0)]
    assert refetched == [], "pages stored before the kill were fetched again"
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        runs = list(s.scalars(select(SourceRun).order_by(SourceRun.id)))
    engine.dispose()
    assert runs[0].status == "interrupted"  # the killed run, marked at once by the next run (its process is gone)
    assert runs[-1].status == "ok" and runs[-1].items_new == 40 - len(before)
