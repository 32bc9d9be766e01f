"""Rendering: untrusted text stays inert, admins can override templates, failures are explained."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.settings import Settings
from digest.build import build_summary
from digest.errors import DigestConfigError
from digest.render import render
from digest.service import compose, prepare
from tests.digest.factories import local, make_alert, make_response
from tests.digest.scenario import DAY, BusyDay

SETTINGS = Settings(timezone="Asia/Shanghai")


def test_post_text_is_escaped_in_html_and_bad_links_dropped(db: Session, busy_day: BusyDay) -> None:
    evil = make_alert(db, title='<img src=x onerror="alert(1)">柳树村"停电"&断网', created_at=local(DAY, 12),
                      severity="high", kind="rumor")
    make_response(db, alert=evil, text="<b>回应</b>", at=local(DAY, 13), url="javascript:alert(document.cookie)")
    s = build_summary(db, DAY, settings=SETTINGS, now=local(DAY, 18))
    out = render(s, title="青禾镇<舆情>日报")
    assert "<script>" not in out.html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in out.html
    assert "<img src=x" not in out.html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in out.html
    assert "&lt;b&gt;回应&lt;/b&gt;" in out.html and "青禾镇&lt;舆情&gt;日报" in out.html
    assert "javascript:" not in out.html and "javascript:" not in out.text
    assert "https://qinghe.example/notice/13" in out.html  # a good link stays
    # the only tags are ours: no event handlers anywhere
    assert not re.search(r"<[^>]+\son\w+=", out.html)
    # the text part is not HTML: it shows the text as written
    assert "<script>alert('x')</script>南坪村水库决堤" in out.text


def test_admin_template_override(db: Session, busy_day: BusyDay, tmp_path: Path) -> None:
    (tmp_path / "digest.txt").write_text("【{{ title }}】{{ s.day_zh }} 预警 {{ s.alerts.total }} 条\n",
                                         encoding="utf-8")
    (tmp_path / "digest.html").write_text(
        '{% extends "default/digest.html" %}{% block footer %}<p>青禾镇宣传办 · 内部资料</p>{% endblock %}',
        encoding="utf-8")
    s = build_summary(db, DAY, settings=SETTINGS, now=local(DAY, 18))
    out = render(s, title="青禾镇舆情日报", template_dir=tmp_path)
    assert out.text == "【青禾镇舆情日报】2026年11月20日 预警 4 条\n"
    assert "青禾镇宣传办 · 内部资料" in out.html and "今日概况" in out.html and "舆情哨兵自动生成" not in out.html

    # the override also applies through the settings, when the service composes a digest
    prepared = prepare(db, DAY, settings=SETTINGS, now=local(DAY, 18))
    rendered, _ = compose(prepared, title="青禾镇舆情日报", sections=("rumors",), key="k" * 64, revision=0,
                          settings=Settings(digest_template_dir=tmp_path))
    assert rendered.text.startswith("【青禾镇舆情日报】")


@pytest.mark.parametrize("content, needle", [
    ("{% if %}", "第 1 行语法错误"),
    ("{{ s.no_such_figure.x }}", "模板渲染失败"),
])
def test_broken_override_is_explained(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "digest.txt").write_text(content, encoding="utf-8")
    s = {"day_zh": "2026年6月1日", "quiet": True}
    with pytest.raises(DigestConfigError, match=needle):
        render(s | _quiet_summary(), title="日报", template_dir=tmp_path)


def test_missing_template_dir_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DigestConfigError, match="YUQING_DIGEST_TEMPLATE_DIR"):
        render(_quiet_summary(), title="日报", template_dir=tmp_path / "nope")


def test_without_a_cjk_font_the_digest_still_goes_out(db: Session, busy_day: BusyDay, tmp_path: Path) -> None:
    settings = Settings(timezone="Asia/Shanghai", digest_font=tmp_path / "missing.ttf")
    prepared = prepare(db, DAY, settings=settings, now=local(DAY, 18))
    assert prepared.charts == {} and "YUQING_DIGEST_FONT" in prepared.charts_note
    rendered, figures = compose(prepared, title="日报", sections=("charts", "rumors"), key="k" * 64, revision=0,
                                settings=settings)
    assert figures == {} and "图表未生成" in rendered.html and "图表未生成" in rendered.text
    assert "东湾村要封村" in rendered.text


def test_sections_choose_what_is_shown(db: Session, busy_day: BusyDay) -> None:
    s = build_summary(db, DAY, settings=SETTINGS, now=local(DAY, 18))
    only_open = render(s, title="日报", sections=["open"])
    assert "【待处理事项】" in only_open.text and "【今日谣言】" not in only_open.text
    assert "【今日概况】" in only_open.text  # the headline is always there
    with pytest.raises(DigestConfigError, match="未知的日报栏目"):
        render(s, title="日报", sections=["gossip"])


def test_many_items_say_how_many_more(db: Session) -> None:
    day = dt.date(2026, 7, 1)
    for i in range(14):
        make_alert(db, title=f"石桥村传言{i}", created_at=local(day, 8, i), severity="medium", kind="rumor")
    s = build_summary(db, day, settings=SETTINGS, now=local(day, 20))
    out = render(s, title="日报")
    assert len(s["top_rumors"]) == SETTINGS.digest_top_n and s["rumor_alert_count"] == 14
    assert f"（前 {SETTINGS.digest_top_n} 条，共 14 条）" in out.text
    assert s["open_count"] == 14 and len(s["open_items"]) == 10 and "另有 4 项" in out.text


def _quiet_summary() -> dict:
    return {"day": "2026-06-01", "day_zh": "2026年6月1日", "weekday_zh": "星期一", "timezone": "Asia/Shanghai",
            "partial": False, "cutoff_local": "24:00", "generated_at": "2026-06-02 08:00", "quiet": True,
            "headline": "2026年6月1日今日无异常。", "alerts": {"total": 0}, "rumors_confirmed": 0,
            "open_count": 0, "overdue_count": 0}


def test_durations_and_counts_are_said_as_staff_say_them(db: Session, busy_day: BusyDay) -> None:
    """"已 0.1 小时" and "增加 39.7 条" read like a machine: minutes and whole posts instead."""
    make_alert(db, title="刚刚出现的传言", created_at=local(DAY, 17, 55), severity="low")
    s = build_summary(db, DAY, settings=SETTINGS, now=local(DAY, 18))
    text = render(s, title="青禾镇舆情日报").text
    assert "刚刚出现的传言" in text and "已 5 分钟" in text
    assert not re.search(r"\d+\.\d+ 小时", text) and not re.search(r"[增减][加少] \d+\.\d+ 条", text)
    assert "负责人：未指派" in text and "未分配" not in text  # one word, as in the console
