"""Anchors: the specific things a claim names, and when two texts name different ones."""

from __future__ import annotations

import pickle

import pytest

from nlp.anchors import (
    AnchorExtractor,
    Anchors,
    anchor_overlap,
    anchors_conflict,
    extract_anchors,
    place_parents,
)
from nlp.concerns.places import Gazetteer, GazetteerSpec, PlaceSpec
from nlp.normalize import normalize


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    spec = GazetteerSpec(places=[
        PlaceSpec(name="青禾县", kind="county", local=False),
        PlaceSpec(name="青禾镇", kind="township", parent="青禾县", aliases=["镇上"]),
        PlaceSpec(name="东湾村", kind="village", parent="青禾镇", aliases=["东湾"]),
        PlaceSpec(name="柳树村", kind="village", parent="青禾镇"),
        PlaceSpec(name="石桥村", kind="village", parent="青禾镇", aliases=["石桥"]),
        PlaceSpec(name="青禾镇卫生院", kind="landmark", parent="青禾镇", aliases=["镇卫生院"]),
    ])
    return Gazetteer.from_spec(spec, "test")


@pytest.fixture(scope="module")
def ex(gaz: Gazetteer) -> AnchorExtractor:
    return AnchorExtractor(gaz)


def a(ex: AnchorExtractor, text: str) -> Anchors:
    return ex.extract(normalize(text))


def test_places_from_gazetteer_aliases_and_marks(ex: AnchorExtractor) -> None:
    assert a(ex, "东湾那边又停水了").places == {"东湾村"}
    assert a(ex, "石桥村又停水了，听说水被污染了").places == {"石桥村"}
    # A place mark the gazetteer does not know still counts: 大王庄村 is not in the table.
    assert "王庄村" in a(ex, "大王庄村出事了").places
    # Mentions of "the whole village" or "our town" name no particular place.
    assert a(ex, "全村的人都知道了").places == frozenset()
    # Everyday words ending in a suffix are not places (place_marks' exceptions).
    assert a(ex, "我刚去超市买菜").places == frozenset()
    assert a(ex, "网传学区调整方案是伪造的").places == frozenset()  # 学区 is a word, not 网传 district
    # Taken somewhere is no place's name: "当夜送镇卫生院" names no township "夜送镇".
    assert a(ex, "值班老师当夜送镇卫生院看的").places == {"青禾镇卫生院"}
    assert a(ex, "送至镇医院").places == frozenset()


def test_gazetteer_name_wins_over_mark_inside_it(ex: AnchorExtractor) -> None:
    assert a(ex, "我们去镇卫生院看病").places == {"青禾镇卫生院"}
    assert a(ex, "青禾镇卫生院门口排长队").places == {"青禾镇卫生院"}


def test_numbers_and_amounts(ex: AnchorExtractor) -> None:
    x = a(ex, "每户补贴八百元，两周内搬走")
    assert x.amounts == {"800元", "2周"}
    assert {"800", "2"} <= x.numbers
    assert a(ex, "补贴800块").amounts == {"800元"}  # 块 is 元
    assert a(ex, "一下子涨到1.5万元").amounts == {"15000元"}
    assert a(ex, "84岁钟南山院士再度出征").amounts == {"84岁"}
    # Dates are numbers, never amounts; "一下", "一直", "万一" are words.
    d = a(ex, "12月5日下午3点停电")
    assert d.amounts == frozenset() and {"12月", "5日", "3点"} <= d.numbers
    assert not a(ex, "他一直说一定会一起去，万一出事呢")
    # Chat writes clauses apart with spaces: a unit after a space counts only for money.
    assert a(ex, "每人400 年底前交完").amounts == frozenset()
    assert a(ex, "每人补贴 800 元").amounts == {"800元"}
    # "这两天", "前两天", "过两天" say "lately" or "soon", not how long: no amount to conflict
    # with a claim's "封路15天"; "停水两天" is a length of time.
    for vague in ("这两天就是小到中雪", "前两天下了点雨", "过两天再说", "这一两天就到"):
        assert a(ex, vague).amounts == frozenset(), vague
    assert a(ex, "前两天停了两天水").amounts == {"2天"}
    assert not anchors_conflict(a(ex, "这两天就是小到中雪 根本没有一米的雪"), a(ex, "积雪1米 道路封闭15天以上"))


def test_names(ex: AnchorExtractor) -> None:
    assert "化工厂" in a(ex, "听说化工厂爆炸了").names
    assert "中心小学" in a(ex, "中心小学停课3天").names
    assert "钟南山院士" in a(ex, "84岁钟南山院士再度出征").names
    # A village before the plant is the place, not part of the plant's name.
    x = a(ex, "东湾村化工厂排污")
    assert x.names == {"化工厂"} and x.places == {"东湾村"}
    # A verb that takes the school as its object ends the name: "我一刚问过学校了" asked the school.
    assert a(ex, "我一刚问过学校了 没有这个事").names == {"学校"}
    assert a(ex, "我找过派出所了").names == {"派出所"}


def test_conflict_on_places_with_nesting(ex: AnchorExtractor, gaz: Gazetteer) -> None:
    parents = place_parents(gaz)
    east, willow = a(ex, "东湾村停水了"), a(ex, "柳树村停水了")
    town = a(ex, "青禾镇停水了")
    assert anchors_conflict(east, willow, parents)
    assert not anchors_conflict(east, town, parents)  # the town covers its villages
    assert not anchors_conflict(town, east, parents)
    assert anchors_conflict(east, town)  # without the hierarchy two places are two places
    assert not anchors_conflict(east, a(ex, "东湾停水好几天了，说是水管爆了"), parents)
    # One side naming no place is no conflict (a shortened retelling drops the place).
    assert not anchors_conflict(east, a(ex, "又停水了"), parents)


def test_conflict_on_amounts_and_names(ex: AnchorExtractor) -> None:
    assert anchors_conflict(a(ex, "每人补贴800元"), a(ex, "每人补贴500元"))
    assert not anchors_conflict(a(ex, "每人补贴800元"), a(ex, "每人补贴800块，共2万元"))
    assert not anchors_conflict(a(ex, "补贴800元"), a(ex, "停课3天"))  # other units
    assert not anchors_conflict(a(ex, "12月5日停电"), a(ex, "12月6日停电"))  # dates never conflict
    assert anchors_conflict(a(ex, "中心小学有学生中毒"), a(ex, "实验小学有学生中毒"))
    assert not anchors_conflict(a(ex, "化工厂爆炸了"), a(ex, "东湾化工厂爆炸了"))
    # A name cut from running text drags a date or a verb along: still the same vaccine.
    assert not anchors_conflict(a(ex, "22号到24号打流感疫苗 老人免费"), a(ex, "卫生院接种流感疫苗"))
    assert anchors_conflict(a(ex, "卫生院今天打狂犬疫苗"), a(ex, "卫生院接种流感疫苗"))


def test_overlap(ex: AnchorExtractor) -> None:
    long = a(ex, "紧急扩散！石桥村化工厂排污，每户补贴800元，让大家两周内搬走")
    assert anchor_overlap(a(ex, "石桥村化工厂排污"), long) == 1.0
    assert anchor_overlap(a(ex, "柳树村停水"), long) == 0.0
    assert anchor_overlap(a(ex, "停水了"), long) == 0.0  # no anchors: nothing binds
    assert 0.0 < anchor_overlap(a(ex, "石桥村补贴500元"), long) < 1.0


def test_dict_round_trip_and_pickle(ex: AnchorExtractor) -> None:
    x = a(ex, "东湾村化工厂排污，每户补贴八百元")
    assert Anchors.from_dict(x.to_dict()) == x
    assert Anchors.from_dict(None) == Anchors()
    twin = pickle.loads(pickle.dumps(ex))
    assert twin.extract(normalize("东湾停水")) == ex.extract(normalize("东湾停水"))


def test_default_extractor_reads_the_office_gazetteer() -> None:
    # The shipped places.yaml holds 石桥村 with the alias 石桥.
    assert "石桥村" in extract_anchors(normalize("石桥那边停水了")).places
    assert extract_anchors("") == Anchors()


def test_another_config_folder_is_read_at_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An office (or a benchmark going from one township to the next) that names another config
    folder gets that folder's places at once, not after the 30 s re-check."""
    from core.settings import get_settings

    assert "石桥村" in extract_anchors(normalize("石桥那边停水了")).places  # the shipped places, cached
    (tmp_path / "places.yaml").write_text(
        "version: 1\nplaces:\n  - name: 芦苇湾村\n    kind: village\n    aliases: [芦苇湾]\n", encoding="utf-8")
    monkeypatch.setenv("YUQING_CONFIG_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        places = extract_anchors(normalize("芦苇湾那边停水了，石桥那边也是")).places
        assert "芦苇湾村" in places and "石桥村" not in places
    finally:
        monkeypatch.delenv("YUQING_CONFIG_DIR")
        get_settings.cache_clear()
    assert "石桥村" in extract_anchors(normalize("石桥那边停水了")).places
