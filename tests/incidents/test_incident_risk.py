"""The rumor risk of a matter from its stats (nlp.incident_stats): the groups' doubt of its claims
(enquiries and corrections) reads where the model scores chat claims low, a fragment gains nothing
from it, and a notice stays a notice unless residents contest it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from nlp.incident_stats import IncidentStats, Member, kind_of, risk_of
from nlp.incident_text import PostFacts, anchors_of, cue_flags

T0 = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)


def _stats(posts: Sequence[tuple[str, str, float | None]]) -> IncidentStats:
    """A matter of (role, text, raw model score) posts, one a minute in two groups."""
    s = IncidentStats()
    for n, (role, text, raw) in enumerate(posts):
        s.add(Member(n + 1, T0 + dt.timedelta(minutes=n), n % 2 + 1, None, role, raw, None, None, None,
                     [], True, PostFacts(role, 0.9, anchors_of(text), *cue_flags(text)), text, raw))
    return s


def _claims_part(s: IncidentStats) -> dict[str, Any]:
    return next(p for p in risk_of(s)[1]["parts"] if p["key"] == "claims")


CLAIMS = [("claim", "听说石桥村明天晚上开始停电要停三天", 0.12), ("claim", "石桥村明天起停三天电", 0.10)]


def test_the_groups_doubt_reads_the_claims_the_model_scores_low() -> None:
    quiet = _stats(CLAIMS)
    doubted = _stats(CLAIMS + [("question", "石桥村停三天电是真的吗", None)] * 3
                     + [("refutation", "没这回事，村里没接到通知", None)])
    assert _claims_part(quiet)["value"] < 0.2
    part = _claims_part(doubted)
    assert part["value"] == 0.75 and "3 次询问、1 条辟谣或澄清" in part["detail"]  # (3 + 1 - 1) / DOUBT_FULL
    assert risk_of(quiet)[0] < 0.4 <= risk_of(doubted)[0]  # the rules' min_risk line
    assert any("计入说法的可疑程度" in note for note in risk_of(doubted)[1]["notes"])


def test_a_fragment_with_one_question_gains_nothing_and_a_high_score_is_kept() -> None:
    fragment = _stats([CLAIMS[0], ("question", "真的假的", None)])
    assert _claims_part(fragment)["value"] == 0.12 and "质疑" not in _claims_part(fragment)["detail"]
    strong = _stats([("claim", "紧急扩散！中心小学甲流全校停课两周", 0.9)] + [("question", "真的吗", None)] * 3)
    assert _claims_part(strong)["value"] == 0.9  # the model's reading where it is the higher


def test_a_notice_stays_a_notice_unless_residents_contest_it() -> None:
    notice = "青禾镇人民政府通知：12月9日南坪村停电"
    retold = _stats([("notice", notice, None)] * 3 + [("claim", "听说南坪村9号要停一天电", 0.7)])
    assert kind_of(retold) == "notice"
    contested = _stats([("notice", notice, None)] * 2 + [("claim", "听说南坪村要停三天电", 0.3)] * 2
                       + [("refutation", "没这回事", None)] * 3)
    assert kind_of(contested) == "rumor"


def test_a_grievance_stays_a_concern_unless_its_claims_are_disputed() -> None:
    claim = ("claim", "学校流感疫苗每人要交280元 不打不准进校", 0.7)
    grievance = [("complaint", "又要交钱？这学期都交了好几回了", None)]
    asked = [("question", "有没有通知啊 我怎么没看到", None)] * 2
    assert kind_of(_stats([claim, *grievance, *asked])) == "concern"  # asked about, nobody says it is wrong
    corrected = [("refutation", "不收钱，学生接种免费，也不强制", None)] * 3
    assert kind_of(_stats([claim, *grievance, *asked, *corrected])) == "rumor"
    # One correction of a grievance ("已经在修了" read as a refutation) is not a dispute.
    pipes = [("complaint", "自来水又是黄的 放了十分钟还是黄", None)] * 2
    assert kind_of(_stats([("claim", "听说是水管老化要全换", 0.4), *pipes,
                           ("refutation", "不是水管的事", None)])) == "concern"
