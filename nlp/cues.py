"""Hand-written rumor cues: surface signals that rumors and official notices use differently.

The cue vocabulary below is our own (written for this project, not taken from any dataset).
`cue_features` returns a fixed set of named, bounded numbers so the classifier can use them
as a small dense block and `RumorModel.explain` can name them (``cue:urgent_spread``).
`refutation_cues` is a stance signal for the alert stage: whether a post says a claim is false
(辟谣/澄清), often while quoting it, rather than spreading it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from nlp.normalize import normalize

__all__ = [
    "CUE_GROUPS",
    "CUE_LABELS_ZH",
    "CUE_NAMES",
    "DEBUNK_TERM_PREFIX",
    "REFUTATION_CUES",
    "cue_features",
    "cue_matrix",
    "refutation_cues",
    "term_label",
]

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

# Refutation stance. A post refutes a claim when, on its normalised text, at least one *denial*
# cue is left after the look-alike phrases in NOT_REFUTATION are removed, and it does not also
# affirm the claim (AFFIRMATION). Each cue is (name shown to staff, pattern).
REFUTATION_CUES: Mapping[str, tuple[tuple[str, str], ...]] = {
    # the post says the claim is false: one of these is needed
    "denial": (
        ("辟谣", r"辟谣"),
        ("不实", r"不实|不属实|失实"),
        ("谣言", r"谣言|谣传|造谣"),
        ("假消息", r"假消息|假新闻|虚假(?:信息|消息)"),
        ("别信", r"别信|不要(?:相)?信|勿信|不信谣|不传谣"),
        ("并非", r"并非"),
        ("纯属", r"纯属(?:谣言|谣传|虚构|捏造|编造|造谣|子虚乌有|无稽之谈|假)"),
        # "没有封城安排", "没有任何封控计划": the arrangement ends the clause (so "没有通知就安排封城"
        # is not one)
        ("没有…安排", r"没有(?:任何)?[\u4e00-\u9fff]{0,6}?(?:的)?(?:安排|计划)(?![\u4e00-\u9fff])"),
    ),
    # an authority has spoken: shown with a denial, never enough alone ("官方通报：明天起封城" is a
    # classic fake notice)
    "source": (
        ("官方说明", r"(?:官方|政府|镇里|县里|村委会?|派出所|警方|公安)(?:已经?|刚刚?)?"
                     r"(?:发了?|发布了?|出了?|作出了?)?(?:说明|通报|回应|澄清)"),
        ("经核实", r"经(?:核实|核查|调查)"),
    ),
}
# Phrases that contain a denial word but do not deny: a denied denial ("不是谣言", "并非假消息"), a
# question ("是谣言吗?"), a call for a refutation that has not come ("求辟谣", "官方还没辟谣"), and
# distrust of the authorities ("别信官方的", a spreader's line).
NOT_REFUTATION: tuple[str, ...] = (
    r"(?:不是|并不是|并非|不算|哪是|哪里是|绝不是|才不是|可不是|根本不是)(?:什么)?"
    r"(?:谣言|谣传|假消息|假新闻|不实|造谣)",
    r"是不是(?:谣言|谣传|假消息|假新闻|造谣)",
    r"(?:谣言|谣传|假消息|假新闻|不实|辟谣)(?:吗|么|嘛|\?)",
    r"(?:求|请|希望|等|盼|还没|没有)(?:官方|政府)?(?:出来)?辟谣",
    r"(?:别|不要|勿)(?:相)?信(?:官方|政府|镇里|县里|通报|上面)",
)
# The post asserts the claim: then it spreads it, whatever denial words it also holds.
# Hearsay or a call to act also asserts it: "谣言满天飞，听说明天封城" spreads while naming rumors.
# A refutation that starts from hearsay ("听说要封城？经核实不实") then counts as spreading: an
# extra alert for staff to dismiss costs less than a missed rumor.
# So does a witness ("亲眼看到") or the claim come true ("真封了", not asked: "真封了？"): "都说是谣言，结果今天真封了"
# names a rumor to say it was not one.
AFFIRMATION = (r"(?<!不)是真的|(?<!不是)真的?要|确有其事|千真万确|(?<!不)属实"
               r"|听说|据说|内部消息|小道消息|赶紧|赶快|快去|抓紧"
               r"|亲眼|亲耳|(?<![没不])真(?:的)?(?:封|关|停|拆|涨|来)了(?![?吗么])|结果(?:还是|真)")

_REFUTATION_RES = {
    kind: [(name, re.compile(pattern)) for name, pattern in cues] for kind, cues in REFUTATION_CUES.items()
}
_ANY_DENIAL_RE = re.compile("|".join(pattern for _name, pattern in REFUTATION_CUES["denial"]))
_NOT_REFUTATION_RE = re.compile("|".join(NOT_REFUTATION))
_AFFIRMATION_RE = re.compile(AFFIRMATION)


def refutation_cues(text: str, *, normalized: bool = False) -> tuple[str, ...]:
    """The names of the refutation cues in a post (denials first), or () when it does not refute.

    Missing a spreading post costs more than missing a refutation, so the rule leans to "spreads":
    a denied or questioned denial word is not a cue, an authority alone is not a denial, and a post
    that also says the claim is true is not a refutation.
    """
    t = text if normalized else normalize(text)
    # Most posts hold no denial word at all: one search answers for them (the alert stage asks
    # this of every post of every story it looks at).
    if not _ANY_DENIAL_RE.search(t) or _AFFIRMATION_RE.search(t):
        return ()
    t = _NOT_REFUTATION_RE.sub(" ", t)
    found = {kind: tuple(name for name, rx in cues if rx.search(t)) for kind, cues in _REFUTATION_RES.items()}
    return (*found["denial"], *found["source"]) if found["denial"] else ()


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

# What staff read for a cue that raised a post's score (explanations name cues "cue:<name>").
CUE_LABELS_ZH: Mapping[str, str] = {
    "urgent_spread": "催促转发（扩散、速转）",
    "share_pressure": "道德绑架式转发（不转不是…）",
    "deletion_claim": "声称马上会被删",
    "hearsay": "消息来源不明（听说、网传、内部消息）",
    "sensational": "耸人听闻的措辞（震惊、突发）",
    "health_scare": "健康恐慌（致癌、千万别吃）",
    "panic_supply": "封控或物资恐慌（封城、抢购、停水）",
    "crime_scare": "治安恐慌（人贩子、拐卖）",
    "official_source": "官方或新闻用语",
    "debunk": "辟谣用语",
    "first_person": "第一人称讲述",
    "emotion": "情绪化用语",
    "exclaim": "感叹号多",
    "question": "问号多",
    "repeat_punct": "连续标点（！！！）",
    "url": "带链接",
    "mention": "@他人",
    "emoji": "表情符号",
    "numbers": "数字多",
    "caps_words": "全大写英文",
    "caps_ratio": "大写字母比例高",
    "hashtag": "话题标签（#…#）",
    "headline": "标题式开头（【…】）",
    "masked_pii": "含已遮蔽的个人信息",
    "length": "篇幅",
    "short": "篇幅很短",
}


# The explanation term `nlp.pipeline` puts first when a post matches a debunk ("辟谣库#12").
DEBUNK_TERM_PREFIX = "辟谣库#"


def term_label(term: str) -> str:
    """What staff read for an explanation term: a cue's Chinese label ("cue:hearsay" ->
    "消息来源不明（…）"), a debunk match as "与辟谣库 #12 相符"; a word as it is."""
    if term.startswith("cue:"):
        return CUE_LABELS_ZH.get(term[4:], term[4:])
    if term.startswith(DEBUNK_TERM_PREFIX):
        return f"与辟谣库 #{term[len(DEBUNK_TERM_PREFIX):]} 相符"
    return term


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
