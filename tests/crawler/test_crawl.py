"""`yuqing crawl` against the fixture site: what is stored, the run statistics, incremental re-runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.tables import FetchState, Post, Source, SourceRun
from tests.crawler.conftest import API, ATOM, FORUM, NEWS, RSS, FixtureSite, run_crawl, source, write_sources

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _posts(url: str, name: str) -> list[Post]:
    engine = make_engine(url)
    with Session(engine) as s:
        sid = s.scalar(select(Source.id).where(Source.name == name))
        rows = list(s.scalars(select(Post).where(Post.source_id == sid).order_by(Post.id)))
    engine.dispose()
    return rows


def _runs(url: str) -> dict[str, list[SourceRun]]:
    engine = make_engine(url)
    out: dict[str, list[SourceRun]] = {}
    with Session(engine) as s:
        for run, name in s.execute(select(SourceRun, Source.name).join(Source).order_by(SourceRun.id)):
            out.setdefault(name, []).append(run)
    engine.dispose()
    return out


def test_crawl_stores_every_kind_and_rerun_stores_nothing_new(
        site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    sources = write_sources(
        tmp_path / "sources.yaml",
        source(NEWS, site.base, "/news/list-1.html"), source(FORUM, site.base, "/bbs/forum.html"),
        source(RSS, site.base, "/feed/rss.xml"), source(ATOM, site.base, "/feed/atom.xml"),
        source(API, site.base, "/api/posts?page={page}"))
    site.reset()
    first = run_crawl("--sources", str(sources))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "抓取结果" in first.stdout and "青禾镇新闻" in first.stdout

    news = _posts(fresh_db_url, "青禾镇新闻")
    assert len(news) == 10  # three list pages, ten articles
    by_title = {p.title: p for p in news}
    water = by_title["东湾村自来水管道维修 周六上午临时停水"]
    assert water.author == "青禾镇供水站"
    assert "临时停水" in water.raw_text and "不应出现在正文" not in water.raw_text  # scripts are not text
    assert "0571-12345" in water.raw_text
    fire = by_title["青禾镇召开冬季防火安全工作会议"]
    assert fire.published_at == dt.datetime(2026, 11, 27, 8, 0, tzinfo=SHANGHAI)
    assert by_title["南坪村完成冬季道路养护"].published_at == dt.datetime(2026, 11, 20, 9, 15, tzinfo=SHANGHAI)
    just_now = by_title["青禾镇中心小学举行消防演练"].published_at
    assert just_now is not None and abs(dt.datetime.now(dt.UTC) - just_now) < dt.timedelta(minutes=10)

    forum = _posts(fresh_db_url, "青禾论坛")
    threads = [p for p in forum if p.parent_key is None]
    replies = [p for p in forum if p.parent_key is not None]
    assert len(threads) == 2 and len(replies) == 4
    lockdown = next(t for t in threads if "封城" in (t.title or ""))
    assert {r.author for r in replies if r.parent_id == lockdown.id} == {"柳树村李姐", "镇政府小张", "石桥村老陈"}

    rss = _posts(fresh_db_url, "青禾镇RSS")
    assert len(rss) == 10 and all(p.published_at is not None and p.url for p in rss)
    atom = _posts(fresh_db_url, "青禾镇公告Atom")
    assert {p.title for p in atom} == {"青禾镇关于冬季供暖的通知", "青禾镇关于规范农贸市场价格的公告"}
    app = _posts(fresh_db_url, "青禾生活App")
    assert len(app) == 7 and {p.external_id for p in app} == {str(i) for i in range(5001, 5008)}
    assert next(p for p in app if p.external_id == "5001").author == "南坪小刘"

    runs = _runs(fresh_db_url)
    news_run = runs["青禾镇新闻"][0]
    assert news_run.status == "ok" and news_run.items_new == 10 and news_run.pages_fetched == 13
    assert runs["青禾生活App"][0].items_new == 7 and runs["青禾论坛"][0].items_new == 6
    assert all(r[0].finished_at is not None and r[0].errors == [] for r in runs.values())
    first_counts = site.requests()
    assert first_counts["/news/101.html"] == 1

    # Second run: detail pages already stored are not fetched, feeds answer 304, nothing new is stored.
    site.reset()
    second = run_crawl("--sources", str(sources))
    assert second.returncode == 0, second.stdout + second.stderr
    counts = site.requests()
    assert not any(path.startswith("/news/1") for path in counts), counts
    assert counts.get("/bbs/thread-1.html") == 1  # stored threads are asked again: new replies?
    assert counts.get("/news/list-2.html") is None  # page 1 held only known items: paging stopped
    assert counts.get("/api/posts?page=2") is None
    runs = _runs(fresh_db_url)
    for name, history in runs.items():
        assert history[-1].items_new == 0, name
        assert history[-1].status == "ok", (name, history[-1].errors)
    assert runs["青禾镇RSS"][-1].stats["not_modified"] == 1
    assert runs["青禾论坛"][-1].stats["not_modified"] == 2  # ... and answered 304
    assert len(_posts(fresh_db_url, "青禾镇新闻")) == 10

    # The feed's validators were recorded for the conditional request.
    engine = make_engine(fresh_db_url)
    with Session(engine) as s:
        state = s.scalar(select(FetchState).where(FetchState.url == f"{site.base}/feed/rss.xml"))
        assert state is not None and state.etag and state.content_hash
    engine.dispose()

    # A new reply on a stored thread is found by the next run, and linked to its thread.
    site.add_reply(thread=2, id=99, body="南坪村的水已经恢复了，是管道维修，不是污染。")
    try:
        third = run_crawl("--sources", str(sources), "--source", "青禾论坛")
        assert third.returncode == 0, third.stderr
        run = _runs(fresh_db_url)["青禾论坛"][-1]
        assert run.items_new == 1 and run.items_unchanged == 2  # thread 2 and its older reply
        forum = _posts(fresh_db_url, "青禾论坛")
        new = next(p for p in forum if "已经恢复" in p.raw_text)
        assert new.parent_id == next(p.id for p in forum if p.title == "石桥村停水到底什么时候恢复")
    finally:
        site.drop_added_replies()

    # --refresh fetches stored pages again (one source chosen by name), and stores nothing twice.
    site.reset()
    again = run_crawl("--sources", str(sources), "--source", "青禾论坛", "--refresh")
    assert again.returncode == 0, again.stderr
    assert site.requests().get("/bbs/thread-1.html") == 1
    run = _runs(fresh_db_url)["青禾论坛"][-1]
    assert run.items_new == 0 and run.items_unchanged == 6
    assert len(_posts(fresh_db_url, "青禾论坛")) == 7
    assert len(_runs(fresh_db_url)["青禾镇RSS"]) == 2  # only the named sources ran


def test_faults_are_reported_and_the_crawl_goes_on(site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    faults = source(NEWS, site.base, "/faults/list.html", name="故障测试站", timeout=1, max_pages=1)
    sources = write_sources(tmp_path / "s.yaml", faults, source(API, site.base, "/api/posts?page={page}"))
    site.reset()
    result = run_crawl("--sources", str(sources), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr  # partial is not a failure
    assert "部分失败" in result.stdout

    stored = {p.url.rsplit("/", 2)[-2] + "/" + p.url.rsplit("/", 1)[-1]: p for p in _posts(fresh_db_url, "故障测试站")}
    # Encodings: declared in the header, in a meta tag, nowhere (GBK), and Big5 (kept traditional).
    assert stored["enc/gbk-header.html"].title == "青禾镇集中供暖通知（GBK，HTTP头声明）"
    assert "十二月一日" in stored["enc/gbk-header.html"].raw_text
    assert stored["enc/gbk-meta.html"].title == "柳树村菜价平稳（GB2312，meta 声明）"
    assert "刘䶮" in stored["enc/gbk-meta.html"].raw_text  # a page declaring GB2312 is read as GB18030
    assert stored["enc/gbk-none.html"].title == "南坪村停水检修公告（GBK，未声明编码）"
    assert "请村民提前储水" in stored["enc/gbk-none.html"].raw_text
    assert stored["enc/big5-meta.html"].title == "青禾鎮口罩供應充足（BIG5）"
    # Malformed HTML is still read; a truncated page is kept as far as it came.
    assert "石桥村主路施工期间请绕行" in stored["faults/broken.html"].raw_text
    assert stored["faults/ok-1.html"].author == "东湾村委会"
    assert "faults/huge.html" not in stored and "faults/500.html" not in stored

    run = _runs(fresh_db_url)["故障测试站"][-1]
    assert run.status == "partial"
    reasons: dict[str, str] = {}
    for e in run.errors:
        if e["url"]:
            key = e["url"].rsplit("/", 1)[-1]
            reasons[key] = reasons.get(key, "") + e["reason"] + "；"
    assert "HTTP 500" in reasons["500.html"]
    assert "HTTP 404" in reasons["missing.html"]
    assert "重定向" in reasons["loop-a.html"]
    assert "太大" in reasons["huge.html"]
    assert "超时" in reasons["slow.html"]
    assert "detail.body" in reasons["empty.html"]
    assert "内容不完整" in reasons["truncated.html"]
    assert "柳树村今天" in stored["faults/truncated.html"].raw_text
    assert run.items_dropped == 1  # the empty page: no title, no body
    assert run.stats["retries"] >= 2  # 500 and the timeout were retried
    assert run.stats["robots_forbidden"] == 1
    assert "/private/secret.html" not in site.requests()
    # The other source of the same run was not disturbed.
    assert _runs(fresh_db_url)["青禾生活App"][-1].status == "ok"


def test_a_source_that_fails_entirely_exits_nonzero(site: FixtureSite, fresh_db_url: str, tmp_path: Path) -> None:
    broken = source(NEWS, site.base, "/faults/500.html", name="宕机的网站")
    custom = {"name": "自定义爬虫", "kind": "custom", "spider": "tests.crawler.custom_spider.NoticeBoardSpider",
              "urls": [site.base + "/bbs/forum.html"], "interval": "1h"}
    sources = write_sources(tmp_path / "s.yaml", broken, source(RSS, site.base, "/feed/rss.xml"), custom)
    result = run_crawl("--sources", str(sources))
    assert result.returncode == 1
    assert "宕机的网站" in result.stderr and "完全失败" in result.stderr
    runs = _runs(fresh_db_url)
    assert runs["宕机的网站"][-1].status == "failed"
    assert runs["青禾镇RSS"][-1].status == "ok" and len(_posts(fresh_db_url, "青禾镇RSS")) == 10
    # A site that needs code: its own spider class, named in the sources file.
    assert runs["自定义爬虫"][-1].status == "ok"
    assert {p.title for p in _posts(fresh_db_url, "自定义爬虫")} == {
        "听说下周要封城？有没有人知道", "石桥村停水到底什么时候恢复"}
