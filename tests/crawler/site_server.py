"""The crawler's fixture site: a real HTTP server on 127.0.0.1, run in a subprocess.

``python -m tests.crawler.site_server [--port 0] [--big N]`` prints ``READY <base url>`` and serves:

- everything of crawler.demo.site.Site with tests/fixtures/sites/qinghe.yaml: news list (3 pages) and
  10 articles, forum with 2 threads and replies, RSS and Atom feeds (ETag / 304), JSON API (2 pages),
  robots.txt forbidding /private/
- /group/board-{1,2}.html, /group/topic-{7001,7002}.html   the group board 东湾村村民交流区: one topic per
  board page; 7 reply floors, two quoting another floor, one with a QQ number and a phone number in its
  text, one malformed floor (no time, no content)
- /group/channel?page={n}         a channel's JSON API: 4 messages, 3 per page (replies by reply_to_message_id)
- tests/fixtures/sites/qinghe/ as static files: enc/gbk-meta.html (GB2312 in a meta tag),
  enc/gbk-none.html (GBK, declared nowhere), enc/big5-meta.html (Big5), faults/broken.html
  (malformed HTML), faults/ok-1.html, faults/empty.html (no title/body elements)
- /enc/gbk-header.html            GBK declared only in the Content-Type header
- /faults/list.html               a list page linking to every page below and the static ones
- /faults/slow.html               answers after 3 s (tests give the source a 1 s timeout)
- /faults/500.html                always HTTP 500
- /faults/loop-a.html             redirects to loop-b, which redirects back (a redirect loop)
- /faults/huge.html               20 MB of HTML
- /faults/truncated.html          Content-Length promises more than is sent, then the connection closes
- /faults/missing.html            404
- /private/secret.html            exists, but robots.txt forbids it
- /slow-news/list-{n}.html, /slow-news/{id}.html  ``--big N`` articles, ``--delay`` s each (0.15)
- /__requests, /__reset           request counts per path (for "fetched exactly once" assertions)
- /__add_reply?thread=&id=&body=[&board=1], /__drop_added_replies   a new reply on a thread (or a
  group board topic), and undo
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from crawler.demo.site import Site, SiteHandler, load_content, serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sites"

FAULT_LINKS = [
    "/faults/ok-1.html", "/enc/gbk-header.html", "/enc/gbk-meta.html", "/enc/gbk-none.html",
    "/enc/big5-meta.html", "/faults/broken.html", "/faults/empty.html", "/faults/slow.html",
    "/faults/500.html", "/faults/loop-a.html", "/faults/huge.html", "/faults/truncated.html",
    "/faults/missing.html", "/private/secret.html",
]


def _html(body: bytes, charset: str = "utf-8") -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": f"text/html; charset={charset}"}, body


def build_site(big: int = 40, delay: float = 0.15) -> Site:
    site = Site(load_content(FIXTURES / "qinghe.yaml"), static_dir=FIXTURES / "qinghe")

    def fault_list(handler: SiteHandler, query: Any) -> Any:
        links = "".join(f'<li><a class="news-title" href="{u}">{u}</a></li>' for u in FAULT_LINKS)
        return _html(site.page("故障页面", f'<ul class="news-list">{links}</ul>'))

    def gbk_header(handler: SiteHandler, query: Any) -> Any:
        return _html((FIXTURES / "qinghe" / "enc" / "gbk-header.html").read_bytes(), "gbk")

    def slow(handler: SiteHandler, query: Any) -> Any:
        time.sleep(3)
        return _html(site.page("很慢的页面", '<h1 class="title">慢</h1><div class="article-body">慢</div>'))

    def error(handler: SiteHandler, query: Any) -> Any:
        return 500, {"Content-Type": "text/html; charset=utf-8"}, "服务器内部错误".encode()

    def loop(target: str) -> Any:
        return lambda handler, query: (302, {"Location": target, "Content-Type": "text/html"}, b"")

    def huge(handler: SiteHandler, query: Any) -> Any:
        filler = ("<p>" + "青禾镇" * 100 + "</p>\n").encode() * 23000
        return _html(b'<html><body><h1 class="title">huge</h1><div class="article-body">' + filler + b"</div>")

    def truncated(handler: SiteHandler, query: Any) -> Any:
        body = site.page("被截断的页面", '<h1 class="title">柳树村通知</h1><div class="article-body">柳树村今天')
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body) + 5000))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True
        return -1, {}, b""

    def secret(handler: SiteHandler, query: Any) -> Any:
        return _html(site.page("内部", '<h1 class="title">不该被抓取</h1><div class="article-body">robots 禁止</div>'))

    added: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def add_reply(handler: SiteHandler, query: Any) -> Any:
        threads = site.content["group_board"]["topics"] if "board" in query else site.content["threads"]
        thread = next(t for t in threads if str(t["id"]) == query["thread"][0])
        reply = {"id": int(query["id"][0]), "author": "南坪村新网友", "uid": "u1099", "time": "2026-11-28 07:00",
                 "body": query["body"][0]}
        thread["replies"].append(reply)
        added.append((thread, reply))
        return 200, {"Content-Type": "text/plain"}, b"ok"

    def drop_added(handler: SiteHandler, query: Any) -> Any:
        while added:
            thread, reply = added.pop()
            thread["replies"].remove(reply)
        return 200, {"Content-Type": "text/plain"}, b"ok"

    site.routes.update({
        "/__add_reply": add_reply, "/__drop_added_replies": drop_added,
        "/faults/list.html": fault_list, "/enc/gbk-header.html": gbk_header, "/faults/slow.html": slow,
        "/faults/500.html": error, "/faults/loop-a.html": loop("/faults/loop-b.html"),
        "/faults/loop-b.html": loop("/faults/loop-a.html"), "/faults/huge.html": huge,
        "/faults/truncated.html": truncated, "/private/secret.html": secret,
    })

    per_page = 10

    def slow_list(n: int) -> Any:
        def route(handler: SiteHandler, query: Any) -> Any:
            ids = range((n - 1) * per_page + 1, min(n * per_page, big) + 1)
            links = "".join(f'<li><a class="news-title" href="/slow-news/{i}.html">第{i}条</a></li>' for i in ids)
            nxt = f'<a class="next" href="/slow-news/list-{n + 1}.html">下一页</a>' if n * per_page < big else ""
            return _html(site.page(f"慢速列表{n}", f'<ul class="news-list">{links}</ul>{nxt}'))
        return route

    def slow_article(i: int) -> Any:
        def route(handler: SiteHandler, query: Any) -> Any:
            time.sleep(delay)
            return _html(site.page(f"青禾镇简讯{i}", f'<h1 class="title">青禾镇简讯第{i}号</h1>'
                                   f'<span class="time">2026-11-27 08:{i % 60:02d}</span>'
                                   f'<div class="article-body">东湾村简讯第{i}号：今日天气晴，村道畅通。</div>'))
        return route

    for n in range(1, big // per_page + 2):
        site.routes[f"/slow-news/list-{n}.html"] = slow_list(n)
    for i in range(1, big + 1):
        site.routes[f"/slow-news/{i}.html"] = slow_article(i)
    return site


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--big", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.15, help="seconds per /slow-news/ article")
    args = parser.parse_args(argv)
    server, base = serve(build_site(args.big, args.delay), port=args.port)
    print(f"READY {base}", flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or kills us)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
