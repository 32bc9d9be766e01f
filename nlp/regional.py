"""Regional chat words in their common Mandarin form, for the role rules and the role model.

Township chats are written as people speak: southwestern 莫得/晓得/啥子/啷个/屋头, northeastern
咋整/嘎哈/俺/扯犊子, central plains 木有/弄啥嘞/恁们, Cantonese-influenced 冇/唔系/佢/嘅/边度/系咪, Wu-
influenced 阿拉/侬/伐/呒没/事体/覅, Minnan 无影/敢是/歹势/免惊/代志, Xiang and Gan 么子/冇得, northwestern
额/嫑/么有/做撒, and the southern 讲 for 说. The role
cues (`nlp.cues.ROLE_CUES`) are written in common Mandarin and the role model learns character
n-grams of the townships it was trained on, so a denial in 冇呢回事 or a question ending in 伐 is
missed in a township that writes that way. `plain_mandarin` rewrites the function words (not the
content words: a matter is named the same way everywhere) before either looks at the post.

The table is our own, written for this project. Every replacement is idempotent (no output contains
a source), so text that has been through it passes through unchanged, and only multi-character
words or words that are not also common Mandarin are mapped ("系" alone is 是 in Cantonese but
关系/系统 in Mandarin: only the unambiguous 系唔系/唔系 are). Left out on purpose, being Mandarin too:
伊拉 (伊拉克), 会使 (这会使), 么个 (怎么个), 听日 (听日本人说), 有影 (有影响), 嘎嘎 (laughter).
"""

from __future__ import annotations

import re

__all__ = ["REGIONAL_WORDS", "plain_mandarin"]

REGIONAL_WORDS: dict[str, str] = {
    # southwestern (Sichuan, Chongqing, Guizhou, Yunnan)
    "莫得": "没得", "啥子": "啥", "晓得": "知道", "啷个": "怎么", "屋头": "家里", "娃儿": "孩子",
    "一哈": "一下", "莫信": "别信", "莫听": "别听", "莫慌": "别慌", "莫乱": "别乱", "莫传": "别传",
    "莫去": "别去", "莫再": "别再", "莫要": "不要", "别个": "别人", "巴适": "舒服", "安逸": "舒服", "耍朋友": "谈恋爱",
    # northern and northeastern
    "咋整": "咋办", "嘎哈": "干啥", "整啥": "干啥", "俺们": "我们", "俺家": "我家", "俺": "我",
    "这嘎达": "这里", "这疙瘩": "这里", "那疙瘩": "那里", "老鼻子": "很多", "瞅着": "看着",
    "唠嗑": "聊天", "啥玩意": "什么东西",
    # Cantonese-influenced
    "系唔系": "是不是", "唔系": "不是", "唔好": "不要", "唔该": "谢谢", "冇": "没有", "嘅": "的",
    "佢哋": "他们", "佢": "他", "咗": "了", "边度": "哪里", "边个": "谁", "点解": "为什么",
    "啱啱": "刚刚", "呢回事": "这回事", "咁嘅事": "这事", "乜嘢": "什么", "咩事": "什么事",
    "吓亲": "吓到", "好恐怖": "好可怕", "今朝": "今天",
    # Wu-influenced (Shanghai, Zhejiang, south Jiangsu)
    "阿拉": "我们", "侬": "你", "呒没": "没有", "事体": "事", "交关": "很", "明朝": "明天",
    "吓煞": "吓死", "阿是": "是不是", "晓得伐": "知道吗",
    "覅": "不要", "勿是": "不是", "弗是": "不是", "勿要": "不要", "弗要": "不要",
    "哪能": "怎么", "啥个": "什么", "辰光": "时候", "昨日": "昨天", "勿晓得": "不知道", "弗晓得": "不知道",
    # central plains and Shandong (Henan, Shandong, north Anhui, north Jiangsu)
    "木有": "没有", "弄啥嘞": "干啥", "弄啥哩": "干啥", "得劲": "舒服", "夜儿个": "昨天", "夜个": "昨天",
    "今儿个": "今天", "明儿个": "明天", "后儿个": "后天", "前儿个": "前天", "恁们": "你们", "恁家": "你家", "俺娘": "我妈", "中不中": "行不行",
    "瞎咧咧": "胡说", "胡咧咧": "胡说", "瞎胡扯": "胡扯",
    # more northeastern
    "净扯犊子": "胡扯", "扯犊子": "胡扯", "净扯": "胡扯", "瞎白话": "胡说", "咋地": "怎么了", "埋汰": "脏",
    # Min (Minnan: Fujian, Taiwan, Chaoshan; Hokkien as typed in characters)
    "无影无踪": "不见踪影", "无影": "没有这回事", "嘸影": "没有这回事", "有影无影": "是真是假",
    "敢是": "是不是", "毋是": "不是", "毋知": "不知道", "唔知": "不知道", "嘸知": "不知道",
    "歹势": "不好意思", "拍谢": "不好意思", "免惊": "别怕", "惊死": "吓死", "按怎": "怎么", "安怎": "怎么",
    "啥物": "什么", "佗位": "哪里", "代志": "事", "囡仔": "孩子", "阮兜": "我家", "阮厝": "我家", "厝内": "家里",
    "袂使": "不行", "毋通": "不要", "嘸通": "不要", "嘸": "没有",
    # Hakka and more Cantonese (Guangdong, Guangxi, Hong Kong)
    "系咪": "是不是", "真系": "真的", "唔使": "不用", "唔会": "不会", "唔得": "不行", "点算": "怎么办",
    "琴日": "昨天", "寻日": "昨天", "睇到": "看到", "睇": "看", "揾": "找", "咁": "这么", "嘢": "东西", "啲": "些",
    "係": "是",
    # Xiang and Gan (Hunan, Jiangxi)
    "搞么子": "干什么", "么子": "什么", "冇得": "没有", "晓得啵": "知道吗",
    # northwestern (Shaanxi, Gansu, Ningxia)
    "嫑": "不要", "么有": "没有", "做撒": "做啥", "干撒": "干啥", "为撒": "为啥", "说撒": "说啥", "有撒": "有啥",
}
# Words that are regional only in some places of a sentence, matched with what may not surround them:
# 讲 is 说 across the south (听隔壁人讲的) but not in 讲究, 讲座, 演讲; 勿 is Wu 不 (勿好讲) but not in
# 请勿, 切勿; 额 is the northwest's 我 (额家) but not in 金额, 名额, 额度; sentence-final 咧 is 了 (死咧).
_CONTEXT_WORDS: dict[str, tuple[str, str]] = {
    "讲": ("说", r"(?<![演宣主开])讲(?![究座课解台义师理述堂价卫道稿])"),
    "勿": ("不", r"(?<![请切务])勿"),
    "额": ("我", r"(?<![金数名超限定余差份配总面税巨])额(?![度外头])"),
    "咧": ("了", r"(?<![大嘴咧])咧(?![嘴开])(?=$|[\s?!,.。，！？])"),
}
# Sentence-final 伐 asks (Wu): "明朝停电伐" -> "明天停电吗"; particles after a spoken yes-no tag
# ("还去学校不嘛", "来水没哦") only soften it: "…不" / "…没" then asks as the rules expect.
_END = r"(?=$|[\s?!,.。，！？])"
_ONE_RE = re.compile(
    "|".join(re.escape(w) for w in sorted(REGIONAL_WORDS, key=len, reverse=True))
    + rf"|(?P<ask>伐){_END}|(?P<soft>[不没])(?:嘛|哦|噻|咯|哟|撒|嘞){_END}"
    + "".join(f"|(?P<c{i}>{pattern})" for i, (_w, pattern) in enumerate(_CONTEXT_WORDS.values()))
)
_CONTEXT_BY_GROUP = {f"c{i}": plain for i, (plain, _p) in enumerate(_CONTEXT_WORDS.values())}


def _replace(m: re.Match[str]) -> str:
    if m.group("ask"):
        return "吗"
    if m.group("soft"):
        return m.group("soft")
    if m.lastgroup in _CONTEXT_BY_GROUP:
        return _CONTEXT_BY_GROUP[m.lastgroup]
    return REGIONAL_WORDS[m.group(0)]


# Roles run on every post and most posts hold no regional word: one search for a character that
# only regional words hold (each word keeps at least one of its characters out of _COMMON) answers
# for them, at a fifth of the full rewrite's cost.
_COMMON = frozenset("一要这那好今明听点呢老不没有是事个啥下去信传乱慌们家里着看什么吓我你他的了得头儿关度拉该意")
_KEYS = ({c for w in REGIONAL_WORDS for c in (set(w) - _COMMON or set(w))} | {"伐", "嘛", "哦", "噻", "咯", "哟", "撒", "嘞"}
         | set(_CONTEXT_WORDS))
_KEY_RE = re.compile("[" + re.escape("".join(sorted(_KEYS))) + "]")


def plain_mandarin(norm_text: str) -> str:
    """The normalised post with its regional function words in common Mandarin (idempotent)."""
    if not _KEY_RE.search(norm_text):
        return norm_text
    return _ONE_RE.sub(_replace, norm_text)
