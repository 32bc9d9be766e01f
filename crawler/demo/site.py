"""A small local news site, forum, feed and JSON API rendered from a content file.

Used three ways: the bundled demo of `yuqing run --demo` (crawler/demo/content.yaml), the fixture
site of the tests (tests/fixtures/sites/), and the benchmark (generated content of any size).

Pages served (``{base}`` is the server's root URL):

- ``/robots.txt``                      ``Disallow: /private/``
- ``/news/list-{n}.html``              news list, ``per_page`` links each, ``下一页`` link to page n+1
- ``/news/{id}.html``                  a news article (h1.title, span.author, span.time, div.article-body)
- ``/bbs/forum.html``                  forum board listing the threads (a.thread-title)
- ``/bbs/thread-{id}.html``            a thread with its replies (div.reply[data-pid]), with ETag (304)
- ``/feed/rss.xml`` / ``/feed/atom.xml``  the news as RSS 2.0 / Atom, with ETag and Last-Modified (304)
- ``/api/posts?page={n}``              JSON ``{"code": 0, "data": {"list": [...], "page": n}}``
- ``/group/board-{n}.html``            a public group board (content ``group_board``): topic links
                                       (a.topic), ``per_page`` each, ``下一页`` link (a.next)
- ``/group/topic-{id}[-{n}].html``      a topic's page n (``replies_per_page`` floors, ``下一页`` link
                                       a.next-floors): opening floor (page 1 only) and reply floors (div.floor[data-pid], a.user
                                       with data-uid, span.time, div.content, blockquote.quote[data-quote-pid]
                                       when quoting); a reply with ``broken: true`` renders without content
                                       and time. With ETag (304)
- ``/group/channel?page={n}``          a channel's JSON API (content ``group_channel``):
                                       ``{"ok": true, "result": {"messages": [{id, from: {name, id}, text,
                                       date, reply_to_message_id}]}}``
- ``/private/...``                     forbidden by robots.txt
- anything under ``static_dir``        served as stored (bytes), e.g. hand-written GBK pages

Times in the content are either written as they should appear (``time: 昨天 12:30``) or given as
``ago_minutes``, rendered relative to "now" so the demo always looks fresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import threading
from collections import Counter
from collections.abc import Callable
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import yaml

TZ = ZoneInfo("Asia/Shanghai")
Route = Callable[["SiteHandler", dict[str, list[str]]], tuple[int, dict[str, str], bytes] | None]


def load_content(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _when(entry: dict[str, Any], now: dt.datetime) -> tuple[str, dt.datetime]:
    """(text as shown on the page, the datetime it stands for)."""
    if "ago_minutes" in entry:
        moment = now - dt.timedelta(minutes=float(entry["ago_minutes"]))
        style = entry.get("time_style", "absolute")
        minutes = float(entry["ago_minutes"])
        if style == "relative" and minutes < 60:
            return (f"{int(minutes)}分钟前" if minutes >= 1 else "刚刚"), moment
        if style == "relative" and moment.date() == (now - dt.timedelta(days=1)).date():
            return f"昨天 {moment:%H:%M}", moment
        return f"{moment:%Y-%m-%d %H:%M}", moment
    text = str(entry.get("time", ""))
    from crawler.dates import parse_published

    return text, parse_published(text, now=now, tz=TZ) or now


class Site:
    """Content plus rendering; the HTTP handler below only routes to these methods."""

    def __init__(self, content: dict[str, Any], *, static_dir: Path | None = None,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.content = content
        self.static_dir = static_dir
        self.started = dt.datetime.now(dt.UTC).replace(microsecond=0)
        # Times are relative to the moment the site started, so pages and feeds do not change
        # between requests (ETag / 304 work) while still looking fresh.
        self.now = now or (lambda: self.started.astimezone(TZ))
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.per_page = int(content.get("per_page", 4))
        self.routes: dict[str, Route] = {}

    # ------------------------------------------------------------------ pages

    def news(self) -> list[dict[str, Any]]:
        return list(self.content.get("news", []))

    def page(self, title: str, body: str, charset: str = "utf-8") -> bytes:
        return (f'<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="{charset}">'
                f"<title>{html.escape(title)}</title></head>\n<body>\n"
                f'<div class="site-header">{html.escape(self.content.get("site_name", "青禾镇信息网"))}</div>\n'
                f"{body}\n</body></html>\n").encode(charset, errors="xmlcharrefreplace")

    def news_list(self, n: int) -> bytes | None:
        items = self.news()
        pages = max(1, -(-len(items) // self.per_page))
        if n < 1 or n > pages:
            return None
        chunk = items[(n - 1) * self.per_page:n * self.per_page]
        rows = "\n".join(
            f'<li><a class="news-title" href="/news/{e["id"]}.html">{html.escape(e["title"])}</a>'
            f' <span class="date">{html.escape(_when(e, self.now())[0])}</span></li>' for e in chunk)
        pager = f'<div class="pager"><a class="next" href="/news/list-{n + 1}.html">下一页</a></div>' if n < pages else ""
        extra = "".join(f'<li><a class="news-title" href="{html.escape(x)}">其他链接</a></li>'
                        for x in self.content.get("list_extra_links", {}).get(str(n), []))
        return self.page(f"新闻列表 第{n}页", f'<ul class="news-list">\n{rows}{extra}\n</ul>\n{pager}')

    def article(self, ident: str) -> bytes | None:
        if not hasattr(self, "_by_id"):
            self._by_id = {str(e["id"]): e for e in self.news()}
        e = self._by_id.get(ident)
        if e is None:
            return None
        shown, _ = _when(e, self.now())
        paras = "".join(f"<p>{html.escape(p)}</p>" for p in str(e["body"]).split("\n") if p.strip())
        body = (f'<h1 class="title">{html.escape(e["title"])}</h1>\n'
                f'<div class="meta">来源：<span class="author">{html.escape(e.get("author", "青禾镇融媒体中心"))}'
                f'</span> 发布时间：<span class="time">{html.escape(shown)}</span></div>\n'
                f'<div class="article-body">{paras}<script>var tracker = "不应出现在正文";</script></div>')
        return self.page(e["title"], body)

    def forum(self) -> bytes:
        rows = "\n".join(
            f'<tr><td><a class="thread-title" href="/bbs/thread-{t["id"]}.html">{html.escape(t["title"])}</a></td>'
            f'<td>{len(t.get("replies", []))}</td></tr>' for t in self.content.get("threads", []))
        return self.page("青禾镇论坛", f'<table class="threads">\n{rows}\n</table>')

    def thread(self, ident: str) -> bytes | None:
        for t in self.content.get("threads", []):
            if str(t["id"]) != ident:
                continue
            now = self.now()
            replies = "\n".join(
                f'<div class="reply" data-pid="{r["id"]}"><span class="author">{html.escape(r["author"])}</span>'
                f' <span class="time">{html.escape(_when(r, now)[0])}</span>'
                f'<div class="reply-body">{html.escape(r["body"])}</div></div>' for r in t.get("replies", []))
            body = (f'<h1 class="thread-title">{html.escape(t["title"])}</h1>\n'
                    f'<div class="first-post"><span class="author">{html.escape(t["author"])}</span>'
                    f' <span class="time">{html.escape(_when(t, now)[0])}</span>'
                    f'<div class="post-body">{html.escape(t["body"])}</div></div>\n'
                    f'<div class="replies">{replies}</div>')
            return self.page(t["title"], body)
        return None

    def rss(self, base: str) -> bytes:
        now = self.now()
        items = []
        for e in self.news()[: int(self.content.get("feed_size", 20))]:
            _, moment = _when(e, now)
            items.append(
                f"<item><title>{html.escape(e['title'])}</title><link>{base}/news/{e['id']}.html</link>"
                f"<guid>{base}/news/{e['id']}.html</guid><pubDate>{format_datetime(moment)}</pubDate>"
                f"<author>{html.escape(e.get('author', '青禾镇融媒体中心'))}</author>"
                f"<description>{html.escape(e['body'])}</description></item>")
        return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
                f"<title>{html.escape(self.content.get('site_name', '青禾镇信息网'))}</title><link>{base}/</link>"
                f"<description>青禾镇新闻</description>{''.join(items)}</channel></rss>\n").encode()

    def atom(self, base: str) -> bytes:
        now = self.now()
        entries = []
        for e in self.content.get("atom", self.news())[: int(self.content.get("feed_size", 20))]:
            _, moment = _when(e, now)
            entries.append(
                f"<entry><title>{html.escape(e['title'])}</title><id>urn:qinghe:{e['id']}</id>"
                f'<link href="{base}/notice/{e["id"]}.html"/><updated>{moment.isoformat()}</updated>'
                f"<author><name>{html.escape(e.get('author', '青禾镇人民政府'))}</name></author>"
                f'<content type="html">{html.escape("<p>" + e["body"] + "</p>")}</content></entry>')
        return ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
                f"<title>青禾镇政府公告</title><id>urn:qinghe:notices</id><updated>{now.isoformat()}</updated>"
                f"{''.join(entries)}</feed>\n").encode()

    def api(self, page: int, base: str) -> bytes:
        rows = list(self.content.get("api", []))
        size = int(self.content.get("api_page_size", 5))
        chunk = rows[(page - 1) * size:page * size] if page >= 1 else []
        now = self.now()
        out = []
        for r in chunk:
            _, moment = _when(r, now)
            out.append({"id": r["id"], "title": r.get("title"), "content": r["content"],
                        "user": {"nick": r.get("nick", "匿名用户")},
                        "created_at": r.get("created_at") or moment.strftime("%Y-%m-%d %H:%M:%S"),
                        "share_url": f"{base}/app/post/{r['id']}"})
        return json.dumps({"code": 0, "data": {"list": out, "page": page}}, ensure_ascii=False).encode()

    # ------------------------------------------------------------------ group board and channel

    def group_board(self, n: int) -> bytes | None:
        board = self.content.get("group_board") or {}
        topics = list(board.get("topics", []))
        size = int(board.get("per_page", 10))
        pages = max(1, -(-len(topics) // size))
        if not board or n < 1 or n > pages:
            return None
        rows = "\n".join(f'<li><a class="topic" href="/group/topic-{t["id"]}.html">{html.escape(t["title"])}</a>'
                         f' <span class="count">{len(t.get("replies", []))}</span></li>'
                         for t in topics[(n - 1) * size:n * size])
        pager = f'<a class="next" href="/group/board-{n + 1}.html">下一页</a>' if n < pages else ""
        return self.page(board["name"], f'<h1 class="board-name">{html.escape(board["name"])}</h1>\n'
                                        f'<ul class="topics">\n{rows}\n</ul>\n{pager}')

    def _floor(self, entry: dict[str, Any], css: str, now: dt.datetime) -> str:
        user = (f'<a class="user" data-uid="{html.escape(str(entry["uid"]))}">{html.escape(entry["author"])}</a>'
                if "author" in entry else "")
        if entry.get("broken"):  # a floor the board mangled: no time, no content
            return f'<div class="floor {css}" data-pid="{entry["id"]}">{user}<span class="tail">该楼层加载失败</span></div>'
        quote = ""
        if "quote" in entry:
            quote = (f'<blockquote class="quote" data-quote-pid="{entry["quote"]}">'
                     f'{html.escape(str(entry.get("quote_text", "")))}</blockquote>')
        return (f'<div class="floor {css}" data-pid="{entry["id"]}">{user}'
                f' <span class="time">{html.escape(_when(entry, now)[0])}</span>{quote}'
                f'<div class="content">{html.escape(entry["body"])}</div></div>')

    def group_topic(self, ident: str) -> bytes | None:
        """Page ``n`` of a topic (``7001`` is page 1, ``7001-2`` page 2): ``replies_per_page`` floors
        each; the opening floor only on page 1, as on Tieba."""
        board = self.content.get("group_board") or {}
        topic_id, _, n_raw = ident.partition("-")
        n = _int(n_raw) if n_raw else 1
        for t in board.get("topics", []):
            if str(t["id"]) != topic_id:
                continue
            replies = list(t.get("replies", []))
            size = int(board.get("replies_per_page", 0)) or max(1, len(replies))
            pages = max(1, -(-len(replies) // size))
            if n < 1 or n > pages:
                return None
            now = self.now()
            floors = "\n".join(self._floor(r, "reply", now) for r in replies[(n - 1) * size:n * size])
            opening = self._floor(t, "first", now) if n == 1 else ""
            pager = (f'<a class="next-floors" href="/group/topic-{topic_id}-{n + 1}.html">下一页</a>'
                     if n < pages else "")
            return self.page(t["title"], f'<h1 class="topic-title">{html.escape(t["title"])}</h1>\n'
                                         f'{opening}\n<div class="floors">{floors}</div>\n{pager}')
        return None

    def group_channel(self, page: int) -> bytes:
        channel = self.content.get("group_channel") or {}
        size = int(channel.get("page_size", 20))
        chunk = list(channel.get("posts", []))[(page - 1) * size:page * size] if page >= 1 else []
        now = self.now()
        out = [{"id": m["id"], "from": {"name": m["author"], "id": m["uid"]}, "text": m["text"],
                "date": _when(m, now)[1].isoformat(), "reply_to_message_id": m.get("reply_to")} for m in chunk]
        return json.dumps({"ok": True, "result": {"messages": out}}, ensure_ascii=False).encode()

    # ------------------------------------------------------------------ routing

    def respond(self, handler: SiteHandler) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(handler.path)
        path, query = parts.path, parse_qs(parts.query)
        base = f"http://{handler.headers.get('Host', '127.0.0.1')}"
        with self.lock:
            self.requests[handler.path] += 1
        if path in self.routes:
            found = self.routes[path](handler, query)
            if found is not None:
                return found
        html_type = {"Content-Type": "text/html; charset=utf-8"}
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"
        if path in ("/", "/index.html"):
            return 200, html_type, self.page("青禾镇信息网", '<a href="/news/list-1.html">新闻</a> '
                                                          '<a href="/bbs/forum.html">论坛</a>')
        if path.startswith("/news/list-") and path.endswith(".html"):
            body = self.news_list(_int(path[len("/news/list-"):-5]))
            return (200, html_type, body) if body else _not_found()
        if path.startswith("/news/") and path.endswith(".html"):
            body = self.article(path[len("/news/"):-5])
            return (200, html_type, body) if body else _not_found()
        if path == "/bbs/forum.html":
            return 200, html_type, self.forum()
        if path.startswith("/bbs/thread-") and path.endswith(".html"):
            body = self.thread(path[len("/bbs/thread-"):-5])
            return self._conditional(handler, body, html_type["Content-Type"]) if body else _not_found()
        if path.startswith("/group/board-") and path.endswith(".html"):
            body = self.group_board(_int(path[len("/group/board-"):-5]))
            return (200, html_type, body) if body else _not_found()
        if path.startswith("/group/topic-") and path.endswith(".html"):
            body = self.group_topic(path[len("/group/topic-"):-5])
            return self._conditional(handler, body, html_type["Content-Type"]) if body else _not_found()
        if path == "/group/channel":
            page = _int((query.get("page") or ["1"])[0])
            return 200, {"Content-Type": "application/json; charset=utf-8"}, self.group_channel(page)
        if path in ("/feed/rss.xml", "/feed/atom.xml"):
            body = self.rss(base) if path.endswith("rss.xml") else self.atom(base)
            return self._conditional(handler, body, "application/xml; charset=utf-8")
        if path == "/api/posts":
            page = _int((query.get("page") or ["1"])[0])
            return 200, {"Content-Type": "application/json; charset=utf-8"}, self.api(page, base)
        if path == "/__requests":
            with self.lock:
                counts = dict(self.requests)
            return 200, {"Content-Type": "application/json"}, json.dumps(counts).encode()
        if path == "/__reset":
            with self.lock:
                self.requests.clear()
            return 200, {"Content-Type": "text/plain"}, b"ok"
        if self.static_dir is not None:
            target = (self.static_dir / path.lstrip("/")).resolve()
            if self.static_dir.resolve() in target.parents and target.is_file():
                ctype = {".html": "text/html", ".xml": "application/xml", ".json": "application/json",
                         ".txt": "text/plain"}.get(target.suffix, "application/octet-stream")
                return 200, {"Content-Type": ctype}, target.read_bytes()
        return _not_found()

    def _conditional(self, handler: SiteHandler, body: bytes, ctype: str) -> tuple[int, dict[str, str], bytes]:
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        headers = {"Content-Type": ctype, "ETag": etag, "Last-Modified": format_datetime(self.started, usegmt=True)}
        if handler.headers.get("If-None-Match") == etag:
            return 304, headers, b""
        return 200, headers, body


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def _not_found() -> tuple[int, dict[str, str], bytes]:
    return 404, {"Content-Type": "text/html; charset=utf-8"}, "<h1>404 页面不存在</h1>".encode()


class SiteHandler(BaseHTTPRequestHandler):
    site: Site
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, headers, body = self.site.respond(self)
        if status == -1:  # a route wrote the response itself
            return
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A crawler that gives up on a slow or huge page resets the connection: not our problem.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(site: Site, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``site`` in a daemon thread; returns the server and its base URL (no trailing slash)."""
    handler = type("BoundSiteHandler", (SiteHandler,), {"site": site})
    server = _Server((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, name="yuqing-site", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_address[1]}"
