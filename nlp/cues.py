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
    "ROLE_CUES",
    "cue_features",
    "cue_matrix",
    "refutation_cues",
    "role_cues",
    "term_label",
    "without_thanks",
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
        ("别信", r"别信|不要(?:相)?信|勿信|不信谣|不传谣|(?:不要|别|勿)(?:再)?传谣"),
        ("并非", r"并非"),
        ("纯属", r"纯属(?:谣言|谣传|虚构|捏造|编造|造谣|子虚乌有|无稽之谈|假)"),
        # "没有封城安排", "没有任何封控计划": the arrangement ends the clause (so "没有通知就安排封城"
        # is not one)
        ("没有…安排", r"没有(?:任何)?[\u4e00-\u9fff]{0,6}?(?:的)?(?:安排|计划)(?![\u4e00-\u9fff])"),
        # how an office's verification words it: "不存在扑杀、禁止买卖的情况", "相关内容系伪造",
        # "我局从未制定该方案"
        ("不存在", r"不存在(?:“[^”]{1,20}”|[^。!?；;]{0,16}?(?:情况|问题|现象|事实|此事|行为))"),
        ("系伪造", r"(?:系|均系|纯系)(?:伪造|编造|捏造|虚构|谣传|误传)"),
        ("从未", r"从未(?:制定|制发|发布|下发|出台|发出|印发|作出|发过)"),
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
    # a verdict on whoever spreads it is a reaction, not a denial: "造谣的要抓", "传谣的人该罚"
    r"(?:造谣|传谣)(?:的|的人|者)?(?:就|真|都)?(?:要|该|应该|必须|得)(?:被)?(?:抓|罚|严惩|处理|拘留|关)",
    r"(?:造谣|传谣)(?:的|的人|者)(?:良心|不得好死|太(?:坏|可恶|缺德)|真(?:坏|可恶|缺德))",
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


# --------------------------------------------------------------------------- role cues
# What a post *does* in its matter (nlp.roles): ask whether a claim is true, react to it, deny it
# in chat words, announce, complain, or chat about something else. Our own phrases, written for
# township group chats; regular expressions on the normalised text (half-width "?" "!" ":" ",").
ROLE_CUES: Mapping[str, tuple[str, ...]] = {
    # asking whether a claim is true (Zhao, Resnick & Mei 2015: enquiries are the early signal)
    "truth_question": (
        r"真的假的", r"真的还是假的", r"是不是真的", r"是(?<!不是)真的(?:吗|么|嘛|吧|\?)", r"真的(?:吗|么|嘛)",
        r"真的\?", r"假的(?:吧|吗|么|\?)", r"是不是(?:谣言|谣传|假消息|假的)", r"是(?<![不非]是)(?:谣言|谣传|假消息|假的)(?:吗|么|嘛|吧|\?)",
        r"(?:谣言|谣传|假消息)(?:吗|么|嘛|\?)", r"有没有(?:正式|官方|正规)?(?:的)?(?:通知|文件|消息|说法)",
        r"有(?:正式|官方)?(?:的)?(?:通知|文件|消息|说法)(?:吗|么|没)", r"官方(?:怎么说|说了吗|有说法吗)",
        r"(?:谁|有人|有谁|哪位)(?:能|可以)?(?:知道|清楚|了解)(?!.{0,10}(?:哪里|哪儿|在哪|哪家|怎么走|电话|下载|买|借))", r"知道的(?:人)?(?:说一下|说说|讲讲|回一下)",
        r"求证", r"求辟谣", r"求真相", r"(?:靠谱|可信|可靠|属实|确定|准|当真)(?:吗|么|嘛|不)",
        r"有(?<![没不]有)这(?:回|么回)?事(?:吗|么|儿吗|没|不|\?)", r"真有(?:此|这)事(?:吗|么|\?)", r"(?:什么|啥|咋|怎么)(?:情况|回事)",
        r"(?:哪|哪里|哪儿)(?:来|听|看)(?:说|到|见)?的(?:消息)?", r"谁说的", r"(?:消息|说法)(?:来源|出处)",
        r"是(?:不是)?真(?:的)?要", r"会不会(?:真的)?", r"(?:确认|证实)(?:一下|了吗|过吗)", r"核实一下",
    ),
    # emotion or comment on a matter, without asserting or asking anything new
    "reaction": (
        r"吓死", r"吓人", r"好怕", r"害怕", r"可怕", r"天哪", r"天啊", r"我的天", r"妈呀", r"好家伙",
        r"不会吧", r"怎么会这样", r"担心", r"揪心", r"心疼", r"可怜", r"作孽", r"造孽", r"缺德",
        r"无语", r"离谱", r"过分", r"气死", r"愤怒", r"太坏了", r"祈祷", r"保佑", r"希望(?:没事|平安|是假的)",
        r"我家(?:孩子|小孩|娃|老人)?也在", r"我们(?:家|那|村)?也在", r"咋办", r"怎么办", r"慌", r"心慌",
        r"吓得", r"平安", r"太惨", r"好惨", r"难受", r"震惊", r"阿弥陀佛", r"谢天谢地", r"急死",
        r"抢钱", r"疯了", r"(?:这|那)?(?:咋|怎么|还怎么)活", r"真能(?:传|编|吹)", r"传来传去",
        # a verdict on the matter or the people in it
        r"怪不得", r"早该", r"不靠谱", r"抓起来", r"不放过", r"现在的人", r"太厉害了", r"好了好了", r"活该",
        r"黑心", r"丧尽天良", r"不要脸", r"可恶", r"气人", r"可惜",
        # a start, a shrug at the threat, the cost to oneself: "吓一跳", "我家有一缸米 不怕", "白干了"
        r"吓(?:了)?(?:我)?一(?:跳|大跳)", r"不怕$", r"怕(?:啥|什么)$", r"喝西北风", r"白干", r"(?:冻|饿)死(?:人|啊|了)?$",
        r"(?:造谣|传谣)(?:的|的人|者)?(?:就|真|都)?(?:要|该|应该|必须|得)(?:被)?(?:抓|罚|严惩|处理|拘留|关)",
        r"(?:造谣|传谣)(?:的|的人|者)(?:良心|不得好死|太(?:坏|可恶|缺德)|真(?:坏|可恶|缺德))",
    ),
    # relief or regret once a claim turns out false: a reaction, though it names the denial
    # ("原来是谣言", "那就好", "吓我一跳", "我那三十桶水白卖了")
    "relief": (
        r"那就好", r"(?:这下|总算|终于)?放心了", r"吓我一跳", r"虚惊一场", r"我就说(?:嘛|吧|呢)?", r"还好(?:没|不是)",
        r"幸亏", r"幸好", r"原来(?:都)?是(?:谣言|假的|误会|骗子|骗人的|谣传|瞎传)", r"白(?:买|卖|囤|担心|跑)",
        r"没白(?:买|囤)",
        # "I knew it", "glad it's false", "nearly believed it", "rumors again": feeling about a denial
        r"我就(?:知道|猜到|晓得)", r"早(?:就)?(?:猜到|知道|晓得)(?:是)?(?:假|谣)", r"(?:是)?假的就好", r"辟谣了就好",
        r"还以为(?:是)?真的", r"白(?:高兴|激动|紧张|忙活|折腾|操心)", r"差点(?:就)?信了", r"还好(?:还好)?\s?(?:我|我们)?(?:没|不是)",
        r"又是(?:谣言|谣传|假的|瞎传)", r"谣言害(?:死)?人", r"(?:谣言|假消息|谣传)(?:也|都)有人信", r"(?:谣言|谣传)传得",
        r"被(?:人)?造谣", r"谢天谢地",
    ),
    # a denial in chat words (refutation_cues holds the written ones): "假的别传", "没有这回事"
    "chat_denial": (
        r"假(?<![不是有]假)的(?!吧|吗|么|\?)", r"没有?(?:这|那)(?:回|么回|桩|件|种)?事", r"(?:莫得|没得)(?:[^,。!?\s]{0,6}(?:这|那))?(?:回|么回|个)事", r"(?:没有?|莫得|没得)(?:这|那)(?:个|种)?说法(?![吗么?])",
        r"没有的事", r"(?:胡说|胡扯|瞎编|乱编)", r"(?:已经|早就|官方|镇里|村里|政府)(?:已经|早就)?辟谣",
        r"不(?<!是不)是真的(?!吗|么|\?)", r"根本没有", r"(?:^|我|刚)(?:刚)?(?:问|打电话问|打听)(?:过|了).{0,16}?(?:没有|没听说|莫得|没得)",
        # it is a scam, a misunderstanding, a forged paper
        r"(?:是|系|实为|纯属|都是)(?:电信|网络)?(?:骗子|骗人的|诈骗|误会|假文件|假通知|假的)(?![吧吗么?])",
        # an authority has said so, with a negation after it: "派出所说了没有抢孩子", "监管所说了 盐不涨价"
        r"(?:所|局|站|队|院|厂|镇里|镇上|村里|村委会?|政府|派出所|网警|警察|老师|书记|主任|会计|医生|银行|公司|物业)(?:都|也|已经|刚|刚才)?"
        r"(?:说了|说|讲了|通报了|发了|发(?:了)?声明(?:了)?|回复了?|证实了?)\s?[^?]{0,14}?(?:没有|没|不|假|骗|误会)",
        r"别(?:再)?(?:囤|慌|加|转|信|去(?:抢|囤))", r"没(?:有)?(?:接到|收到)(?:任何)?(?:[^,。!?\s]{0,4}的?)(?:通知|文件|消息)",
        # a detail corrected, a cause named, a check come back clean: "不是一礼拜 就停半天",
        # "跟禽流感没关系", "传成食物中毒了", "初步检测合格", "问清楚了"
        r"不是[^,。!?\s]{1,8}[,，\s]+(?:就|只)", r"跟[^,。!?\s]{1,10}没(?:有)?(?:关系|关联)", r"(?:被)?传成",
        r"检测(?:结果)?(?:合格|正常|达标)", r"(?:问|打听|核实)清楚了",
        # it is a rumor, said in chat words; all is as usual; a rhetorical "there is no such thing":
        # "这是谣言 赶紧删了吧", "水质合格", "明天正常上课", "哪有什么狼"
        r"是(?<!不是)(?:谣言|谣传|假消息|假新闻)(?![吗么嘛吧?])", r"(?:水质|化验|抽检|检测|检查)(?:结果|都|也)?(?:合格|正常|达标|没问题)",
        r"(?:正常|照常)(?<!恢复正常)(?:上课|上学|供水|供电|营业|开放|上班|运行|发放)", r"一切正常",
        r"哪(?:里|儿)?有(?:什么|啥|这(?:回|种)?事)(?![?吗么])",
        # an authority's people have said so: "卫生院的人说了 没有人感染"
        r"(?:所|局|站|院|厂|村委会?|政府|派出所|学校)(?:的人|的医生|的老师|那边|里的人)(?:都|也|已经|刚|刚才)?"
        r"(?:说了|说|讲了|回复了?)\s?[^?]{0,14}?(?:没有|没|不|假|骗|误会)",
    ),
    # a denial word that does not deny: the claim affirmed ("不是谣言，是真的"), witnessed, come true
    "affirm": (
        r"是(?<!不是)真的(?![吗么嘛吧?])", r"确有其事", r"千真万确", r"属(?<!不属)实(?![吗么嘛?])", r"亲眼", r"亲耳",
        r"真(?<![没不]真)(?:的)?(?:封|关|停|拆|涨|来|死|抓)了(?![?吗么])",
        r"(?:不是|并非|可不是|根本不是)(?:什么)?(?:谣言|谣传|假的|假消息)",
    ),
    # official information: an opener or a body addressed to residents
    "notice": (
        r"^(?:【|\[)?(?:紧急)?(?:通知|公告|通告|告知书|提醒|温馨提示|重要提示|重要通知|友情提示)(?:】|\])?[:,]?",
        r"^(?:【|\[)[^】\]]{0,30}(?:通知|公告|通告|提示|提醒|通报)(?:】|\])",
        # an office signing its post up front: "【花桥镇电商办】温馨提示：…", "【县人社局】…"
        r"^(?:【|\[)[^】\]\s]{1,14}(?:办|局|所|站|委会|委员会|政府|中心|社区|学校|小学|中学|幼儿园|医院|卫生院|公司|集团)(?:】|\])",
        r"各位(?:村民|居民|家长|业主|乡亲|群友|同学|老师|租户|住户|商户|父老乡亲)",
        r"请(?:各位|大家|广大)(?:村民|居民|家长|群众|业主)?(?:于|在|到|带好|按时|注意|相互转告|提前|做好|配合|不要|勿)",
        r"特此(?:通知|公告|告知)", r"接上级(?:通知|要求)", r"(?:根据|按照).{0,12}(?:要求|规定|安排)",
        r"^接(?:镇里|县里|镇政府|县政府|上面|街道)(?:的)?(?:通知|要求)", r"请(?:各户|全体|各家各户)",
        # a caption naming what is forwarded ("转发镇政府通知：…")
        r"^(?:转发|转)[^:,\s]{0,12}(?:通知|公告|通告|提醒|通报)[:\s]",
        r"(?:镇|乡|县|区|市)?(?:人民)?(?:政府|村委会?|居委会?|社区|派出所|卫生院|供电所|自来水厂|水厂|学校|中心小学|中学|幼儿园|医院)"
        r"(?:发布|通知|通报|公告|提醒|温馨提示)[:,]",
        r"(?:办理|领取|报名|接种|缴费|发放)(?:时间|地点)", r"联系电话", r"咨询电话",
    ),
    # the form of a written notice, which rumors imitate too (a forged 文件 signs and dates itself):
    # a signature at the end (落款: "…敬请谅解。镇供电所"), a time span, a date, set phrases. A flag for
    # the role model only: no rule reads it.
    "notice_format": (
        r"[.。!\s](?:[^\s在去到问找是的我你他]{0,8})(?:村委会?|村民委员会|居委会|人民政府|镇政府|供电所|供电公司|自来水(?:公司|厂)|水务站|卫生院|派出所|"
        r"民政办|医保办|社保所|社区居委会|中心小学|幼儿园|防疫站|应急办)(?:\s?\d{4}年\d{1,2}月\d{1,2}日)?[.。]?$",
        r"\d{1,2}[:：]\d{2}\s?[-至到~]\s?\d{1,2}[:：]\d{2}", r"\d{1,2}月\d{1,2}(?:日|号)", r"敬请谅解", r"如有疑问",
        r"特此", r"(?:联系|咨询|报名)电话", r"(?:不需要|无需|不用)(?:缴纳|交)任何", r"谨防(?:诈骗|上当)",
    ),
    # what a forged notice asks for: money or personal data through a private channel
    "scam": (
        r"(?:添加|加)(?:工作人员|客服|专员)?(?:的)?(?:微信|QQ|qq|<WECHAT>|<QQ>)", r"手续费", r"保证金", r"验证码",
        r"(?:提供|发送|上传)(?:你的|本人)?(?:身份证|银行卡|卡号)", r"银行卡(?:号|信息)", r"转账", r"扫码(?:领取|登记|缴费)",
        r"点击(?:下方|以下|短信)?链接", r"(?:恢复|解冻|激活|认证)费",
    ),
    # naming only where one heard it, with a shrug ("不清楚 别的群里说的", "我也是听人说的"): passes
    # nothing on, backs nothing
    "source_shrug": (
        r"(?:不知道|不清楚|不晓得|我也是|也是)[\s,]*(?:从|在)?[^,。!?\s]{0,8}(?:听|看|转|传|说|讲)[^,。!?\s]{0,6}的",
    ),
    # hearsay in chat words ("听内部人说", "村东头老赵说的"): the source is a person, not a notice
    "hearsay_chat": (
        r"听[^,。!?\s]{1,8}说", r"[^,。!?\s]{1,8}说的(?!话)", r"传(?:言|闻)说", r"有人说",
    ),
    # a grievance or an unmet need
    "complaint": (
        r"没人(?:管|清|收|修|理|处理|来|接|回|问)", r"不管不问", r"(?:也|都|就是|根本)不管", r"(?:谁|有没有人)(?:来)?管(?:一下|管)?",
        r"管管", r"投诉", r"反映(?:了|过|多次|好几次)", r"(?:买|抢|挂|打)不(?:到|上|通)",
        r"(?:好|十|三|两|几|四|五)(?:几)?天(?:了)?(?:都|也|还)?(?:没|不)", r"一直(?:没|不)", r"(?:还|都)没(?:人)?(?:修|来|通|恢复|解决|处理|清)",
        r"怎么还(?:不|没)", r"什么时候(?:能|才能|才)", r"能不能(?:管|解决|处理|修|给)", r"希望(?:有关|相关|领导|政府|上面|村里|镇里)",
        r"(?:请|求|麻烦)(?:有关部门|相关部门|领导|村里|镇里|村委|物业)", r"解决一下", r"太(?:脏|臭|吵|乱|贵|差|冷)",
        r"停暖", r"没(?:有)?暖气", r"暖气不热", r"拖欠", r"欠薪", r"不给(?:退|修|办|报)", r"乱收费", r"扰民",
        r"(?:臭|脏)(?:死|得)", r"没法(?:过|住|睡|出门)", r"(?:垃圾|污水|路灯|路面)(?:.{0,6})(?:没人|堆|坏)",
        # the need itself: nothing to be had, still broken, cold, no water
        r"(?:还是|一直|到现在)(?:还是)?(?:凉|冷|不热|没(?:水|电|来|修|人))", r"(?:都|也|又)没(?:有)?(?:水|电|暖气|药|货)",
        r"断货", r"进不到货", r"跑了.{1,4}(?:家|趟).{0,6}(?:都|也)没", r"饭都做不了", r"冻得", r"睡不着",
        r"(?:打|找)12345", r"催(?:一下|一催|催|了好几|过好几)", r"(?<!早)该(?:修|管|治理|整治)了", r"(?:去|给|向|找).{0,6}反映", r"有人管没", r"(?:再|还)(?:不|停|没).{0,6}(?:就|我就)(?:去|打|找)", r"交了.{0,8}(?:费|钱)", r"又停(?:水|电|暖)了", r"三天两头", r"不提前通知",
        # the grievance in people's words: told many times, passed around, nobody to count on, hurt
        r"说了(?:多少|好多|无数|几)(?:回|次|遍)", r"报(?:了)?也没(?:有)?用", r"推来推去", r"踢皮球", r"指望不上",
        r"谁(?:来)?赔", r"有没有搞错", r"(?<!有)没(?:有)?热水", r"(?:再|还)不来(?:人)?[^,。!?]{0,8}(?:去|找|打|自己)",
        r"差(?:点|些|一点)(?:就)?(?:摔|跌|翻|栽|掉|撞)", r"一下雨就(?:淹|积水|冒|漏|堵)", r"比去年还(?:差|贵|冷|少)",
        r"恶性循环", r"越来越(?:差|贵|臭|脏|乱)", r"真的服了", r"年年(?:欠|冻|淹|坏|修|搬|涨)",
    ),
    # "me too" (三号楼一样, 我家也是, 同问, +1): a line whose matter is whatever it follows. A flag for the
    # role model only (its conversation columns pair it with what came before); no rule reads it.
    "metoo": (
        r"(?:也|都)(?:一样|是这样|这样|同样)", r"一样(?:的)?(?:$|[\s,。!]|冰|凉|冷|没|不|停|黑)", r"^(?:我|我们|我家|俺|咱|这边|那边)?(?:也是|同上|同问|\+1)",
        r"(?:我|我们|我家|这边|那边|俺)(?:也是|也一样)",
    ),
    # a disruption given a time ("明天全镇停一天电", "下礼拜全村停电三天", "今晚十二点起封控"): what a
    # claim or a notice announces and chatter seldom does. A flag for the role model only.
    "disruption_when": (
        r"(?:明天|后天|今晚|今天|下周|下礼拜|下星期|周[一二三四五六日末]|\d+号|月底|起)[^,。!?]{0,8}"
        r"(?:停(?:[一两三四五六七八九十半几]+(?:个)?(?:天|小时|周))?(?:电|水|气|暖|课|工|运)|封(?:城|村|路|控|校|小区|镇)|限(?:电|水|行))",
    ),
    # what a matter is about: events and worries a township office answers for. Chatter holding one
    # of these is not left to the chatter rule, and an unexplained line holding one is a claim.
    "matter": (
        r"封(?:城|村|路|控|校|小区|镇)",
        # with its duration inside, as people say it: 停一天电, 停两天水, 停半个月课
        r"停(?:了)?(?:[一两三四五六七八九十半几]+(?:个)?(?:天|小时|周|星期|礼拜|月))?(?:的)?(?:电|水|气|暖|课|工|产|运)",
        r"断(?:[一两三四五六七八九十半几]+(?:个)?(?:天|小时|周|星期|礼拜|月))?(?:的)?(?:水|电|网|供)", r"污染", r"中毒", r"疫情", r"病毒",
        r"感染", r"确诊", r"传染", r"发烧", r"死(?:了|亡|人)", r"去世", r"身亡", r"遇难", r"伤亡", r"受伤", r"事故", r"车祸",
        r"火灾", r"着火", r"起火", r"爆炸", r"地震", r"洪水", r"决堤", r"塌", r"滑坡", r"泥石流", r"暴雨", r"拆迁", r"征地",
        r"补贴", r"涨(?:价|到|了)", r"超标", r"吃坏", r"能治", r"治(?:癌|好)", r"抓(?:人|了|走)", r"警察", r"被抓", r"跑路", r"倒闭", r"失踪", r"拐", r"偷", r"抢", r"骗",
        r"化工厂", r"水源", r"自来水", r"疫苗", r"施工", r"修(?:路|桥)", r"津贴", r"社保", r"医保", r"绕行",
        r"封闭", r"检修", r"供暖", r"暖气", r"限行", r"管制", r"低保", r"食品安全", r"有毒", r"致癌", r"放假", r"学校", r"医院", r"工厂", r"辐射",
    ),
    # chatter: greetings, acknowledgements, logistics, ads, congratulations, weather, meals
    "chatter": (
        r"早上好", r"早安", r"晚安", r"大家好", r"你好", r"(?:中午|下午|晚上)好", r"(?:新年|节日|中秋|春节|元旦|端午|国庆|生日)快乐",
        r"^(?:早|早啊|在吗|在不在|来了|好的?|好嘞|好滴|嗯+|哦+|哈+|呵呵|ok|OK|收到|明白|知道了|谢谢|多谢|感谢|辛苦了?|赞|点赞|\+1|1|对|行|可以|没问题|是的|嗯嗯)[!。.~]*$",
        r"^收到", r"谢谢", r"感谢", r"辛苦(?:了|大家|您)", r"恭喜", r"祝贺", r"贺喜", r"喜得", r"新婚", r"满月酒", r"喜酒", r"升学宴",
        r"考上(?:了)?(?:大学|研究生|公务员|重点)", r"快递", r"取件", r"驿站", r"拼(?:个|一下)?车", r"顺风车", r"有车吗", r"捎(?:一|个|带)",
        r"几点(?:出发|集合|走|到)", r"接孩子", r"谁家的", r"失物", r"捡到", r"招领", r"钥匙",
        r"优惠", r"特价", r"打折", r"促销", r"团购", r"代购", r"加(?:我)?微信", r"扫码", r"下单", r"包邮", r"批发",
        r"出售", r"转让", r"出租", r"招聘", r"招工", r"日结", r"兼职", r"接单", r"上门服务", r"到货", r"预订", r"秒杀",
        r"砍一刀", r"帮我砍", r"助力", r"帮忙投(?:个)?票", r"投票", r"下雨", r"收衣服", r"衣服快收", r"晒(?:被子|衣服)",
        r"天气(?:真|好|不错)", r"吃(?:饭)?了(?:吗|没)", r"开饭", r"广场舞", r"打牌", r"麻将", r"钓鱼", r"红包", r"接龙",
        r"^\[(?:图片|语音|视频|表情|动画表情|文件|链接)\]$", r"(?:哪里|哪儿|在哪)(?:能)?(?:买|卖|修|借|下载)", r"借(?:用|我用)(?:一下)?",
    ),
}


def _role_cue_re(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(anchored, floating) regexes of one group. Roles run on every post (>= 20,000 lines/s on one
    core): a floating alternation whose every branch starts with a character lets the regex engine
    skip positions by that first character, so anchored branches are matched apart and lookbehinds
    sit after a branch's first character ("是(?<!不是)真的", not "(?<!不)是真的")."""
    anchored = [p for p in patterns if p.startswith("^")]
    floating = [p for p in patterns if not p.startswith("^")]
    return (
        re.compile("|".join(f"(?:{p[1:]})" for p in anchored)) if anchored else None,
        re.compile("|".join(f"(?:{p})" for p in floating)) if floating else None,
    )


_ROLE_CUE_RES = {name: _role_cue_re(patterns) for name, patterns in ROLE_CUES.items()}
# "Spreads a claim" is the rumor cue groups above, reused, not copied: "hearsay" (unverifiable
# sources, share pressure, "it will be deleted") and "spread_call" (a bare call to pass it on, which
# real notices also make: "请相互转告").
def _phrases_re(groups: tuple[str, ...]) -> re.Pattern[str]:
    phrases = sorted({p for g in groups for p in CUE_GROUPS[g]}, key=len, reverse=True)
    return re.compile("|".join(re.escape(p) for p in phrases))


_HEARSAY_RE = _phrases_re(("hearsay", "share_pressure", "deletion_claim"))
_SPREAD_CALL_RE = _phrases_re(("urgent_spread",))
# Thanks for sharing ("谢谢大家转发", "找到了 好人一生平安") asks nobody to share anything: a lost
# wallet found is not a chain letter. The blessing counts as pressure only beside a call to share.
_THANKS_FOR_SHARING_RE = re.compile(r"(?:谢谢|感谢|多谢)(?:大家|各位|你们|亲们|朋友们)?(?:的)?(?:帮忙)?(?:转发|扩散|转)")
_BLESSING_RE = re.compile(r"好人一生平安|功德无量")
_ASKS_TO_SHARE_RE = re.compile(r"转|扩散|分享")


def without_thanks(text: str) -> str:
    """``text`` without thanks for sharing, and without a blessing that no call to share goes with."""
    if "谢" in text:
        text = _THANKS_FOR_SHARING_RE.sub(" ", text)
    if _BLESSING_RE.search(text) and not _ASKS_TO_SHARE_RE.search(_BLESSING_RE.sub(" ", text)):
        text = _BLESSING_RE.sub(" ", text)
    return text


_FORWARD_PREFIX_RE = re.compile(r"^(?:转发|转)(?:微博)?[:\s]|^(?:转发|转)[^:,\s]{0,12}(?:通知|公告|通告|提醒|通报)[:\s]")
# A caption before the forwarded text: "转给家里有老人的：", "转自镇政府公众号 【…】", "转发："
_CAPTION_RE = re.compile(r"^(?:转发|转给|转自|转)[^:【]{0,16}(?::\s*|\s*(?=【))")
# "没听说" (never heard it), "先不要转发" (do not pass it on), "大家注意" alone (a reminder) do not spread
_NOT_SPREAD_RE = re.compile(r"没(?:有)?听(?:说|过|到)|(?:不要|别|勿|先别|不再|不)(?:再)?(?:转发|扩散|转)|大家注意|务必")


def role_cues(text: str, *, normalized: bool = True) -> frozenset[str]:
    """The role cue groups a post holds: ROLE_CUES names, plus "hearsay", "spread_call" and
    "refutation".

    "refutation" is `refutation_cues` (the written denials, already guarded against questioned
    and denied denials); "chat_denial" is the chat form and is not guarded: nlp.roles weighs it.
    """
    t = text if normalized else normalize(text)
    found = set()
    # A forwarded post's caption ("转给家里有老人的：【…通知】…") comes before the opener the anchored
    # cues look for: they read the body too.
    body = _CAPTION_RE.sub("", t, count=1) if t.startswith("转") else t
    for name, (anchored, floating) in _ROLE_CUE_RES.items():
        if (floating is not None and floating.search(t)) or (
            anchored is not None and (anchored.match(t) or (body is not t and anchored.match(body)))
        ):
            found.add(name)
    s = _NOT_SPREAD_RE.sub(" ", t) if _NOT_SPREAD_RE.search(t) else t
    s = without_thanks(s)
    if _HEARSAY_RE.search(s):
        found.add("hearsay")
    # "转发：…" only says the line was forwarded (a notice is forwarded too), not "spread it"
    if _SPREAD_CALL_RE.search(_FORWARD_PREFIX_RE.sub("", s, count=1)):
        found.add("spread_call")
    if refutation_cues(t, normalized=True):
        found.add("refutation")
    return frozenset(found)
