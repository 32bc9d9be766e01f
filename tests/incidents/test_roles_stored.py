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


def test_a_line_that_takes_up_a_complaint_complains_and_the_same_line_after_chatter_does_not(
        db: Session, rumor_model: Any) -> None:
    """The conversation through ingest and analyze: "三号楼一样 冰凉" right after a complaint about
    the heating of 三号楼 in the same group takes up its words and complains; posted after
    chatter in another group it is chatter."""
    ingest_posts(db, [
        msg("新区三号楼暖气到现在还是凉的 屋里才十三度", 1, "qh-7", 0),
        msg("三号楼一样 冰凉", 2, "qh-7", 1),
        msg("今晚谁去打球", 3, "qh-8", 0),
        msg("三号楼一样 冰凉", 4, "qh-8", 1),
    ])
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=EVENING + dt.timedelta(hours=2))
    db.expire_all()
    roles = dict(db.execute(select(Post.external_id, Post.role)).tuples().all())
    assert roles["m1"] == "complaint"
    assert roles["m2"] == "complaint"
    assert roles["m4"] == "other"


def test_a_quoted_reply_reads_the_role_of_the_message_it_quotes(db: Session, rumor_model: Any) -> None:
    """A bare "好几个" quoting a claim made forty minutes earlier (beyond the conversation's window)
    reacts to it; the same words quoting chatter are chatter. The claim is analysed in an earlier
    run than the replies: its stored role reaches them (one query per batch)."""
    ingest_posts(db, [msg("听说镇小食堂的饭有问题 好几个孩子吐了", 1, "qh-7", 0),
                      msg("今晚谁去打球", 2, "qh-8", 0)])
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=EVENING + dt.timedelta(hours=1))
    ingest_posts(db, [msg("好几个", 3, "qh-7", 40, reply_to=1), msg("好几个", 4, "qh-8", 40, reply_to=2)])
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=EVENING + dt.timedelta(hours=2))
    db.expire_all()
    roles = dict(db.execute(select(Post.external_id, Post.role)).tuples().all())
    assert roles["m1"] == "claim"
    assert roles["m3"] == "reaction"
    assert roles["m4"] == "other"


def test_a_reply_in_the_same_batch_reads_its_parent_there(db: Session, rumor_model: Any) -> None:
    ingest_posts(db, [msg("听说镇小食堂的饭有问题 好几个孩子吐了", 1, "qh-7", 0), msg("今晚谁去打球", 2, "qh-8", 0),
                      msg("好几个", 3, "qh-7", 40, reply_to=1), msg("好几个", 4, "qh-8", 40, reply_to=2)])
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=EVENING + dt.timedelta(hours=2))
    db.expire_all()
    roles = dict(db.execute(select(Post.external_id, Post.role)).tuples().all())
    assert (roles["m3"], roles["m4"]) == ("reaction", "other")
