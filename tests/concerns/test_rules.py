"""Categories, places and mood on our own sample sentences; the office's YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import get_settings
from nlp.concerns.bursts import BurstParams, burst, hour_key
from nlp.concerns.errors import ConcernConfigError
from nlp.concerns.mood import mood
from nlp.concerns.places import Gazetteer, load_gazetteer
from nlp.concerns.taxonomy import Taxonomy, load_taxonomy
from nlp.normalize import normalize


@pytest.mark.parametrize(("text", "category"), [
    ("东湾村药店的口罩卖完了，哪里还能买到？", "物资供应"),
    ("镇卫生院发热门诊今天还看病吗", "医疗救治"),
    ("石桥村的隔离什么时候解除？核酸还要做几次", "疫情防控措施/隔离"),
    ("去县城的公交车停运了，什么时候恢复", "交通出行"),
    ("菜市场白菜涨价了，翻倍了", "物价"),
    ("厂里停工两个月了，工资也发不出来", "就业与生计"),
    ("青禾中学下周开学吗？网课还要上多久", "教育"),
    ("河西路有人冒充镇政府打电话诈骗，大家小心", "公共安全"),
    ("低保申请要去哪里办理，需要什么手续", "政策咨询"),
    ("今天天气真好，晚上去散步", "其他"),
])
def test_default_taxonomy_categories(text: str, category: str) -> None:
    assert load_taxonomy().classify(normalize(text)).category == category


def test_default_taxonomy_has_the_ten_categories() -> None:
    tax = load_taxonomy()
    assert tax.categories == ["物资供应", "医疗救治", "疫情防控措施/隔离", "交通出行", "物价", "就业与生计",
                              "教育", "公共安全", "政策咨询", "其他"]


def test_office_taxonomy_from_config_dir_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "taxonomy.yaml").write_text(
        "default: 其他\ncategories:\n  - name: 防汛\n    keywords: {洪水: 3, 河堤: 3, 水位: 2}\n",
        encoding="utf-8")
    monkeypatch.setenv("YUQING_CONFIG_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        tax = load_taxonomy()
        assert tax.classify("南坪村河堤水位又涨了").category == "防汛"
        assert tax.classify("口罩买不到").category == "其他"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(("content", "needle"), [
    ("categories: [", "不是有效的 YAML"),
    ("categories:\n  - keywords: {口罩: 3}\n", "categories.0.name"),
    ("- 口罩\n", "顶层应是键值对"),
    ("categories:\n  - name: 甲\n  - name: 甲\n", "类别名称重复"),
])
def test_bad_taxonomy_files_say_what_to_fix(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConcernConfigError, match=needle) as err:
        Taxonomy.load(path)
    assert str(path) in str(err.value)


def test_gazetteer_finds_places_and_aliases() -> None:
    gaz = load_gazetteer()
    assert gaz.find("东湾村的口罩卖完了") == ["东湾村"]
    assert gaz.find("东湾那边也没有") == ["东湾村"]  # alias
    assert gaz.find("青禾镇卫生院今天开门吗") == ["青禾镇卫生院"]  # the longest name wins
    assert gaz.find("镇卫生院和菜市场都关了") == ["青禾镇卫生院", "青禾菜市场"]
    assert gaz.find("石桥和南坪的学生去青禾中学上课") == ["石桥村", "南坪村", "青禾中学"]
    assert gaz.find("今天天气不错") == []
    assert gaz.is_local(["东湾村"])
    assert not gaz.is_local(["青禾县"])  # the county is recorded but is not our own place
    assert gaz.ancestors("东湾村卫生室") == ["东湾村", "青禾镇", "青禾县"]
    assert "青禾镇卫生院 3000 ns" in gaz.user_dict_lines()
    assert gaz.home() == {"青禾镇"}  # the office's own area: local, its parent (the county) is not


def test_gazetteer_rejects_ambiguous_aliases(tmp_path: Path) -> None:
    path = tmp_path / "places.yaml"
    path.write_text("places:\n  - name: 东湾村\n    aliases: [湾里]\n  - name: 西湾村\n    aliases: [湾里]\n",
                    encoding="utf-8")
    with pytest.raises(ConcernConfigError, match="湾里"):
        Gazetteer.load(path)


def test_negation_pair() -> None:
    lack = mood(normalize("没有口罩"))
    denied = mood(normalize("不是没有口罩"))
    assert lack.negativity >= 0.3 and lack.is_concern
    assert denied.negativity < 0.1 < lack.negativity
    assert not denied.is_concern


@pytest.mark.parametrize(("calm", "upset"), [
    ("菜市场恢复正常营业，物资充足，请大家放心", "菜市场还没恢复营业，物资不够"),
    ("不用担心，口罩够用", "很担心，口罩不够用"),
    ("谢谢镇里及时送菜", "凭什么我们村一直没人管？太过分了！！！"),
    ("公交车恢复了", "公交车还没恢复"),
])
def test_mood_orders_sentences(calm: str, upset: str) -> None:
    assert mood(normalize(calm)).negativity < mood(normalize(upset)).negativity


def test_questions_and_complaints_count_as_concern() -> None:
    question = mood(normalize("卫生院明天开门吗？"))
    assert question.is_question and question.is_concern
    complaint = mood(normalize("我要投诉村委会"))
    assert complaint.is_complaint and complaint.is_concern
    assert not mood(normalize("今天天气真好")).is_concern
    assert mood("").negativity == 0.0


def test_burst_score_against_own_baseline() -> None:
    import datetime as dt

    params = BurstParams()
    now = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.UTC)
    steady = {hour_key(now - dt.timedelta(hours=h)): 30 for h in range(1, 30)}
    assert not burst(steady, now, params).is_hot
    last_hour = hour_key(now - dt.timedelta(hours=1))
    spiking = {hour_key(now - dt.timedelta(hours=h)): 1 for h in range(2, 30)} | {last_hour: 25}
    b = burst(spiking, now, params)
    assert b.is_hot and b.z > params.z
    tiny = {hour_key(now - dt.timedelta(hours=1)): 3}  # a rise, but too few posts to matter
    assert not burst(tiny, now, params).is_hot
    doubled = {hour_key(now - dt.timedelta(hours=h)): 30 for h in range(2, 30)} | {last_hour: 90}
    assert burst(doubled, now, params).is_hot  # big topics can burst too, when they rise
