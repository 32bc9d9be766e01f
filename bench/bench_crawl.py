"""Crawl throughput: our full pipeline vs a bare Scrapy spider, on a local site of 2,000+ pages.

``python -m bench.bench_crawl [--articles 2000]`` starts a generated 青禾镇 news site (crawler.demo.site)
in its own process on loopback, then runs, each in its own process:

- ``bare``: a plain Scrapy spider that follows the same list and detail links, parses the same
  fields and discards them (no pipeline, no middlewares of ours): the ceiling on this machine;
- ``yuqing``: `yuqing crawl` of the same site into a fresh SQLite database (ingest batches,
  incremental state, encoding middleware, run records): what staff get.

The ceiling is the faster of two bare runs (before and after ours). The site itself is a Python
server on the same CPUs, so it bounds both crawls. Both with AutoThrottle off (it is on for real sites and would halve local throughput) and the same
concurrency. Writes pages/s, items/s, their ratio (target >= 0.70) and each process's peak memory
to bench/results/crawl.json and crawl.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
VILLAGES = ["东湾村", "柳树村", "石桥村", "南坪村"]
TOPICS = ["停水检修", "菜价", "口罩供应", "道路养护", "冬季防火", "校车", "供暖", "农贸市场"]


def content(articles: int) -> dict[str, Any]:
    news = []
    for i in range(1, articles + 1):
        village, topic = VILLAGES[i % 4], TOPICS[i % len(TOPICS)]
        news.append({
            "id": i, "title": f"{village}{topic}情况通报（第{i}期）", "author": f"{village}村委会",
            "time": f"2026-11-{1 + i % 27:02d} {i % 24:02d}:{i % 60:02d}",
            "body": f"青禾镇{village}关于{topic}的第{i}期通报。\n" + f"{village}村民反映{topic}问题，镇里已安排专人处理。" * 6,
        })
    return {"site_name": "青禾镇基准测试站", "per_page": 50, "news": news}


def serve(articles: int) -> None:
    """Child process: serve the generated site, print READY <base>, serve until stdin closes."""
    from crawler.demo.site import Site
    from crawler.demo.site import serve as start

    server, base = start(Site(content(articles)))
    print(f"READY {base}", flush=True)
    sys.stdin.read()
    server.shutdown()


def bare(base: str, out: str) -> None:
    """Child process: the ceiling, a Scrapy spider that parses and discards."""
    import scrapy
    from scrapy.crawler import CrawlerProcess

    from crawler.extract import all_values, first_text

    class Bare(scrapy.Spider):
        name = "bare"

        async def start(self) -> Any:
            yield scrapy.Request(f"{base}/news/list-1.html")

        def parse(self, response: Any) -> Any:
            for link in all_values(response, "a.news-title::attr(href)"):
                yield response.follow(link, self.parse_detail)
            nxt = all_values(response, "xpath://a[text()='下一页']/@href")
            if nxt:
                yield response.follow(nxt[0], self.parse)

        def parse_detail(self, response: Any) -> None:
            for spec in ("h1.title::text", "div.article-body", "span.author::text", "span.time::text"):
                first_text(response, spec)
            self.crawler.stats.inc_value("bare/items")

    process = CrawlerProcess({"LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": True, "CONCURRENT_REQUESTS": 16,
                              "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "AUTOTHROTTLE_ENABLED": False,
                              "TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False,
                              "COOKIES_ENABLED": False})
    crawler = process.create_crawler(Bare)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    Path(out).write_text(json.dumps({
        "seconds": stats["elapsed_time_seconds"],
        "pages": stats.get("response_received_count", 0) - stats.get("robotstxt/response_count", 0),
        "items": stats.get("bare/items", 0)}))


def _run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, float, float]:
    """Run a child; returns (exit code, wall seconds, peak RSS MB) sampled every 50 ms."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, ps.memory_info().rss)
        time.sleep(0.05)
    if proc.returncode:
        sys.stderr.write(proc.stderr.read() if proc.stderr else "")
    return proc.returncode, time.perf_counter() - started, peak / 1e6


def ours(base: str, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    sources = workdir / "sources.yaml"
    sources.write_text(
        "sources:\n  - name: 基准新闻站\n    kind: html\n"
        f"    urls: [\"{base}/news/list-1.html\"]\n    interval: 1h\n    max_pages: 1000\n    concurrency: 16\n"
        "    list: {item_links: \"a.news-title::attr(href)\", next_page: \"xpath://a[text()='下一页']/@href\"}\n"
        "    detail: {title: \"h1.title::text\", body: \"div.article-body\", author: \"span.author::text\","
        " published: \"span.time::text\"}\n", encoding="utf-8")
    db = workdir / "bench.db"
    env = env | {"YUQING_DATABASE_URL": f"sqlite:///{db}", "YUQING_DATA_DIR": str(workdir),
                 "YUQING_CRAWL_AUTOTHROTTLE": "false"}
    subprocess.run([sys.executable, "-m", "yuqing.cli", "db", "upgrade"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    code, wall, peak = _run_measured([sys.executable, "-m", "yuqing.cli", "crawl", "--sources", str(sources)], env)
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT started_at, finished_at, pages_fetched, items_new FROM source_runs")).one()
        posts = conn.execute(text("SELECT count(*) FROM posts")).scalar_one()
    engine.dispose()
    import datetime as dt

    started, finished = (dt.datetime.fromisoformat(str(v)) for v in row[:2])
    return {"exit": code, "wall_seconds": round(wall, 2), "seconds": (finished - started).total_seconds(),
            "pages": row[2], "items": row[3], "posts_stored": posts, "peak_rss_mb": round(peak, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", nargs=2, metavar=("BASE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.articles)
        return 0
    if args.bare:
        bare(*args.bare)
        return 0

    env = os.environ | {"PYTHONPATH": str(REPO)}
    site = subprocess.Popen([sys.executable, "-m", "bench.bench_crawl", "--serve", "--articles", str(args.articles)],
                            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert site.stdout is not None and site.stdin is not None
    base = site.stdout.readline().split(" ", 1)[1].strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bare.json"

            def run_bare() -> dict[str, Any]:
                code, wall, peak = _run_measured(
                    [sys.executable, "-m", "bench.bench_crawl", "--bare", base, str(out)], env)
                return json.loads(out.read_text()) | {"exit": code, "wall_seconds": round(wall, 2),
                                                      "peak_rss_mb": round(peak, 1)}

            # The ceiling is the better of two bare runs, one before and one after ours (less order bias).
            first = run_bare()
            result = ours(base, Path(tmp), env)
            second = run_bare()
            ceiling = min((first, second), key=lambda r: r["seconds"])
    finally:
        site.stdin.close()
        site.wait(timeout=10)

    for r in (ceiling, result):
        r["pages_per_s"] = round(r["pages"] / r["seconds"], 1)
        r["items_per_s"] = round(r["items"] / r["seconds"], 1)
    ratio = result["pages_per_s"] / ceiling["pages_per_s"]
    report = {
        "benchmark": "crawl", "site_pages": args.articles + -(-args.articles // 50),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "bare_scrapy": ceiling, "yuqing": result, "ratio_pages_per_s": round(ratio, 3),
        "target_ratio": 0.70, "meets_target": ratio >= 0.70,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "crawl.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = [
        "# Crawl throughput", "",
        f"Local generated site of {report['site_pages']} pages ({args.articles} articles), loopback, "
        f"AutoThrottle off, {os.cpu_count()} CPUs, load average {report['machine']['load_avg_1m']} at the end.", "",
        "| crawl | pages | items | seconds | pages/s | items/s | peak RSS MB |", "|---|---|---|---|---|---|---|",
    ]
    for name, r in (("bare Scrapy (parse and discard)", ceiling), ("yuqing crawl (with SQLite writes)", result)):
        md.append(f"| {name} | {r['pages']} | {r['items']} | {r['seconds']:.1f} | {r['pages_per_s']} | "
                  f"{r['items_per_s']} | {r['peak_rss_mb']} |")
    md += ["", f"Ratio (pages/s): **{ratio:.2f}** (target ≥ 0.70: {'met' if ratio >= 0.70 else 'NOT met'}). "
           f"Posts stored: {result['posts_stored']}.", ""]
    (RESULTS / "crawl.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    return 0 if result["exit"] == 0 and ceiling["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
