"""The incident stage through `analyze` on a real database: what joins a matter, what stays apart,
what the incident's stats and risk say, staff constraints, idempotence."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import Incident, IncidentConstraint, Post
from nlp.incidents import recompute_incidents
from nlp.pipeline import STAGES, analyze
from tests.incidents.conftest import EVENING, msg

NOW = EVENING + dt.timedelta(hours=4)
STAT_COLUMNS = ("kind", "title", "representative_post_id", "post_count", "group_count", "source_count",
                "role_counts", "hourly_counts", "spread", "max_rumor_probability", "risk", "debunk_id",
                "category", "places", "anchors")


def run(db: Session, model: Any, items: list[dict[str, Any]], now: dt.datetime = NOW) -> None:
    ingest_posts(db, items)
    db.commit()
    analyze(db, model=model, workers=0, now=now)


def incident_of(db: Session, external_id: str) -> int | None:
    return db.scalar(select(Post.incident_id).where(Post.external_id == external_id))


def post_of(db: Session, external_id: str) -> Post:
    post = db.scalar(select(Post).where(Post.external_id == external_id))
    assert post is not None
    return post


def snapshot(db: Session) -> dict[str, Any]:
    db.expire_all()
    posts = db.execute(select(Post.id, Post.incident_id, Post.role, Post.role_confidence).order_by(Post.id)).all()
    incidents = {i.id: {c: getattr(i, c) for c in STAT_COLUMNS} for i in db.scalars(select(Incident))}
    return {"posts": [tuple(p) for p in posts], "incidents": incidents}


def test_the_stage_runs_after_concerns_and_before_write() -> None:
    names = [s.name for s in STAGES]
    assert names.index("concerns") < names.index("incidents") < names.index("write")


def test_paraphrases_and_questions_across_groups_are_one_matter(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("中心小学甲流，全校停课两周", 1, "qh-1"),
        msg("听说中心小学因为甲流要停课两个星期，家长们注意", 2, "dw-1", 5),
        msg("中心小学甲流停课两周是真的吗？", 3, "lsc-1", 9),
        msg("东湾村今晚8点停电检修，请大家提前准备", 4, "dw-1", 12),
    ])
    first = incident_of(db, "m1")
    assert first is not None
    assert incident_of(db, "m2") == first and incident_of(db, "m3") == first
    assert incident_of(db, "m4") not in (None, first)
    inc = db.get(Incident, first)
    assert inc is not None
    assert inc.post_count == 3 and inc.group_count == 3 and inc.source_count == 0
    assert inc.spread and sum(inc.spread.values()) == 3
    assert inc.role_counts.get("question") == 1
    assert inc.title is not None and "中心小学" in inc.title and len(inc.title) <= 32
    assert "转" not in inc.title


def test_two_villages_stay_apart(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("东湾村的自来水被化工厂污染了，千万别喝", 1, "qh-1"),
        msg("柳树村的自来水被化工厂污染了，千万别喝", 2, "qh-2", 3),
    ])
    a, b = incident_of(db, "m1"), incident_of(db, "m2")
    assert a is not None and b is not None and a != b


def test_a_notice_stating_a_debunked_claim_is_a_claim_of_a_rumor_matter(db: Session, rumor_model: Any) -> None:
    """A fake notice (the rumor dressed as one) reads as a notice to the role model; stating a
    claim of the debunk library makes it a claim, and its matter a rumor. A true notice and a
    refutation stay what they are."""
    from nlp.debunks import DebunkIn, create_debunk

    create_debunk(db, DebunkIn(claim="燃气公司要求每户有偿更换燃气报警器，不换就停止供气",
                               refutation="燃气公司入户安全检查一律免费，不强制更换报警器。", publisher="燃气公司"))
    run(db, rumor_model, [
        msg("青禾燃气公司紧急通知：根据上级安全要求，所有用户必须在11月20日前更换新型燃气报警器，每户收费200元，"
            "不按时更换的将停止供气。", 1, "qh-1"),
        msg("【通知】青禾燃气公司将于11月15日至11月30日对东湾村片区开展免费入户安全检查，请居民配合。", 2, "dw-1", 30),
        msg("燃气公司辟谣了：入户检查是免费的，不强制更换报警器，收费换报警器的是骗子。", 3, "lsc-1", 60),
    ])
    fake, true_notice, refutation = post_of(db, "m1"), post_of(db, "m2"), post_of(db, "m3")
    assert (fake.role, true_notice.role, refutation.role) == ("claim", "notice", "refutation")
    inc = db.get(Incident, fake.incident_id)
    assert inc is not None and inc.kind == "rumor" and inc.debunk_id is not None


def test_a_question_right_after_a_claim_joins_it_and_alone_starts_nothing(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("听说东湾村明天开始停水三天，赶紧存水", 1, "dw-1"),
        msg("真的吗？", 2, "dw-1", 1),
        msg("真的吗？", 3, "qh-9", 1),  # another group, nothing said there: no matter to join
    ])
    claim = incident_of(db, "m1")
    assert claim is not None
    assert incident_of(db, "m2") == claim
    assert post_of(db, "m2").role == "question"
    assert incident_of(db, "m3") is None


def test_a_reply_joins_its_parents_incident(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("镇上超市的大米明天要涨价一倍，赶紧去囤", 1, "qh-1"),
        msg("今晚月亮好圆啊", 2, "qh-1", 20),
        msg("我看不一定吧，昨天去还是原价", 3, "qh-1", 45, reply_to=1),  # long after, and in other words
    ])
    claim = incident_of(db, "m1")
    assert claim is not None and incident_of(db, "m3") == claim


def test_chatter_starts_nothing_and_never_counts_in_reach_or_risk(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("听说中心小学甲流，全校停课两周", 1, "qh-1"),
        msg("收到", 2, "qh-1", 1),
        msg("哈哈哈哈", 3, "qh-1", 2),
        msg("晚安各位", 4, "qh-1", 3),
        msg("今晚谁家包饺子 我家白菜吃不完了 谁要来拿", 5, "qh-7", 4),
        msg("谁家有梯子借用一下 房顶灯泡坏了", 6, "qh-8", 30),
    ])
    for n in (2, 3, 4, 5, 6):
        post = post_of(db, f"m{n}")
        assert post.role == "other"
    for n in (2, 3, 4, 5, 6):  # too short, another group, or nothing to follow: no incident
        assert post_of(db, f"m{n}").incident_id is None
    inc = db.get(Incident, incident_of(db, "m1"))
    assert inc is not None and "other" not in inc.role_counts and inc.post_count == 1


def test_chatter_inside_a_conversation_is_counted_but_never_weighed(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("听说中心小学甲流，全校停课两周", 1, "qh-1"),
        msg("我等会去中心小学看看情况", 2, "qh-2", 1),
    ])
    run(db, rumor_model, [msg("我等会去中心小学看看情况", 3, "qh-1", 1),
                          msg("今晚吃饺子还是面条 大家说说", 4, "qh-1", 2)])
    assert post_of(db, "m4").incident_id is None  # next to a matter but about something else
    post = post_of(db, "m3")
    inc = db.get(Incident, incident_of(db, "m1"))
    assert inc is not None
    assert post.role == "other", "the role model calls this line chatter (precondition of the test)"
    assert post.incident_id == inc.id  # a minute after the rumor in its group: part of that conversation
    assert inc.role_counts.get("other") == 1 and inc.post_count == 2
    assert sum(inc.spread.values()) == 1 and sum(inc.hourly_counts.values()) == 1 and inc.group_count == 1
    assert post_of(db, "m2").incident_id is None  # said in another group: not that conversation


def test_a_refutation_joins_its_matter_but_never_raises_its_risk(db: Session, rumor_model: Any) -> None:
    # A claim that already reads as a rumor: a refutation adds nothing to its risk. (Where the model
    # reads the claims low, residents' corrections do count as their doubt of it, nlp.incident_stats
    # .doubt_of; an alert's severity never rises on refutations either way: tests/alerts
    # test_refutations_are_shown_but_never_raise_severity.)
    run(db, rumor_model, [
        msg("紧急扩散！中心小学甲流，全校停课两周，不转不是中国人", 1, "qh-1"),
        msg("中心小学停课两周是真的吗？", 2, "qh-2", 4),
    ])
    incident_id = incident_of(db, "m1")
    inc = db.get(Incident, incident_id)
    assert inc is not None and inc.risk is not None and inc.kind == "rumor"
    before = inc.risk
    run(db, rumor_model, [msg("经核实，中心小学停课两周的消息是谣言，学校正常上课，请勿相信", 3, "qh-3", 30)])
    assert post_of(db, "m3").role == "refutation"
    assert incident_of(db, "m3") == incident_id
    db.expire_all()
    inc = db.get(Incident, incident_id)
    assert inc is not None and inc.role_counts.get("refutation") == 1
    assert inc.risk is not None and inc.risk <= before
    assert any("辟谣" in note for note in inc.risk_parts["notes"])
    parts = {p["key"]: p for p in inc.risk_parts["parts"]}
    assert parts["claims"]["label"] and parts["reach"]["detail"]


def test_a_true_notice_spreading_is_a_notice(db: Session, rumor_model: Any) -> None:
    text = "青禾镇人民政府通知：因管网检修，12月8日8时至18时东湾村停水，请村民提前储水。"
    run(db, rumor_model, [msg(text, n, g, n) for n, g in ((1, "qh-1"), (2, "dw-1"), (3, "dw-2"))])
    inc = db.get(Incident, incident_of(db, "m1"))
    assert inc is not None
    assert inc.kind == "notice" and inc.group_count == 3 and inc.role_counts == {"notice": 3}
    assert inc.risk is not None and inc.risk < 0.1


def test_a_cannot_link_keeps_a_post_out(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [msg("中心小学甲流，全校停课两周", 1, "qh-1")])
    first = incident_of(db, "m1")
    ingest_posts(db, [msg("中心小学因为甲流停课两周了", 2, "qh-2", 10)])
    db.flush()
    db.add(IncidentConstraint(kind="cannot_link", post_id=post_of(db, "m2").id, other_post_id=post_of(db, "m1").id,
                              action="split"))
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=NOW)
    second = incident_of(db, "m2")
    assert first is not None and second is not None and second != first


def test_rerunning_analyze_changes_nothing_and_an_edited_post_is_regrouped(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("中心小学甲流，全校停课两周", 1, "qh-1"),
        msg("听说中心小学因为甲流要停课两个星期", 2, "qh-2", 5),
        msg("真的假的？", 3, "qh-2", 6),
        msg("药店买不到退烧药了，跑了三家都没有", 4, "qh-3", 8),
    ])
    before = snapshot(db)
    assert analyze(db, model=rumor_model, workers=0, now=NOW).posts == 0
    assert snapshot(db) == before
    # Analysed again from scratch (e.g. a new model): the same matters, the same stats.
    db.execute(update(Post).values(analyzed_at=None))
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=NOW)
    assert snapshot(db) == before
    # An edited message now says something else: it leaves the school matter.
    school = incident_of(db, "m1")
    ingest_posts(db, [msg("东湾村今晚8点停电检修，请大家提前准备好手电", 2, "qh-2", 5)])
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=NOW)
    assert incident_of(db, "m2") not in (None, school)
    db.expire_all()
    inc = db.get(Incident, school)
    assert inc is not None and inc.post_count == 2 and inc.group_count == 2


def test_recompute_incidents_matches_a_fresh_count(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("紧急扩散！中心小学甲流，全校停课两周", 1, "qh-1"),
        msg("中心小学甲流，全校停课两周", 2, "qh-2", 2),
        msg("真的吗？", 3, "qh-2", 3),
        msg("听说中心小学甲流停课两周，孩子在那上学的注意", 4, "web-forum", 6, channel="web"),
        msg("经核实，中心小学停课是谣言", 5, "qh-1", 50),
    ])
    before = snapshot(db)
    ids = list(before["incidents"])
    assert recompute_incidents(db, ids) == len(ids)
    db.commit()
    assert snapshot(db) == before
    inc = db.get(Incident, incident_of(db, "m1"))
    assert inc is not None and inc.group_count == 2 and inc.source_count == 1


@pytest.mark.parametrize("n_groups", [3])
def test_the_school_rumor_in_three_groups_is_one_incident(db: Session, rumor_model: Any, n_groups: int) -> None:
    # Users' example: posted in three groups, it was no alert at all; now it is one matter.
    run(db, rumor_model, [msg("中心小学甲流，全校停课两周", n, f"g{n}", n) for n in range(n_groups)])
    ids = {incident_of(db, f"m{n}") for n in range(n_groups)}
    assert len(ids) == 1 and None not in ids
    inc = db.get(Incident, ids.pop())
    assert inc is not None and inc.group_count == n_groups and inc.kind in ("rumor", "unknown")


def test_residents_tips_about_a_matter_raise_its_risk(db: Session, rumor_model: Any) -> None:
    """Tips to the office join the matter they ask about and weigh in its risk as strong questions."""
    from core.tips import TipIn, store_tip, tipline_group_id

    run(db, rumor_model, [
        msg("紧急扩散！中心小学甲流，全校停课两周，不转不是中国人", 1, "qh-1"),
        msg("中心小学甲流全校停课两周，家长们注意", 2, "dw-1", 3),
    ])
    incident_id = incident_of(db, "m1")
    inc = db.get(Incident, incident_id)
    assert inc is not None and inc.risk is not None
    before = inc.risk
    for k, text in enumerate(("听说中心小学甲流全校停课两周，是真的吗？", "中心小学真的要停课两周吗？孩子明天还去不去")):
        store_tip(db, TipIn(channel="web", message_id=f"tip-{k}", text=text,
                            received_at=EVENING + dt.timedelta(minutes=10 + k)))
    db.commit()
    analyze(db, model=rumor_model, workers=0, now=NOW)
    tips = list(db.scalars(select(Post.incident_id).where(Post.group_id == tipline_group_id(db))))
    assert tips == [incident_id, incident_id], tips
    db.expire_all()
    inc = db.get(Incident, incident_id)
    assert inc is not None and inc.risk is not None and inc.risk > before
    questions = {p["key"]: p for p in inc.risk_parts["parts"]}["questions"]
    assert "2 条群众举报线索" in questions["detail"], questions
    # the same two lines as group questions would weigh half as much
    assert questions["value"] >= min(1.0, (inc.role_counts.get("question", 0) + 2) / 5.0)
