from __future__ import annotations

import sys
import types

import pytest

from nlp import normalize as normalize_module
from nlp.cues import CUE_NAMES, cue_features
from nlp.normalize import ConverterMissing, normalize, to_simplified


def test_fullwidth_to_halfwidth():
    assert normalize("ＡＢＣ１２３，ｘｙｚ") == "ABC123,xyz"


def test_traditional_to_simplified():
    assert normalize("這個縣的醫院已經開放預約") == "这个县的医院已经开放预约"


def test_phrases_convert_before_characters():
    # 頭髮 -> 头发 and 乾燥 -> 干燥 need the phrase table: character by character 髮 and 乾 are ambiguous
    assert to_simplified("頭髮乾燥，批覆文件") == "头发干燥，批复文件"


def test_simplified_text_is_unchanged():
    text = "今天天气很好，我们去公园散步。干部说：发展不能停"
    assert to_simplified(text) == text


def test_missing_native_converter_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "opencc", None)  # what `import opencc` meets without the wheel
    normalize_module._converter.cache_clear()
    try:
        with pytest.raises(ConverterMissing, match=r"pip install 'opencc>=1\.4"):
            to_simplified("這裡")
    finally:
        normalize_module._converter.cache_clear()


def test_shadowing_reimplementation_is_refused(monkeypatch):
    # opencc-python-reimplemented installs the same `opencc` package, without __version__
    old = types.ModuleType("opencc")
    old.OpenCC = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opencc", old)
    normalize_module._converter.cache_clear()
    try:
        with pytest.raises(ConverterMissing, match="opencc-python-reimplemented"):
            to_simplified("這裡")
    finally:
        normalize_module._converter.cache_clear()


def test_html_stripped_and_unescaped():
    assert normalize("<p>停水通知&amp;说明</p><br/>明天恢复") == "停水通知&说明 明天恢复"


def test_html_script_removed_but_angle_text_kept():
    out = normalize("<script>var a=1;</script>看<演唱会>")
    assert "var" not in out and "<演唱会>" in out


def test_url_mention_emoji_tokens():
    out = normalize("快看 https://example.com/a?b=1 @小王同学 太好了😀👍")
    assert "<URL>" in out and "<AT>" in out and "<EMO>" in out
    assert "example" not in out and "小王同学" not in out


def test_repeated_punctuation_collapses_with_marker():
    out = normalize("出大事了！！！真的吗？？")
    assert out == "出大事了! <REPEAT_PUNCT> 真的吗? <REPEAT_PUNCT>"


def test_masked_personal_data_kept():
    out = normalize("联系电话138****1234，或拨打<PHONE>咨询")
    assert "138****1234" in out and "<PHONE>" in out


def test_idempotent():
    for t in ["紧急！！！看這裡 https://t.cn/Ab12 @某人", "<b>通知</b>……明天。。。"]:
        once = normalize(t)
        assert normalize(once) == once


def test_empty():
    assert normalize("") == "" and normalize(None) == ""


def test_cue_features_fire():
    f = cue_features("紧急扩散！！内部消息：明天封城，赶紧去超市抢购，不转不是中国人")
    assert set(f) == set(CUE_NAMES)
    for k in ("urgent_spread", "hearsay", "panic_supply", "share_pressure", "repeat_punct"):
        assert f[k] > 0, k
    g = cue_features("县卫生健康局通报：今日新增确诊病例0例")
    assert g["official_source"] > 0 and g["hearsay"] == 0


def test_control_characters_are_dropped() -> None:
    assert normalize("口罩\x00没\x07了") == "口罩 没 了"
