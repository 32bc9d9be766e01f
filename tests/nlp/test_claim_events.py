"""Event families: one event in other (regional) words is one family; another event is another."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.claim_events import event_families, load_event_families
from nlp.claim_words import canonical_key
from nlp.claims import FEATURES, claim_key, load_claim_matcher
from nlp.normalize import normalize


def fam(text: str) -> frozenset[str]:
    return event_families(canonical_key(claim_key(normalize(text))))


# Our own examples (not the benchmarks'): one event, said the ways people say it.
@pytest.mark.parametrize(
    ("family", "texts"),
    [
        ("water_cut", ["南坪村又停水了", "南坪村莫得水了，咋整", "南坪村断水两天了", "南坪村停了一天水"]),
        ("power_cut", ["柳树村今晚停电", "柳树村断了电，一片黑"]),
        ("death", ["河里淹死了一个人", "有个老人去世了", "出人命了"]),
        ("missing_abduction", ["菜市场有人贩子抢孩子", "一个小孩走失了"]),
        ("price_rise", ["猪肉又涨价了", "燃气费上调了"]),
        # grievances: what a concern is about
        ("garbage", ["下坝的垃圾桶满出来了", "垃圾一个礼拜没人拉"]),
        ("streetlight", ["工业大道的路灯坏了一个月", "晚上黑灯瞎火的"]),
        ("medicine_shortage", ["卫生院又没药了", "降压药配不到"]),
    ],
)
def test_one_event_in_other_words_is_one_family(family: str, texts: list[str]) -> None:
    for text in texts:
        assert family in fam(text), (text, fam(text))


def test_another_event_at_the_same_place_is_another_family() -> None:
    polluted, notice = fam("南坪村的井水被养猪场污染了，不能喝"), fam("南坪村明天停水检修管道")
    assert polluted and notice and not polluted & notice
    # a retelling that mentions both events still shares the claim's
    assert fam("南坪村又停水了，听说水被污染了") & polluted
    # a thing is not an event: the lorries at the chemical park are no pollution
    assert "pollution" not in fam("化工园工地的渣土车半夜还在跑") and "pollution" in fam("化工厂偷排废水")


def test_every_line_of_the_file_is_a_family(tmp_path: Path) -> None:
    names = [name for name, _ in load_event_families()]
    assert len(names) == len(set(names)) >= 30
    bad = tmp_path / "events.txt"
    bad.write_text("water_cut 停水 断水\n", encoding="utf-8")
    with pytest.raises(ValueError, match="name: spelling"):
        load_event_families(str(bad))


def test_the_matcher_reads_the_family_columns() -> None:
    cm = load_claim_matcher()
    a, b, c = (cm.doc(normalize(t)) for t in ("南坪村停水了", "南坪村莫得水了", "南坪村停电了"))
    row = dict(zip(FEATURES, cm.featurizer.pair_features(a, b), strict=True))
    assert row["family_agree"] == 1.0 and row["family_disagree"] == 0.0
    row = dict(zip(FEATURES, cm.featurizer.pair_features(a, c), strict=True))
    assert row["family_disagree"] == 1.0 and row["family_cover_small"] == 0.0
