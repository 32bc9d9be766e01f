"""The bundled demo: a small fictional 青禾镇 site served on loopback, and sources pointing at it.

`yuqing run --demo` calls :func:`serve_demo_site` and crawls it with ``sources.yaml`` (its
``{base}`` replaced by the site's URL), so the whole product runs with no internet.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from crawler.demo.site import TZ, Site, load_content, serve

DEMO_DIR = Path(__file__).resolve().parent
DEMO_CONTENT = DEMO_DIR / "content.yaml"
DEMO_SOURCES = DEMO_DIR / "sources.yaml"

_servers: list[object] = []
_sites: list[Site] = []


def serve_demo_site(port: int | None = None, host: str = "127.0.0.1") -> str:
    """Start the demo site in a daemon thread; returns its base URL (no trailing slash).

    ``port`` None reads ``YUQING_DEMO_SITE_PORT`` (0 or unset = a free random port).
    """
    if port is None:
        port = int(os.environ.get("YUQING_DEMO_SITE_PORT") or 0)
    site = Site(load_content(DEMO_CONTENT))
    server, base = serve(site, host=host, port=port)
    _servers.append(server)  # keep it alive for the life of the process
    _sites.append(site)
    return base


def post_demo_news(article: dict[str, Any]) -> None:
    """A new article on the running demo site (the live demo's news: crawled on the next round)."""
    if not _sites:
        return
    site = _sites[-1]
    with site.lock:
        news = site.content.setdefault("news", [])
        ident = max((int(n.get("id", 0)) for n in news), default=0) + 1
        when = dt.datetime.now(TZ)
        news.insert(0, {"id": ident, "time": f"{when:%Y-%m-%d %H:%M}", **article})


def demo_sources_text(base: str) -> str:
    """The demo sources file with its URLs pointing at ``base``."""
    return DEMO_SOURCES.read_text(encoding="utf-8").replace("{base}", base)
