"""Hand-written rumor cues: surface signals that rumors and official notices use differently.

The cue vocabulary below is our own (written for this project, not taken from any dataset).
`cue_features` returns a fixed set of named, bounded numbers so the classifier can use them
as a small dense block and `RumorModel.explain` can name them (``cue:urgent_spread``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from nlp.normalize import normalize

__all__ = ["CUE_GROUPS", "CUE_NAMES", "cue_features", "cue_matrix"]

# Each group is one feature: log1p(number of phrase hits). Phrases are matched on the
# normalised (simplified, half-width) text.
CUE_GROUPS: Mapping[str, tuple[str, ...]] = {
    # calls to spread the message
    "urgent_spread": (
        "紧急扩散", "紧急转发", "紧急通知", "紧急提醒", "扩散", "转发", "速转", "快转", "速看", "转起来",
        "请转告", "互相转告", "告诉家人", "告诉身边", "让更多人知道", "广而告之", "帮忙转", "求转",
        "求扩散", "大家注意", "相互转告", "看到的都转", "分享出去", "转给", "一定要看", "务必",
    ),
    # pressure and moral blackmail to share
    "share_pressure": (
        "不转不是中国人", "是中国人就转", "不转不是", "转发积德", "好人一生平安", "功德无量",
        "有孩子的都看看", "为了家人", "看完请转", "不看后悔", "有良心的", "救救",
    ),
    # "delete soon" / censorship claims
    "deletion_claim": (
        "马上删", "随时删", "即将删除", "赶紧看", "快删了", "删帖", "被删", "看完就删", "趁没删",
        "删前", "随时被删", "不让说", "封杀",
    ),
    # unverifiable sources
    "hearsay": (
        "内部消息", "据说", "听说", "网传", "传言", "小道消息", "朋友说", "亲戚说", "同学说",
        "知情人", "知情人士", "爆料", "内部人士", "内部人员", "有消息称", "据传", "朋友的朋友",
        "我朋友", "我同事", "我亲戚", "群里说", "群里都在传", "刚刚得到", "可靠消息", "确切消息",
        "医生朋友", "在医院工作", "在政府工作",
    ),
    # shock and sensational framing
    "sensational": (
        "震惊", "惊呆", "吓死", "太可怕", "好可怕", "细思极恐", "恐怖", "惊天", "惊人", "重磅",
        "突发", "爆炸性", "疯传", "揭秘", "真相", "曝光", "竟然", "居然", "万万没想到", "天啊",
        "紧急", "注意了", "出大事", "炸锅", "惨剧", "内幕", "黑幕",
    ),
    # health scares and miracle cures
    "health_scare": (
        "致癌", "有毒", "千万别吃", "千万不要", "不能吃", "偏方", "秘方", "包治", "根治", "神药",
        "速死", "猝死", "毒奶粉", "毒疫苗", "变异", "不治之症", "注射", "针头", "艾滋",
    ),
    # panic about supplies and lockdowns
    "panic_supply": (
        "抢购", "囤货", "囤积", "封城", "封路", "断供", "停水", "停电", "涨价", "买不到", "赶紧去",
        "抢盐", "抢米", "限购", "戒严", "停运", "停课",
    ),
    # crime and child-safety scares (a classic rumor family)
    "crime_scare": (
        "人贩子", "拐卖", "偷孩子", "抢孩子", "迷药", "割肾", "器官", "绑架", "抢劫", "杀人",
        "遇害", "失踪", "骗局", "新型诈骗", "冒充",
    ),
    # official, sourced or corrective language (pushes the other way)
    "official_source": (
        "通报", "官方", "经核实", "经调查", "据了解", "新闻发布会", "发布会", "通告", "公告",
        "记者", "日电", "报道", "据新华社", "新华社", "人民日报", "央视", "卫健委", "卫生健康委",
        "疾控中心", "公安局", "警方", "派出所", "人民政府", "政府网", "应急管理局", "市场监管",
        "发言人", "权威发布", "情况说明", "回应", "声明",
    ),
    "debunk": (
        "辟谣", "谣言", "不实", "假消息", "虚假", "澄清", "勿信", "不信谣", "不传谣", "并非", "系谣传",
    ),
    # first-person and emotional voice
    "first_person": ("我", "我们", "我家", "我妈", "我爸", "本人", "亲眼"),
    "emotion": ("哭了", "心痛", "愤怒", "可怜", "心寒", "气愤", "悲哀", "痛心", "泪", "伤心"),
}

_GROUP_RES = {
    name: re.compile("|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True)))
    for name, phrases in CUE_GROUPS.items()
}

_EXCL_RE = re.compile(r"!")
_QUES_RE = re.compile(r"\?")
_REPEAT_RE = re.compile(r"<REPEAT_PUNCT>")
_URL_RE = re.compile(r"<URL>")
_AT_RE = re.compile(r"<AT>")
_EMO_RE = re.compile(r"<EMO>|\[[\u4e00-\u9fffA-Za-z]{1,6}\]")  # unicode emoji + Weibo [表情]
_NUM_RE = re.compile(r"\d+(?:\.\d+)?")
_CAPS_WORD_RE = re.compile(r"\b[A-Z]{3,}\b")
_LATIN_RE = re.compile(r"[A-Za-z]")
_UPPER_RE = re.compile(r"[A-Z]")
_HASHTAG_RE = re.compile(r"#[^#\s]{1,30}#")
_BRACKET_TITLE_RE = re.compile(r"^【[^】]{2,40}】")  # news-style headline opener
_MASK_RE = re.compile(r"\d{2,4}\*{3,}\d{2,4}|<(?:PHONE|ID|IDCARD|NAME|ADDR|EMAIL|QQ|WECHAT|BANK|PLATE)>")
_PLACEHOLDER_RE = re.compile(r"<[A-Z_]+>")

CUE_NAMES: tuple[str, ...] = (
    *CUE_GROUPS.keys(),
    "exclaim",
    "question",
    "repeat_punct",
    "url",
    "mention",
    "emoji",
    "numbers",
    "caps_words",
    "caps_ratio",
    "hashtag",
    "headline",
    "masked_pii",
    "length",
    "short",
)


def cue_features(text: str, *, normalized: bool = False) -> dict[str, float]:
    """Named rumor-cue values for one post, each in a small range (mostly log1p counts).

    ``text`` is raw unless ``normalized`` is true (the classifier passes normalised text
    so normalisation runs once per post).
    """
    t = text if normalized else normalize(text)
    out: dict[str, float] = {}
    for name, rx in _GROUP_RES.items():
        out[name] = math.log1p(len(rx.findall(t)))
    plain = _PLACEHOLDER_RE.sub("", t)
    n_latin = len(_LATIN_RE.findall(plain))
    out["exclaim"] = math.log1p(plain.count("!"))
    out["question"] = math.log1p(plain.count("?"))
    out["repeat_punct"] = math.log1p(t.count("<REPEAT_PUNCT>"))
    out["url"] = math.log1p(t.count("<URL>"))
    out["mention"] = math.log1p(t.count("<AT>"))
    out["emoji"] = math.log1p(len(_EMO_RE.findall(t)))
    out["numbers"] = math.log1p(len(_NUM_RE.findall(plain)))
    out["caps_words"] = math.log1p(len(_CAPS_WORD_RE.findall(plain)))
    out["caps_ratio"] = (len(_UPPER_RE.findall(plain)) / n_latin) if n_latin >= 4 else 0.0
    out["hashtag"] = math.log1p(len(_HASHTAG_RE.findall(t)))
    out["headline"] = 1.0 if _BRACKET_TITLE_RE.match(t) else 0.0
    out["masked_pii"] = math.log1p(len(_MASK_RE.findall(t)))
    n = len(plain)
    out["length"] = math.log1p(n) / 6.0  # ~1.0 at 400 characters
    out["short"] = 1.0 if n < 30 else 0.0
    return out


def cue_matrix(texts: list[str], *, normalized: bool = True):  # -> np.ndarray (n, len(CUE_NAMES))
    """Dense float32 matrix of cue values in ``CUE_NAMES`` order."""
    import numpy as np

    m = np.zeros((len(texts), len(CUE_NAMES)), dtype=np.float32)
    for i, t in enumerate(texts):
        f = cue_features(t, normalized=normalized)
        m[i] = [f[name] for name in CUE_NAMES]
    return m
