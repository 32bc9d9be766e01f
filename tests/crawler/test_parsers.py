"""Parsers: Chinese dates (with hypothesis), selectors and visible text, JSON paths, encodings."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from parsel import Selector

from crawler.dates import parse_published
from crawler.encoding import declared_encoding, detect_encoding
from crawler.extract import all_values, dotted, first_text

TZ = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai


@pytest.mark.parametrize(("text", "expected"), [
    ("刚刚", dt.datetime(2026, 11, 28, 18, 0, tzinfo=TZ)),
    ("3分钟前", dt.datetime(2026, 11, 28, 17, 57, tzinfo=TZ)),
    ("2小时前", dt.datetime(2026, 11, 28, 16, 0, tzinfo=TZ)),
    ("半小时前", dt.datetime(2026, 11, 28, 17, 30, tzinfo=TZ)),
    ("昨天 12:30", dt.datetime(2026, 11, 27, 12, 30, tzinfo=TZ)),
    ("前天 08:05", dt.datetime(2026, 11, 26, 8, 5, tzinfo=TZ)),
    ("今天 09:00", dt.datetime(2026, 11, 28, 9, 0, tzinfo=TZ)),
    ("1月27日", dt.datetime(2026, 1, 27, tzinfo=TZ)),
    ("11月27日 21:10", dt.datetime(2026, 11, 27, 21, 10, tzinfo=TZ)),
    ("12月30日", dt.datetime(2025, 12, 30, tzinfo=TZ)),  # would be in the future: last year
    ("2026-11-27 08:00", dt.datetime(2026, 11, 27, 8, 0, tzinfo=TZ)),
    ("2026/11/27 08:00:09", dt.datetime(2026, 11, 27, 8, 0, 9, tzinfo=TZ)),
    ("发表于 2026年11月27日 08:00", dt.datetime(2026, 11, 27, 8, 0, tzinfo=TZ)),
    ("来源：青禾镇人民政府 2026-11-20", dt.datetime(2026, 11, 20, tzinfo=TZ)),
    ("2026-11-27T08:00:00Z", dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)),
    ("Thu, 26 Nov 2026 08:00:00 +0800", dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)),
    ("11-27 09:30", dt.datetime(2026, 11, 27, 9, 30, tzinfo=TZ)),
    (1795737600, dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC)),
    ("1795737600000", dt.datetime(2026, 11, 27, 0, 0, tzinfo=dt.UTC)),
])
def test_chinese_dates(text: object, expected: dt.datetime) -> None:
    assert parse_published(text, now=NOW, tz="Asia/Shanghai") == expected


@pytest.mark.parametrize("text", ["", "   ", "未知", "2026-02-30", "13月40日", None, True, "abc 99:99"])
def test_unparseable_dates_give_none(text: object) -> None:
    assert parse_published(text, now=NOW) is None


@given(st.text(max_size=60))
def test_date_parser_never_raises(text: str) -> None:
    result = parse_published(text, now=NOW)
    assert result is None or result.tzinfo is not None


moments = st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2030, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=TZ))


@given(moments, st.sampled_from(["{:%Y-%m-%d %H:%M}", "{:%Y/%m/%d %H:%M}", "{d.year}年{d.month}月{d.day}日 {d:%H:%M}",
                                 "发布时间：{:%Y-%m-%d %H:%M}", "{:%Y.%m.%d %H:%M}"]))
def test_absolute_dates_round_trip(moment: dt.datetime, pattern: str) -> None:
    text = pattern.format(moment, d=moment)
    assert parse_published(text, now=NOW) == moment


@given(st.integers(min_value=1, max_value=59), st.sampled_from([("秒", 1), ("分钟", 60), ("小时", 3600), ("天", 86400)]))
def test_relative_dates(amount: int, unit: tuple[str, int]) -> None:
    got = parse_published(f"{amount}{unit[0]}前", now=NOW)
    assert got == NOW - dt.timedelta(seconds=amount * unit[1])


PAGE = Selector(text="""<html><body>
<h1 class="title">  东湾村 <b>停水</b> 通知 </h1>
<div class="body"><p>第一段：明天停水。</p><script>var x = "广告";</script><style>p{}</style>
<p>第二段 <a href="/x">详情</a>请储水。</p><br>电话 12345</div>
<a class="link" href="/news/1.html">一</a><a class="link" href="news/2.html">二</a>
<a>下一页</a><a href="/p2">下一页</a>
</body></html>""")


def test_element_selector_means_visible_text() -> None:
    assert first_text(PAGE, "div.body") == "第一段：明天停水。\n第二段 详情请储水。\n电话 12345"
    assert first_text(PAGE, "h1.title") == "东湾村 停水 通知"
    assert first_text(PAGE, "h1.title::text") == "东湾村 通知"  # only the h1's own text nodes
    assert first_text(PAGE, "div.nothing") is None
    assert first_text(PAGE, None) is None


def test_attributes_and_xpath() -> None:
    assert all_values(PAGE, "a.link::attr(href)") == ["/news/1.html", "news/2.html"]
    assert all_values(PAGE, "xpath://a[text()='下一页']/@href") == ["/p2"]
    assert first_text(PAGE, "xpath://h1/b/text()") == "停水"


def test_dotted_paths() -> None:
    data = {"data": {"list": [{"id": 1, "user": {"nick": "南坪小刘"}}]}}
    assert dotted(data, "data.list.0.user.nick") == "南坪小刘"
    assert dotted(data, "data.missing.x") is None
    assert dotted(data, "data.list.5") is None
    assert dotted([1, 2], "-1") == 2


CHINESE = "青禾镇东湾村停水通知：因主管道维修，明天上午八点至十二点停水，请居民提前储水。给您带来不便，敬请谅解。"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8"])
def test_undeclared_chinese_is_detected(encoding: str) -> None:
    body = f"<html><body><p>{CHINESE}</p></body></html>".encode(encoding)
    assert body.decode(detect_encoding(body)) == body.decode(encoding)


def test_declared_encodings() -> None:
    assert declared_encoding(b"<meta charset='gb2312'>", None) == "gb18030"
    assert declared_encoding(b"<html></html>", "text/html; charset=GBK") == "gb18030"
    assert declared_encoding("\ufeff<p>x</p>".encode("utf-8"), None) == "utf-8"
    assert declared_encoding(b"<html></html>", "text/html") is None
