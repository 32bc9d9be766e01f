"""Publishing to 企业微信 groups through their group robots: the same approval, outbox, per-group
results and at-most-once path as QQ, against a recording WeCom webhook server on loopback
(tests/wecom_server.py: checks keys, message sizes, the image's md5 and 20 messages a minute).
And the publishing pace holds across two processes (a rate limit in the database).
On SQLite and PostgreSQL (``db`` marker)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, select

from alerts import publish
from alerts.publish_delivery import CLAIM_SECONDS, deliver_publications
from core.db import session_scope
from core.errors import InvalidInput
from core.settings import get_settings
from core.tables import AlertEvent, PublicationTarget, Response, User, utcnow
from tests.onebot_server import OneBotApi
from tests.publish.conftest import Matter, seed_matter
from tests.wecom_server import WeComRobots

REPO = Path(__file__).resolve().parents[2]
KEY = "4f1c2a7e-93b0-4d55-8a61-0c2f5e7d9b10"  # the robot in 柳树村微信群 (wx-1)
TEXT = "经核实，青禾镇明天没有封路安排，道路正常通行。"


@pytest.fixture
def robots(monkeypatch: pytest.MonkeyPatch, onebot: OneBotApi) -> Iterator[WeComRobots]:
    server = WeComRobots({KEY: "wx-1"})
    server.start()
    monkeypatch.setenv("YUQING_WECOM_WEBHOOK_URL", server.url)
    # by the group's name, as an office would paste the whole webhook address
    monkeypatch.setenv("YUQING_WECOM_ROBOTS", json.dumps(
        {"柳树村微信群": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"}))
    monkeypatch.setenv("YUQING_WECOM_PER_MINUTE", "6000")  # pacing has its own test
    get_settings.cache_clear()
    yield server
    server.stop()
    get_settings.cache_clear()


def _user(s, uid: int) -> User:
    user = s.get(User, uid)
    assert user is not None
    return user


def _publish(engine: Engine, m: Matter, group_ids: list[int] | None = None, text: str = TEXT) -> int:
    with session_scope(engine) as s:
        p, _ = publish.draft(s, m.alert_id, claim="青禾镇明天要封路", text=text, url="https://qinghe.example.gov.cn/piyao/7",
                             group_ids=group_ids, actor=_user(s, m.staff))
        pid = p.id
    with session_scope(engine) as s:
        publish.approve(s, pid, actor=_user(s, m.analyst))
    return pid


def _status(engine: Engine, pid: int) -> dict[str, tuple[str, int]]:
    with session_scope(engine) as s:
        return {t.external_id: (t.status, t.parts_sent) for t in s.scalars(
            select(PublicationTarget).where(PublicationTarget.publication_id == pid))}


def test_a_wecom_group_gets_the_text_and_the_card_once(api_engine: Engine, onebot: OneBotApi,
                                                       robots: WeComRobots) -> None:
    m = seed_matter(api_engine)
    with session_scope(api_engine) as s:
        from core.tables import Alert

        alert = s.get(Alert, m.alert_id)
        assert alert is not None
        choices = {c["name"]: c for c in publish.group_choices(s, alert)}
    assert choices["柳树村微信群"]["sendable"] and choices["柳树村微信群"]["default"]  # spread there, robot set
    pid = _publish(api_engine, m)  # the spread groups: three QQ groups and the WeCom group
    stats = deliver_publications(api_engine)
    assert (stats.sent, stats.failed, stats.unknown) == (4, 0, 0)
    assert onebot.sent_to() == m.numbers
    assert robots.kinds("wx-1") == ["text", "image"]
    text, image = robots.posted("wx-1")
    assert TEXT in text["text"]["content"] and "https://qinghe.example.gov.cn/piyao/7" in text["text"]["content"]
    card = Image.open(io.BytesIO(base64.b64decode(image["image"]["base64"])))
    assert card.format == "PNG" and card.width == 1080  # the 辟谣 card, md5 checked by the server
    assert _status(api_engine, pid)["wx-1"] == ("sent", 2)
    deliver_publications(api_engine)  # nothing left
    assert len(robots.calls) == 2
    with session_scope(api_engine) as s:
        response = s.scalar(select(Response).where(Response.alert_id == m.alert_id))
        assert response is not None and "企业微信群" in response.channels and "QQ群" in response.channels
        sent = [e.comment for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id == m.alert_id,
                                                                     AlertEvent.action == "publication_sent"))]
        assert any("柳树村微信群" in (c or "") for c in sent)


def test_markdown_escapes_staff_text(api_engine: Engine, robots: WeComRobots, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_WECOM_MESSAGE_FORMAT", "markdown")
    monkeypatch.setenv("YUQING_WECOM_SEND_CARD", "false")
    get_settings.cache_clear()
    m = seed_matter(api_engine)
    _publish(api_engine, m, [m.wechat_group], text="没有封路。<font color=\"warning\">[点我](http://evil.example)</font>")
    deliver_publications(api_engine)
    assert robots.kinds("wx-1") == ["markdown"]
    content = robots.posted("wx-1")[0]["markdown"]["content"]
    assert content.startswith("**【") and "[查看详情](https://qinghe.example.gov.cn/piyao/7)" in content
    assert "<font" not in content and "[点我]" not in content and "没有封路。" in content


def test_an_unconfigured_wechat_group_is_refused(api_engine: Engine, onebot: OneBotApi,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_WECOM_ROBOTS", json.dumps({"别的群": KEY}))
    get_settings.cache_clear()
    m = seed_matter(api_engine)
    with session_scope(api_engine) as s, pytest.raises(InvalidInput, match="YUQING_WECOM_ROBOTS"):
        publish.draft(s, m.alert_id, claim="封路", text="没有", group_ids=[m.wechat_group], actor=_user(s, m.staff))


def test_a_wrong_key_fails_without_showing_it_and_a_fixed_one_sends(
    api_engine: Engine, robots: WeComRobots, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    m = seed_matter(api_engine)
    pid = _publish(api_engine, m, [m.wechat_group])
    robots.keys = {}  # the robot was removed from the group
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="httpx"):  # whatever ran before
        stats = deliver_publications(api_engine)
    assert (stats.sent, stats.failed) == (0, 1)
    with session_scope(api_engine) as s:
        target = s.scalar(select(PublicationTarget).where(PublicationTarget.publication_id == pid))
        assert target is not None and target.status == "failed" and "YUQING_WECOM_ROBOTS" in (target.last_error or "")
        events = " ".join(e.comment or "" for e in s.scalars(select(AlertEvent)))
    assert KEY not in (target.last_error or "") and KEY not in events and KEY not in caplog.text
    assert "key=***" in caplog.text  # httpx's request log, with the key hidden
    robots.keys = {KEY: "wx-1"}
    later = utcnow() + dt.timedelta(hours=1)
    deliver_publications(api_engine, now=lambda: later)
    assert robots.kinds("wx-1") == ["text", "image"] and _status(api_engine, pid)["wx-1"] == ("sent", 2)


def test_the_robot_limit_fails_surely_and_the_retry_sends_only_the_card(
    api_engine: Engine, robots: WeComRobots
) -> None:
    m = seed_matter(api_engine)
    robots.per_minute = 3  # the robot refuses the 4th message within a minute (45009)
    first = _publish(api_engine, m, [m.wechat_group])
    second = _publish(api_engine, m, [m.wechat_group], text="经核实，青禾镇没有封路，请勿轻信。")
    stats = deliver_publications(api_engine)
    assert (stats.sent, stats.failed) == (1, 1)
    assert _status(api_engine, first)["wx-1"] == ("sent", 2)
    assert _status(api_engine, second)["wx-1"] == ("failed", 1)  # its text went out, the card did not
    with session_scope(api_engine) as s:
        target = s.scalar(select(PublicationTarget).where(PublicationTarget.publication_id == second))
        assert target is not None and "太频繁" in (target.last_error or "") and "文字已发出" in (target.last_error or "")
    robots.per_minute = 20  # a minute later
    later = utcnow() + dt.timedelta(hours=1)
    deliver_publications(api_engine, now=lambda: later)
    assert robots.kinds("wx-1") == ["text", "image", "text", "image"]  # the second text once
    assert _status(api_engine, second)["wx-1"] == ("sent", 2)


def test_robot_pacing_stays_under_its_limit(api_engine: Engine, robots: WeComRobots,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_WECOM_PER_MINUTE", "20")
    get_settings.cache_clear()
    m = seed_matter(api_engine)
    for k in range(2):
        _publish(api_engine, m, [m.wechat_group], text=f"经核实，青禾镇没有封路（第{k + 1}次说明）。")
    clock = {"now": utcnow()}
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(round(seconds, 2))
        clock["now"] += dt.timedelta(seconds=seconds)

    deliver_publications(api_engine, sleep=sleep, now=lambda: clock["now"])
    assert robots.kinds("wx-1") == ["text", "image", "text", "image"]
    assert pauses == [round(60 / 19, 2)] * 3  # 19 a minute: never the 21st in a minute


def test_a_timeout_is_never_resent_by_itself(api_engine: Engine, robots: WeComRobots,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_NOTIFY_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    robots.slow, robots.slow_seconds = {KEY}, 2.0
    m = seed_matter(api_engine)
    pid = _publish(api_engine, m, [m.wechat_group])
    assert deliver_publications(api_engine).unknown == 1
    later = utcnow() + dt.timedelta(hours=2)
    deliver_publications(api_engine, now=lambda: later)
    assert robots.kinds("wx-1") == ["text"] and _status(api_engine, pid)["wx-1"] == ("unknown", 0)


def test_a_crash_between_text_and_card_never_repeats_the_text(api_engine: Engine, robots: WeComRobots,
                                                              fresh_db_url: str) -> None:
    m = seed_matter(api_engine)
    pid = _publish(api_engine, m, [m.wechat_group])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tests.publish.crash_sender", fresh_db_url, "2"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert robots.kinds("wx-1") == ["text", "image"]  # the card went out; the process died before noting it
    assert _status(api_engine, pid)["wx-1"] == ("sending", 1)
    later = utcnow() + dt.timedelta(seconds=CLAIM_SECONDS + 60)
    deliver_publications(api_engine, now=lambda: later)
    assert robots.kinds("wx-1") == ["text", "image"] and _status(api_engine, pid)["wx-1"] == ("unknown", 1)
    with session_scope(api_engine) as s:  # staff looked: no card in the group; send again
        target = s.scalar(select(PublicationTarget).where(PublicationTarget.publication_id == pid))
        assert target is not None and "文字已发出" in (target.last_error or "")
        publish.retry_target(s, pid, target.id, actor=_user(s, m.staff))
    # by the clock of the staff's retry, minutes later: the dead sender's turn on the robot has lapsed
    deliver_publications(api_engine, now=lambda: later)
    assert robots.kinds("wx-1") == ["text", "image", "image"]  # the text never twice
    assert _status(api_engine, pid)["wx-1"] == ("sent", 2)


def test_the_pace_holds_across_two_processes(api_engine: Engine, onebot: OneBotApi, fresh_db_url: str) -> None:
    """Two delivery processes at once (the API's send after approval and `yuqing run`'s job)
    share the bot's pace: the rate limit is in the database, not in either process."""
    m = seed_matter(api_engine)
    for groups in ([m.groups[0], m.groups[1]], [m.groups[2], m.other_group]):
        _publish(api_engine, m, groups)
    env = {**os.environ, "PYTHONPATH": str(REPO), "YUQING_PUBLISH_SEND_INTERVAL_SECONDS": "1.0"}
    code = ("import sys; from alerts.publish_delivery import deliver_publications; from core.db import make_engine; "
            "deliver_publications(make_engine(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_db_url], cwd=REPO, env=env) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    with onebot._lock:
        times = sorted(c["at"] for c in onebot.calls)
    assert len(times) == 4 and len(set(onebot.sent_to())) == 4  # every group once, by one process or the other
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the full pace between arrivals, though each process's first message leaves late (its first
    # connection and HTTP client): the pause counts from the end of the previous send. 5 ms for the
    # senders' wall clock against the bot's monotonic one.
    assert min(gaps) >= 1.0 - 0.005, gaps
