"""Post roles as `analyze` stores them (posts.role): the general forms of a question, a reaction and
chatter, on lines we wrote for this test (no scenario or research text)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import Post
from nlp.pipeline import analyze
from tests.incidents.conftest import EVENING, msg


def stored_roles(db: Session, model: Any, texts: list[str]) -> dict[str, str]:
    ingest_posts(db, [msg(t, i, "qh-7", i) for i, t in enumerate(texts, start=1)])
    db.commit()
    analyze(db, model=model, workers=0, now=EVENING + dt.timedelta(hours=2))
    db.expire_all()
    rows = db.execute(select(Post.raw_text, Post.role, Post.role_confidence)).all()
    assert all(r.role_confidence is not None and 0 <= r.role_confidence <= 1 for r in rows)
    return {r.raw_text: r.role for r in rows}


def test_tag_questions_verdicts_and_chatter_are_stored_with_their_roles(db: Session, rumor_model: Any) -> None:
    roles = stored_roles(db, rumor_model, [
        "听说燃气公司要挨家收两百块检查费，不交就停气",  # hearsay: a claim
        "上门检查不用交钱吧",  # a negated tag question (…不…吧) asks
        "造谣的就该抓起来",  # a verdict on whoever spreads it reacts; it denies nothing
        "那就周六再说吧",  # a suggestion ending in 吧 does not ask
        "收到",
    ])
    assert roles["听说燃气公司要挨家收两百块检查费，不交就停气"] == "claim"
    assert roles["上门检查不用交钱吧"] == "question"
    assert roles["造谣的就该抓起来"] == "reaction"
    assert roles["那就周六再说吧"] != "question"
    assert roles["收到"] == "other"


def test_reanalysing_keeps_the_stored_roles(db: Session, rumor_model: Any) -> None:
    texts = ["听说镇小要停课一周", "不会吧", "那不用去学校吧", "哈哈 周末快乐"]
    first = stored_roles(db, rumor_model, texts)
    db.execute(update(Post).values(analyzed_at=None))  # every post analysed again
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=EVENING + dt.timedelta(hours=2))
    db.expire_all()
    again = {r.raw_text: r.role for r in db.execute(select(Post.raw_text, Post.role))}
    assert again == first
