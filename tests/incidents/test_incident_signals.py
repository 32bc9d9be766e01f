"""The grouping's signals beyond shared words, through `analyze` on a real database: the claim
matcher for a claim retold in other words, a question naming a place, a sum of money that makes
another matter, posts that tell two matters apart, and the groups' doubt."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import Incident, Post
from nlp.pipeline import AnalysisResult, analyze
from tests.incidents.conftest import EVENING, msg

NOW = EVENING + dt.timedelta(hours=4)


def run(db: Session, model: Any, items: list[dict[str, Any]]) -> AnalysisResult:
    ingest_posts(db, items)
    db.commit()
    return analyze(db, model=model, workers=0, now=NOW)


def incident_of(db: Session, external_id: str) -> int | None:
    return db.scalar(select(Post.incident_id).where(Post.external_id == external_id))


def test_a_claim_retold_in_other_words_in_another_group_joins_its_matter(db: Session, rumor_model: Any) -> None:
    result = run(db, rumor_model, [
        msg("听说明天全镇停电一整天 变电站要检修", 1, "qh-1"),
        msg("明儿个全镇停一天电 变电站检修 都准备准备", 2, "dw-1", 6),
    ])
    first = incident_of(db, "m1")
    assert first is not None and incident_of(db, "m2") == first
    # the words alone do not place it: the claim matcher does
    assert result.counts.get("incident_paraphrase") == 1


def test_the_same_claim_about_two_villages_stays_apart(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("东湾村要停水三天 水厂的管子坏了", 1, "qh-1"),
        msg("听说柳树村要停水三天了 水厂管子坏了", 2, "dw-1", 6),
    ])
    a, b = incident_of(db, "m1"), incident_of(db, "m2")
    assert a is not None and b is not None and a != b


def test_a_new_matter_at_the_same_market_does_not_join_the_last_one_by_its_name(
        db: Session, rumor_model: Any) -> None:
    """A statement that shares only a place's name with the matter its group talked about an hour
    ago starts its own matter: the bigrams of "青禾菜市场" are one word in common, not four."""
    run(db, rumor_model, [
        msg("青禾菜市场的猪肉注水了 好多人买了", 1, "qh-1"),
        msg("听说青禾菜市场明年要整体拆掉搬到城南去 摊主们都在找新铺面 大家早做打算", 2, "qh-1", 40),
    ])
    pork, moving = incident_of(db, "m1"), incident_of(db, "m2")
    assert pork is not None and moving is not None and moving != pork



def test_a_refutation_citing_an_office_as_its_source_joins_the_rumor_it_denies(db: Session, rumor_model: Any) -> None:
    """"问了镇政府" says where the denial came from: the office is no other place than the rumor's
    market and school, so the refutation joins the rumor (and counts as the groups' doubt)."""
    run(db, rumor_model, [
        msg("大家当心 青禾菜市场门口有辆白色面包车 车里两个男的专门盯小孩 青禾小学放学的时候也停在那", 1, "qh-1"),
        msg("我打电话问了镇政府的人 菜市场门口那辆白色面包车是收旧家具的 根本没有盯小孩这回事 别再转了", 2, "qh-1", 20),
    ])
    rumor, denial = incident_of(db, "m1"), incident_of(db, "m2")
    assert rumor is not None and denial == rumor



def test_a_line_naming_where_the_word_came_from_carries_the_matter_on(db: Session, rumor_model: Any) -> None:
    """"菜市场卖菜的王姐说的" answers "你听谁说的": the market is where the word was heard, not
    another place than the village the claim is about."""
    run(db, rumor_model, [
        msg("听说东湾村那个砖厂老板跑路了 欠的工钱都不给了", 1, "qh-1"),
        msg("啥时候的事 你听谁说的", 2, "qh-1", 1),
        msg("菜市场卖菜的王姐说的 厂门都锁了", 3, "qh-1", 2),
    ])
    claim = incident_of(db, "m1")
    assert claim is not None and incident_of(db, "m3") == claim



def test_complaints_about_one_street_in_two_groups_are_one_concern(db: Session, rumor_model: Any) -> None:
    """A street or landmark has few matters at a time, unlike a village: sharing one binds more
    than sharing a village's name, so the same grievance told apart in two groups is one concern."""
    run(db, rumor_model, [
        msg("新华路口那个大坑又积水了 电动车都过不去 反映了好几次也没人来填", 1, "qh-1"),
        msg("新华路那个坑到底有没有人管 昨晚我家老头骑电动车差点摔进去", 2, "dw-1", 40),
    ])
    first = incident_of(db, "m1")
    assert first is not None and incident_of(db, "m2") == first



def test_the_same_kind_of_event_at_one_village_in_one_evening_is_one_matter(db: Session, rumor_model: Any) -> None:
    """Two groups complain about 东湾's garbage in other words: one concern. Another village's
    garbage, and another kind of event at 东湾 (a power cut), are other matters."""
    result = run(db, rumor_model, [
        msg("东湾村的垃圾桶满出来一个多星期了 没人来拉 臭死了", 1, "qh-1"),
        msg("东湾的垃圾到底有没有人管 风一刮都吹到路上了", 2, "dw-1", 50),
        msg("柳树村的垃圾站也满了 一股味", 3, "dw-1", 60),
        msg("东湾村今晚停电了 说是线路检修", 4, "qh-1", 70),
    ])
    garbage = incident_of(db, "m1")
    assert garbage is not None and incident_of(db, "m2") == garbage
    assert result.counts.get("incident_event") == 1  # the words alone did not place it
    assert incident_of(db, "m3") not in (None, garbage) and incident_of(db, "m4") not in (None, garbage)



def test_another_kind_of_event_on_the_same_street_is_another_matter(db: Session, rumor_model: Any) -> None:
    """The street binds a pothole complaint to the next pothole complaint, not to a stabbing
    rumor on the same street that happens to share a few words."""
    run(db, rumor_model, [
        msg("新华路口那个大坑又积水了 电动车都过不去 反映了好几次也没人来填", 1, "qh-1"),
        msg("新华路那个路口有人骑电动车被人持刀砍了 流了好多血 大家晚上别出门", 2, "dw-1", 40),
    ])
    pothole, stabbing = incident_of(db, "m1"), incident_of(db, "m2")
    assert pothole is not None and stabbing is not None and stabbing != pothole



def test_a_matter_retold_with_other_surroundings_is_one_matter(db: Session, rumor_model: Any) -> None:
    """Two places in common and one more on each side: the same leak told with the villages
    around it, not two places' matters (one place each would be: see the two villages above)."""
    run(db, rumor_model, [
        msg("东湾村化工厂下午泄漏了 柳树村和新华路那边都闻到了 味道很冲", 1, "qh-1"),
        msg("紧急扩散 东湾村化工厂漏气 柳树村石桥村一带的今晚千万别开窗", 2, "dw-1", 30),
    ])
    first = incident_of(db, "m1")
    assert first is not None and incident_of(db, "m2") == first


def test_a_retelling_at_the_same_landmark_with_another_hospital_is_one_matter(db: Session, rumor_model: Any) -> None:
    """The same kind of event at the same school: where the children were taken (the clinic, a
    village health room) grows as the rumor spreads, and does not make it another matter. An
    office both name (the 供电所 of two power cuts) is not such a landmark: see the two villages."""
    run(db, rumor_model, [
        msg("青禾小学食堂的辣条有问题 好几个学生吃了中毒 都拉到镇卫生院了", 1, "qh-1"),
        msg("青禾小学十几个学生吃辣条中毒了 东湾的几个送到东湾村卫生室了 千万别让小孩吃辣条", 2, "dw-1", 40),
    ])
    first = incident_of(db, "m1")
    assert first is not None and incident_of(db, "m2") == first


def test_a_retelling_whose_rarest_words_are_everyday_ones_finds_its_matter(db: Session, rumor_model: Any) -> None:
    """A matter's own words stop being rare as it spreads, so a retelling's rarest words may be
    the everyday ones around them (千万, 直接, 反而): before it founds a matter of its own, a
    statement looks again through more of its words."""
    run(db, rumor_model, [
        msg("自来水厂为了消毒 往水里加大量的氯 会生成三氯甲烷 是一级致癌物 烧开也没用 赶紧装净水器", 1, "qh-1"),
        msg("自来水会生成三氯甲烷 烧开也没用 真的假的", 2, "qh-1", 2),
        msg("三氯甲烷会致癌 就是烧开也没用 赶紧装净水器吧", 3, "dw-1", 5),
        msg("自来水里加大量的氯 是真的吗 要不要赶紧装净水器", 4, "lsc-1", 9),
        # the retelling's everyday words, each said once in chatter
        msg("出门千万不能忘带钥匙 上次直接锁外面了", 5, "qh-1", 30),
        msg("天冷了吃火锅反而更舒服", 6, "dw-1", 35),
        msg("家人们晚安 早点休息", 7, "lsc-1", 40),
        msg("小区门口新开了一家水果店 能不能直接送货上门", 8, "dw-1", 50),
        msg("家人们千万不能直接喝 烧开反而更毒 自来水里加大量的氯生成三氯甲烷 赶紧装净水器", 9, "xh-1", 150),
    ])
    water = incident_of(db, "m1")
    assert water is not None and incident_of(db, "m9") == water


def test_calling_the_group_the_same_way_ties_no_two_matters(db: Session, rumor_model: Any) -> None:
    """"家人们" opens many lines of a chat and says nothing of any matter: a school closing after a
    rumor of a death at the vocational school is a matter of its own."""
    run(db, rumor_model, [
        msg("家人们谁懂啊 职校那边有人跳楼了 救护车都来了", 1, "qh-1"),
        msg("家人们！！！初二停课一周！！！", 2, "qh-1", 12),
    ])
    jump = incident_of(db, "m1")
    assert jump is not None and incident_of(db, "m2") != jump


def test_a_question_naming_a_place_asks_about_its_matter_of_the_hour(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("我跟你们说 东湾村后山下来狼了 昨天把放羊的老吴胳膊咬了 晚上都别上山", 1, "qh-1"),
        msg("东湾村真有狼啊 我家羊还在坡上呢", 2, "dw-1", 4),
        msg("东湾村狼的事有人知道不", 3, "lsc-1", 80),  # more than an hour later: its own
    ])
    wolf = incident_of(db, "m1")
    assert wolf is not None and incident_of(db, "m2") == wolf
    assert incident_of(db, "m3") != wolf


def test_a_long_question_naming_the_place_of_a_matter_is_placed_by_its_own_words(db: Session, rumor_model: Any) -> None:
    """A question that says what it asks about at length is not about whatever happened at the place
    it names that hour: the rumor of the village school closing, asked about at 东湾村, is not the
    burst water main there."""
    run(db, rumor_model, [
        msg("东湾村自来水管爆了 整个村停水 路上全是水", 1, "qh-1"),
        msg("家长们有个事问问 我听隔壁班家长说明年东湾村的村小要撤了 孩子都要去镇上读书 是真的吗", 2, "dw-1", 20),
        msg("东湾村水管的事有人知道不", 3, "lsc-1", 30),
    ])
    burst = incident_of(db, "m1")
    assert burst is not None and incident_of(db, "m2") != burst
    assert incident_of(db, "m3") == burst  # a short question naming the place still asks about its matter


def test_a_fee_is_another_matter_than_a_free_notice_and_telling_them_apart_ties_nothing(
        db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("【通知】青禾燃气公司将于12月5日至12月20日对幸福小区居民开展免费入户燃气安全检查，检查人员佩戴工作证，"
            "不收取任何费用", 1, "qh-1"),
        msg("青禾燃气公司紧急通知：所有用户必须在12月10日前更换新型燃气报警器，每户收费200元，工作人员上门安装，"
            "拒不更换的停气", 2, "dw-1", 6),
        msg("不是一回事！燃气公司的入户检查是免费的，不强制更换报警器，收费换报警器的是骗子", 3, "lsc-1", 20),
    ])
    notice, scam = incident_of(db, "m1"), incident_of(db, "m2")
    assert notice is not None and scam is not None and notice != scam
    db.expire_all()
    assert {i.status for i in db.scalars(select(Incident).where(Incident.id.in_([notice, scam])))} == {"active"}


def test_claims_asked_about_in_several_groups_are_a_rumor(db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [msg("东湾村后山下来狼了 把放羊的老吴胳膊咬了", 1, "qh-1")])
    wolf = incident_of(db, "m1")
    assert wolf is not None
    first = db.get(Incident, wolf)
    assert first is not None and first.kind != "rumor", "precondition: the claim alone reads plain"
    run(db, rumor_model, [
        msg("东湾村后山真的有狼吗", 2, "dw-1", 3),
        msg("东湾村有狼是真的吗 谁看见了", 3, "lsc-1", 5),
        msg("东湾村后山狼咬人的事有人知道吗", 4, "qh-2", 7),
        msg("东湾村后山哪来的狼 别瞎传了", 5, "dw-1", 9),
    ])
    db.expire_all()
    inc = db.get(Incident, wolf)
    assert inc is not None
    doubted = inc.role_counts.get("question", 0) + inc.role_counts.get("refutation", 0)
    assert doubted >= 3, "precondition: the groups ask and correct"
    assert inc.kind == "rumor"


def test_a_claim_that_asks_does_not_title_its_matter() -> None:
    from nlp.incident_stats import IncidentStats, Member
    from nlp.incident_text import PostFacts, anchors_of

    s = IncidentStats()
    lines = [("听说梅村的井水有砷，我们村的井水没事吧", 1), ("梅村的井水查出来砷超标了 千万别喝", 2)]
    for text, n in lines:  # the asking one first: it would be the representative by time
        s.add(Member(n, NOW + dt.timedelta(minutes=n), 1, None, "claim", 0.2, None, None, None, [], True,
                     PostFacts("claim", 0.9, anchors_of(text), False, False), text, 0.2))
    assert s.rep is not None and s.rep[1] == 2


def test_chatter_right_after_a_matter_in_its_group_is_part_of_it_and_passes_nothing_on(
        db: Session, rumor_model: Any) -> None:
    run(db, rumor_model, [
        msg("东湾村的自来水被化工厂污染了 千万别喝 赶紧告诉家里人", 1, "qh-1"),
        msg("我也是听人家讲的 对不起大家", 2, "qh-1", 1),  # the next message: part of the matter
        msg("谁家有梯子借用一下", 3, "qh-1", 1.5),  # after that chatter line: nothing to do with it
    ])
    water = incident_of(db, "m1")
    roles = [db.scalar(select(Post.role).where(Post.external_id == f"m{n}")) for n in (2, 3)]
    assert water is not None and roles == ["other", "other"], "precondition: two chatter lines"
    assert incident_of(db, "m2") == water
    assert incident_of(db, "m3") is None


def test_a_matter_whose_only_claim_asks_is_titled_by_a_line_that_states_it() -> None:
    from nlp.incident_stats import IncidentStats, Member
    from nlp.incident_text import PostFacts, anchors_of

    s = IncidentStats()
    lines = [("claim", "听说梅村的井水有砷，我们村的井水没事吧", 1), ("question", "梅村井水有砷是真的吗", 2),
             ("refutation", "水站刚测过了 梅村井水没有砷 别信", 3)]
    for role, text, n in lines:
        s.add(Member(n, NOW + dt.timedelta(minutes=n), 1, None, role, 0.2, None, None, None, [], True,
                     PostFacts(role, 0.9, anchors_of(text), False, False), text, 0.2))
    assert s.rep is not None and s.rep[1] == 3
