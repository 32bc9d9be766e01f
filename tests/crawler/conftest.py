"""Crawler fixtures: the fixture site in a subprocess, sources files, and `yuqing crawl` runs.

Every crawl runs the real CLI in a subprocess: Twisted's reactor cannot be restarted in the
pytest process, and this is how staff and the scheduler run it anyway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@dataclass
class FixtureSite:
    base: str

    def requests(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base}/__requests", timeout=5) as resp:
            counts: dict[str, int] = json.loads(resp.read())
        counts.pop("/__requests", None)
        return counts

    def reset(self) -> None:
        urllib.request.urlopen(f"{self.base}/__reset", timeout=5).read()

    def add_reply(self, thread: int, id: int, body: str, *, board: bool = False) -> None:
        query = urllib.parse.urlencode({"thread": thread, "id": id, "body": body, **({"board": 1} if board else {})})
        urllib.request.urlopen(f"{self.base}/__add_reply?{query}", timeout=5).read()

    def drop_added_replies(self) -> None:
        urllib.request.urlopen(f"{self.base}/__drop_added_replies", timeout=5).read()


def start_site(*extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.crawler.site_server", *extra], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("READY "), f"fixture site did not start: {line!r}"
    return proc, line.split(" ", 1)[1]


@pytest.fixture(scope="session")
def site() -> Iterator[FixtureSite]:
    """The fixture site (see tests/crawler/site_server.py for its pages) on a random port."""
    proc, base = start_site()
    yield FixtureSite(base)
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


NEWS = {
    "name": "青禾镇新闻", "kind": "html", "interval": "10m", "max_pages": 5,
    "list": {"item_links": "a.news-title::attr(href)", "next_page": "xpath://a[text()='下一页']/@href"},
    "detail": {"title": "h1.title::text", "body": "div.article-body", "author": "span.author::text",
               "published": "span.time::text"},
}
FORUM = {
    "name": "青禾论坛", "kind": "html", "interval": "10m",
    "list": {"item_links": "a.thread-title::attr(href)"},
    "detail": {"title": "h1.thread-title::text", "body": "div.first-post div.post-body",
               "author": "div.first-post span.author::text", "published": "div.first-post span.time::text",
               "replies": {"each": "div.reply", "id": "::attr(data-pid)", "body": "div.reply-body",
                           "author": "span.author::text", "published": "span.time::text"}},
}
RSS = {"name": "青禾镇RSS", "kind": "feed", "interval": "15m"}
ATOM = {"name": "青禾镇公告Atom", "kind": "feed", "interval": "15m"}
API = {"name": "青禾生活App", "kind": "json", "interval": "5m", "page_start": 1, "items": "data.list",
       "fields": {"id": "id", "title": "title", "body": "content", "url": "share_url", "author": "user.nick",
                  "published": "created_at"}}


def source(template: dict[str, Any], base: str, *paths: str, **changes: Any) -> dict[str, Any]:
    """A source entry from a template, with its URLs on the fixture site."""
    return template | {"urls": [base + p for p in paths]} | changes


def write_sources(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"sources": list(entries)}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def crawl_env(**extra: str) -> dict[str, str]:
    env = os.environ | {"PYTHONPATH": str(REPO), "YUQING_CRAWL_AUTOTHROTTLE": "false"}
    return env | extra


def run_crawl(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`yuqing crawl ARGS` in a subprocess against the database in YUQING_DATABASE_URL."""
    return subprocess.run([sys.executable, "-m", "yuqing.cli", "crawl", *args], cwd=REPO, env=env or crawl_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
