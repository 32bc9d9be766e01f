"""What ties a post to its matter when the words alone do not, through `analyze` on a real database:
the conversation right after a matter, the rumor a refutation quotes, and a later post that shows
two open incidents are one matter (they merge; two villages never do)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.tables import DebunkMatch, Incident, IncidentConstraint, Post
from nlp.pipeline import analyze
from tests.incidents.conftest import msg
from tests.incidents.test_incident_stage import NOW, incident_of, post_of, run, snapshot

KINDER_QUESTION = msg("各位家长 听说幼儿园中午饭有问题 好多孩子拉肚子住院了 真的吗？？", 1, "qh-1", 0)
KINDER_CLAIM = msg("转发：青禾镇中心幼儿园食物中毒 二十多个娃送到县医院抢救 家长快去", 2, "qh-2", 2)
KINDER_LINK = msg("幼儿园中午饭有问题 二十多个孩子食物中毒拉肚子 送到县医院住院了 家长们注意", 3, "qh-3", 30)


def test_a_short_statement_right_after_a_matter_carries_it_on(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("出大事了 东湾村后头老杨家死了人 说是得了禽流感 家里鸡全死了 镇上要来封村了", 1, "dw-1", 0),
        msg("我亲眼看见救护车拉走的", 2, "dw-1", 1),  # no word in common, a minute later
        msg("柳树村今晚8点停电检修", 3, "dw-1", 2),  # names another village: another matter
        msg("刚才路口看见一辆车开过去了", 4, "qh-5", 2),  # said in another group: not that conversation
    ])
    rumor = incident_of(db, "m1")
    assert rumor is not None
    assert post_of(db, "m2").role == "claim", "precondition: the role model calls this line a claim"
    assert incident_of(db, "m2") == rumor
    assert incident_of(db, "m3") != rumor
    assert incident_of(db, "m4") != rumor


def test_a_refutation_joins_the_rumor_it_quotes(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("下个月盐和大米都要大涨价 涨一倍 老街超市已经被抢空了 赶紧去囤", 1, "qh-1", 0),
        msg("青禾镇关于新街道路改造施工的通告：12月5日起新街半幅封闭施工，大车请绕行环镇路", 2, "qh-2", 10),
        # Most of its words are about prices in general and the roadworks; the quote is the rumor.
        msg("【提醒】近日有传言称“盐和大米将大幅涨价”，经核实，我镇货源充足，价格平稳，新街施工期间超市照常营业，请勿抢购。",
            3, "qh-3", 60),
    ])
    rumor, notice = incident_of(db, "m1"), incident_of(db, "m2")
    assert rumor is not None and notice is not None and rumor != notice
    assert incident_of(db, "m3") == rumor


def test_a_post_that_fits_two_open_incidents_merges_them(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [KINDER_QUESTION, KINDER_CLAIM])
    first, second = incident_of(db, "m1"), incident_of(db, "m2")
    assert first is not None and second is not None and first != second, "precondition: two incidents"
    run(db, rumor_model, [KINDER_LINK])
    db.expire_all()
    kept = incident_of(db, "m1")
    assert incident_of(db, "m2") == kept and incident_of(db, "m3") == kept
    gone = db.get(Incident, second if kept == first else first)
    assert gone is not None and gone.status == "merged" and gone.merged_into_id == kept and gone.post_count == 0
    inc = db.get(Incident, kept)
    assert inc is not None and inc.status == "active" and inc.post_count == 3 and inc.group_count == 3
    # Re-running analyze changes nothing; from scratch, the same matter and stats.
    before = snapshot(db)
    run(db, rumor_model, [])
    assert snapshot(db) == before
    db.execute(update(Post).values(analyzed_at=None))
    db.commit()
    run(db, rumor_model, [])
    after = snapshot(db)
    assert {p[1] for p in after["posts"]} == {kept}
    assert after["incidents"][kept]["post_count"] == 3


def test_a_post_naming_two_villages_merges_nothing(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("东湾村的自来水被化工厂污染了，千万别喝，水都是黄的", 1, "qh-1", 0),
        msg("柳树村的自来水被化工厂污染了，千万别喝，水都是黄的", 2, "qh-2", 2),
    ])
    run(db, rumor_model, [msg("东湾村和柳树村的自来水都被化工厂污染了，千万别喝，水都是黄的", 3, "qh-3", 30)])
    a, b = incident_of(db, "m1"), incident_of(db, "m2")
    assert a is not None and b is not None and a != b
    assert not db.scalars(select(Incident).where(Incident.status == "merged")).all()


def test_an_incident_staff_kept_apart_is_never_merged_by_the_grouping(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [KINDER_QUESTION, KINDER_CLAIM, msg("幼儿园的事谁知道 真的假的", 4, "qh-2", 3)])
    second = incident_of(db, "m2")
    assert second is not None and incident_of(db, "m1") != second
    # Staff decided a post of the second incident is not part of the first.
    db.add(IncidentConstraint(kind="cannot_link", post_id=post_of(db, "m1").id, other_post_id=post_of(db, "m4").id,
                              action="split"))
    db.commit()
    run(db, rumor_model, [KINDER_LINK])
    assert incident_of(db, "m1") != incident_of(db, "m2")
    assert not db.scalars(select(Incident).where(Incident.status == "merged")).all()


def test_asking_whether_it_is_true_names_no_matter(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("听说农商银行资金链断了要倒闭 存的钱可能取不出来了 赶紧去取钱", 1, "qh-1", 0),
        msg("真的假的", 2, "qh-1", 1),  # right after the rumor in its group: part of it
        msg("真的假的", 3, "qh-7", 20),  # another group, nothing said there: the words name no matter
    ])
    bank = incident_of(db, "m1")
    assert bank is not None and incident_of(db, "m2") == bank
    assert incident_of(db, "m3") is None


def test_a_refutation_quoting_one_part_and_naming_the_other_ties_them(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("出大事了 东湾村后头老杨家死了人 说是得了禽流感 家里鸡全死了 镇上要来封村了 大家别出门", 1, "dw-1", 0),
        # more than an hour later: a question naming the village no longer asks about "its" matter
        msg("听说东湾有人得禽流感死了？孩子还要不要去上学啊", 2, "qh-2", 70),
    ])
    first, second = incident_of(db, "m1"), incident_of(db, "m2")
    assert first is not None and second is not None and first != second, "precondition: two incidents"
    run(db, rumor_model, [
        # its quote is the question's wording; the rest names the claim's village and family
        msg("大家好，东湾村后头老杨家死了人是心脏病，家里鸡全死了是黄鼠狼咬的，镇上没要来封村。请大家不要转发“东湾有人得禽流感"
            "死了，孩子不要去上学”的消息，这是谣言！", 3, "dw-1", 130),
    ])
    db.expire_all()
    kept = incident_of(db, "m1")
    assert incident_of(db, "m2") == kept and incident_of(db, "m3") == kept


def test_a_rumor_is_titled_by_the_claim_that_says_it(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("东湾村明天开始停电三天是真的吗 谁知道", 1, "dw-1", 0),
        msg("我们单位群里都在传", 2, "dw-1", 1),
        msg("东湾村明天开始停电 要停三天 作买卖的赶紧准备发电机", 3, "dw-1", 3),
    ])
    rumor = incident_of(db, "m1")
    assert rumor is not None and incident_of(db, "m2") == rumor and incident_of(db, "m3") == rumor, "precondition"
    assert (post_of(db, "m2").role, post_of(db, "m3").role) == ("claim", "claim"), "precondition: roles"
    inc = db.get(Incident, rumor)
    assert inc is not None and inc.representative_post_id == post_of(db, "m3").id
    assert inc.title == "东湾村明天开始停电，要停三天，作买卖的赶紧准备发电机"


def test_a_concern_is_titled_by_its_complaint(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("东湾村的垃圾桶已经满出来一个多星期了 没人来拉 臭死了", 2, "dw-1", 0),
        msg("打了 说转给镇里了", 1, "dw-1", 1),  # the model reads a report of what was done as a claim
        msg("东湾村垃圾堆成山了 一个多星期没人拉 谁管管", 3, "dw-1", 3),
        msg("+1 东湾村垃圾桶满出来好多天了 没人来拉", 4, "dw-1", 4),
    ])
    concern = incident_of(db, "m2")
    assert concern is not None and incident_of(db, "m1") == concern and incident_of(db, "m3") == concern
    assert post_of(db, "m1").role == "claim", "precondition: a claim inside the concern"
    inc = db.get(Incident, concern)
    assert inc is not None and inc.kind == "concern"
    rep = db.get(Post, inc.representative_post_id)
    assert rep is not None and rep.role == "complaint" and inc.title and inc.title.startswith("东湾村的垃圾桶")


def test_clauses_run_together_name_no_place() -> None:
    # The match key drops punctuation and spaces: "心脏病，镇卫生院" and "东湾没事 村支书" would
    # read as places ("脏病镇", "没事村") that make a matter's parts "name different places".
    from nlp.incident_text import anchors_of
    from nlp.normalize import normalize

    assert anchors_of(normalize("老杨家的事是心脏病，镇卫生院已经确认了")).places <= {"青禾镇卫生院", "青禾镇"}
    assert "没事村" not in anchors_of(normalize("东湾没事 村支书说了是谣言")).places
    assert "一倍老街超市" not in anchors_of(normalize("涨一倍 老街超市已经被抢空了")).names
    assert "东湾村" in anchors_of(normalize("东湾村的自来水被化工厂污染了")).places


# --------------------------------------------------------------------------- a matter linked to its debunk as a whole
KID_DEBUNK = ("石岭小学放学时有白色面包车在校门口拉走小孩",
              "经派出所民警现场核实，当日在石岭小学门口停放的白色面包车系校服厂家送货车辆，司机等候学校签收，"
              "未发生拉扯、拐带学生的情况，也没有学生走失。")
KID_EVENING: list[tuple[str, int, str, int, int | None]] = [
    ("石岭小学门口有人抢娃娃 看紧点", 1, "qh-1", 0, None),
    ("哪个班的娃 报警没有", 2, "qh-1", 1, None),
    ("家长群里都在说 石岭小学门口那辆白车是拐娃娃的", 3, "qh-2", 4, None),
    ("我孙女在石岭小学 真有人拉走小孩吗", 4, "qh-2", 5, None),
    ("派出所的人去看过了 那个白色面包车是校服厂家送货的 司机在等学校签收 没有拐带学生", 5, "qh-1", 20, 1),
]


def _kid_matter(db: Session, rumor_model: Any, school: str = "石岭小学", leave_out: int | None = None) -> int:
    run(db, rumor_model, [msg(t.replace("石岭小学", school), n, g, minute, reply_to=parent)
                          for t, n, g, minute, parent in KID_EVENING if n != leave_out])
    incident = incident_of(db, "m1")
    assert incident is not None
    assert {incident_of(db, f"m{n}") for n in range(2, 6) if n != leave_out} == {incident}
    return incident


def test_a_debunk_no_single_post_matches_links_the_matter_as_a_whole(db: Session, rumor_model: Any) -> None:
    """The office's refutation names the school, the white van, the pupils; no chat line says
    enough of it to match alone, the matter's lines together do. A debunk added while the matter
    is open reaches it at once."""
    from nlp.debunks import DebunkIn, create_debunk

    incident = _kid_matter(db, rumor_model)
    row = create_debunk(db, DebunkIn(claim=KID_DEBUNK[0], refutation=KID_DEBUNK[1], publisher="青禾镇派出所"))
    db.commit()
    inc = db.get(Incident, incident)
    assert inc is not None and inc.debunk_id == row.id
    methods = set(db.scalars(select(DebunkMatch.method).where(DebunkMatch.debunk_id == row.id)))
    assert methods == {"incident"}, db.execute(select(DebunkMatch.post_id, DebunkMatch.method)).all()
    analyze(db, model=rumor_model, workers=0, now=NOW + dt.timedelta(minutes=5))  # a recount keeps it
    db.expire_all()
    assert db.get(Incident, incident).debunk_id == row.id


def test_a_debunk_in_the_library_links_a_matter_formed_later(db: Session, rumor_model: Any) -> None:
    from nlp.debunks import DebunkIn, create_debunk

    row = create_debunk(db, DebunkIn(claim=KID_DEBUNK[0], refutation=KID_DEBUNK[1], publisher="青禾镇派出所"))
    db.commit()
    # Without the grandmother's question, which the claim matcher pairs with the debunk's claim alone.
    incident = _kid_matter(db, rumor_model, leave_out=4)
    inc = db.get(Incident, incident)
    assert inc is not None and inc.debunk_id == row.id and inc.kind == "rumor"
    methods = set(db.scalars(select(DebunkMatch.method).where(DebunkMatch.debunk_id == row.id)))
    assert methods == {"incident"}, db.execute(select(DebunkMatch.post_id, DebunkMatch.method)).all()


def test_a_matter_retelling_a_debunks_claim_links_however_long_its_refutation(db: Session, rumor_model: Any) -> None:
    """An office's refutation is long and in its own words ("经派出所调查核实，近期辖区未接到…"); the
    matter retells the claim ("工业大道…白色面包车…下夜班…女工") and shares little of the refutation.
    Measured against the claim alone, the matter holds most of it."""
    from nlp.debunks import DebunkIn, create_debunk

    run(db, rumor_model, [
        msg("转发：紧急提醒！工业大道最近有一辆白色面包车，专门在晚上十一点以后拉下夜班落单的女工，已经有两个女孩失踪，"
            "被拉去割肾！！女同胞下班千万别一个人走！！", 1, "qh-1"),
        msg("女生们注意：工业大道有面包车拉落单女工 听说已经有人不见了 下班结伴走", 2, "qh-1", 6, reply_to=1),
        msg("真的假的 我老婆就是上夜班的 工业大道那段路黑", 3, "qh-1", 8, reply_to=2),
    ])
    incident = incident_of(db, "m1")
    assert incident is not None and incident_of(db, "m2") == incident
    row = create_debunk(db, DebunkIn(
        claim="工业大道夜间有白色面包车掳走下夜班女工摘取器官",
        refutation="经青禾镇派出所调查核实，近期辖区未接到任何女性失踪报警，也未发生强行拉人上车事件。网传视频系"
                   "外省旧闻，与本地无关。请广大群众不信谣、不传谣，如发现可疑情况请及时拨打110报警。",
        publisher="青禾镇派出所"))
    db.commit()
    inc = db.get(Incident, incident)
    assert inc is not None and inc.debunk_id == row.id


def test_a_debunk_about_another_village_never_links_by_its_words(db: Session, rumor_model: Any) -> None:
    from nlp.debunks import DebunkIn, create_debunk

    incident = _kid_matter(db, rumor_model, school="东湾村小学")
    create_debunk(db, DebunkIn(claim=KID_DEBUNK[0].replace("石岭小学", "柳树村小学"),
                               refutation=KID_DEBUNK[1].replace("石岭小学", "柳树村小学"), publisher="青禾镇派出所"))
    db.commit()
    inc = db.get(Incident, incident)
    assert inc is not None and inc.debunk_id is None
