"""Titles a person would write, for a concern: an evening of complaints about prices pushed by a bot,
the real analysis (roles, incidents, hot topics) and evaluation, then the alert read through the API
and the digest printed by `yuqing digest`. The title is one of the complaints, cleaned of its
forwarding hooks, about 30 characters, never a 、-joined keyword list (SQLite, or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from alerts import evaluate as evaluation
from alerts.notify import NotifyConfig
from api import accounts
from core.db import session_scope
from core.settings import get_settings
from core.tables import Alert, AlertPost, Post, Topic, utcnow
from nlp.headline import clean_hooks, is_keyword_list
from nlp.pipeline import analyze
from yuqing.cli import app

pytestmark = pytest.mark.db

GROUPS = {
    "qh": ("20261206-qh@chatroom", "青禾镇生活圈"),
    "dw": ("20261206-dw@chatroom", "东湾村村民群"),
    "ls": ("20261206-ls@chatroom", "柳树村村民群"),
}
COMPLAINTS = [  # (group, minute, text): one concern, said many ways, some with hooks
    ("dw", 0, "转发：青禾镇超市的菜太贵了，青菜八块一斤，有没有人管管"),
    ("qh", 4, "青禾镇超市的菜价太贵了，老人都买不起菜，希望镇里管一管"),
    ("ls", 6, "超市菜价太贵了，青菜八块一斤，能不能管管"),
    ("dw", 9, "青禾镇超市菜太贵了，一家人一天菜钱多了几十块，谁来管一下"),
    ("qh", 12, "紧急扩散！青禾镇超市菜价太贵，有没有人管管"),
    ("ls", 15, "超市的菜太贵了，我们村老人都吃不起菜了，能不能管管"),
    ("dw", 18, "青禾镇超市青菜八块一斤，太贵了，什么时候才能降下来"),
    ("qh", 21, "菜价太贵了，超市青菜八块一斤，希望有关部门管一管"),
    ("ls", 24, "速看：青禾镇超市菜太贵了，买菜前先问问价"),
    ("dw", 27, "今天去超市，菜太贵了，青菜八块一斤，有没有人管管"),
    ("qh", 30, "青禾镇超市菜价太贵的事，给镇里反映了吗？"),
    ("ls", 33, "超市菜价太贵了，没法过了，希望镇里管管"),
]
HOOKS = ("转发", "紧急扩散", "速看", "扩散")


@pytest.fixture(scope="module")
def rumor_model() -> Any:
    from nlp.classifier import RumorModel

    return RumorModel.load()


def _push(client: TestClient, headers: dict[str, str], start: dt.datetime) -> None:
    by_group: dict[str, list[dict[str, Any]]] = {}
    for n, (group, minute, text) in enumerate(COMPLAINTS, start=1):
        by_group.setdefault(group, []).append({
            "id": f"c{n}", "time": (start + dt.timedelta(minutes=minute)).isoformat(),
            "sender": f"村民{n % 5}", "sender_id": f"wxid_c{n % 5}", "text": text})
    for group, messages in by_group.items():
        external_id, name = GROUPS[group]
        r = client.post("/api/v1/ingest/messages", headers=headers, json={
            "group": {"platform": "wechat", "external_id": external_id, "name": name}, "messages": messages})
        assert r.status_code == 200 and not r.json()["rejected"], r.text


def _is_a_complaint_headline(title: str) -> None:
    cleaned = [clean_hooks(text) for _, _, text in COMPLAINTS]
    assert title and not is_keyword_list(title), title
    assert not any(h in title for h in HOOKS), title
    assert len(title) <= 32, title
    # a sentence someone wrote: the start of one of the complaints (cut at a clause, maybe "…")
    assert any(c.startswith(title.rstrip("…")) for c in cleaned), title


def _an_evening_within_one_local_day() -> tuple[dt.datetime, str]:
    """Two hours ago, moved one hour earlier when the office's midnight falls inside the 40 minutes
    (CI runs at any hour), and the office's date of that evening for `yuqing digest --date`."""
    zone = ZoneInfo(get_settings().timezone)
    start = utcnow() - dt.timedelta(hours=2)
    if start.astimezone(zone).date() != (start + dt.timedelta(minutes=40)).astimezone(zone).date():
        start -= dt.timedelta(hours=1)
    return start, start.astimezone(zone).date().isoformat()


def test_a_concern_is_titled_by_a_complaint_in_the_api_and_the_digest(
    api_client: TestClient, api_engine: Engine, rumor_model: Any, make_user
) -> None:
    with session_scope(api_engine) as s:
        owner = accounts.create_user(s, username="bot-owner", role="staff")
        bot = {"Authorization": f"Bearer {accounts.create_token(s, owner, 'bot', kind='bot')}"}
    start, day = _an_evening_within_one_local_day()
    _push(api_client, bot, start)
    session = Session(api_engine, expire_on_commit=False)
    try:
        analyze(session, model=rumor_model, workers=0, now=start + dt.timedelta(minutes=40))
        evaluation.evaluate(session, now=start + dt.timedelta(minutes=40), notify_config=NotifyConfig())
        session.commit()
    finally:
        session.close()

    viewer = make_user("viewer")
    with session_scope(api_engine) as s:
        ids = list(s.scalars(select(Post.id).where(Post.raw_text.in_([t for _, _, t in COMPLAINTS]))))
        alert_ids = set(s.scalars(select(AlertPost.alert_id).where(AlertPost.post_id.in_(ids))))
        labels = list(s.scalars(select(Topic.label).join(Post, Post.topic_id == Topic.id)
                                .where(Post.id.in_(ids)).distinct()))
        kinds = {a.id: a.kind for a in s.scalars(select(Alert).where(Alert.id.in_(alert_ids)))}
    assert alert_ids, "the complaints raised no alert"
    for alert_id in alert_ids:
        detail = api_client.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()
        _is_a_complaint_headline(detail["title"])
        draft = detail["suggested_response"]
        assert "“" + detail["title"].rstrip("…？?")[:8] in draft and not any(h in draft for h in HOOKS), draft
    assert "concern" in kinds.values(), kinds
    # the topic the complaints form is labelled by one of them too; its keywords stay its keywords
    for label in labels:
        _is_a_complaint_headline(label)

    printed = CliRunner().invoke(app, ["digest", "--date", day], env={"COLUMNS": "200"})
    assert printed.exit_code == 0, printed.output
    # the hot concern is listed under its sentence, with its keywords on a line of their own,
    # and the alert waiting for staff under its title
    assert labels and any(f"{label}（" in printed.output for label in labels), printed.output
    assert "话题关键词：" in printed.output
    # its handling is the alert of the matter the complaints form, not "no alert yet"
    assert "尚无预警和回应" not in printed.output and "处置：待处理" in printed.output, printed.output
    titles = [api_client.get(f"/api/v1/alerts/{i}", headers=viewer).json()["title"] for i in alert_ids]
    assert any(f"] {t}" in printed.output for t in titles), printed.output
    listed = api_client.get("/api/v1/alerts", headers=viewer).json()["items"]
    for item in listed:
        if item["id"] in alert_ids:
            _is_a_complaint_headline(item["title"])
