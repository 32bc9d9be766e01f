from __future__ import annotations

from nlp.cues import CUE_NAMES, cue_features
from nlp.normalize import needs_t2s, normalize


def test_fullwidth_to_halfwidth():
    assert normalize("ＡＢＣ１２３，ｘｙｚ") == "ABC123,xyz"


def test_traditional_to_simplified():
    assert normalize("這個縣的醫院已經開放預約") == "这个县的医院已经开放预约"


def test_simplified_text_skips_opencc():
    assert not needs_t2s("今天天气很好，我们去公园散步")
    assert needs_t2s("這裡")


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


def test_t2s_fast_path_exact_on_real_data(shared_data):
    import pandas as pd

    from nlp.normalize import _converter

    texts = pd.read_csv(shared_data / "combined_text_label.csv", usecols=["text"])["text"].dropna()
    conv = _converter()
    sample = texts.sample(1500, random_state=0).tolist()
    missed = [t for t in sample if not needs_t2s(t) and conv.convert(t) != t]
    assert not missed
