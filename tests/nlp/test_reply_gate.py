"""The automatic-reply gate (nlp.reply_gate) on pairs written for it: each names the one thing
that makes the tip another claim than the debunk's, and a restatement passes."""

from __future__ import annotations

import pytest

from nlp.normalize import normalize
from nlp.reply_gate import gate

CLAIM = "东湾村本周六停水一天，自来水厂检修管道，每户补贴20元"


def reasons(tip: str, claim: str = CLAIM, **kw: float) -> tuple[str, ...]:
    return gate(normalize(tip), normalize(claim), **kw).reasons


@pytest.mark.parametrize("tip", [
    "听说东湾村这周六要停一天水，自来水厂修管道，是真的吗",
    "周六东湾停水？每户还补贴二十块",
    "自来水厂检修管道，本周六东湾村停水一天，每户补贴20元，求证",
])
def test_a_restatement_passes(tip: str) -> None:
    assert reasons(tip) == ()


@pytest.mark.parametrize(("tip", "reason"), [
    ("柳树村本周六停水一天，自来水厂检修管道，每户补贴20元", "place"),
    ("东湾村本周六停水一天，自来水厂检修管道，每户补贴50元", "amount"),
    ("东湾村下周六停水一天，自来水厂检修管道，每户补贴20元", "date"),
    ("东湾村明天停水一天，自来水厂检修管道", "date"),
    ("东湾村本周六停电一天，自来水厂检修管道，每户补贴20元", "predicate"),
    ("东湾村本周六没有停水，自来水厂检修管道已经结束了", "denial"),
    ("东湾村本周六自来水厂开放参观，每户补贴20元", "event"),  # the place and the notice, not the outage
])
def test_one_difference_holds_the_tip_back(tip: str, reason: str) -> None:
    assert reason in reasons(tip)


def test_a_claim_naming_no_place_is_the_office_area_only() -> None:
    claim = "菜市场卖的大米是塑料做的，煮不烂"
    assert reasons("听说菜市场在卖塑料大米，煮不烂", claim) == ()
    assert "place" in reasons("柳树村菜市场卖的大米是塑料做的", claim)


def test_a_tip_two_debunks_fit_alike_waits_for_a_person() -> None:
    tip = "听说东湾村这周六要停一天水，自来水厂修管道，是真的吗"
    assert reasons(tip, score=0.97, rival_score=0.95, margin=0.05) == ("margin",)
    assert reasons(tip, score=0.97, rival_score=0.5, margin=0.05) == ()


def test_asking_forms_are_no_denial() -> None:
    assert reasons("东湾村是不是本周六停水一天？有没有官方说法，每户补贴20元") == ()


def test_a_tip_naming_whom_it_was_done_to_but_not_the_doer_is_another_event() -> None:
    claim = "红旗小学一个老师把学生打进了医院"
    assert reasons("听说红旗小学有老师打学生，打进医院了", claim) == ()
    assert reasons("红旗小学两个学生打架，一个被打进了医院", claim) == ("actor",)
    # two characters before "把" that are no person are no doer
    assert reasons("听说有人偷了钱，钱被追回", "小偷已经把钱还回去了") == ()


def test_one_of_the_claims_events_is_enough() -> None:
    claim = "松江镇要把狗都打死，养狗的人家罚款500元"
    assert reasons("听说松江镇养狗的要罚500元，是真的吗", claim) == ()
    assert "event" in reasons("松江镇养狗的人家要打疫苗，是真的吗", claim)
