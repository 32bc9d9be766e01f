"""Negativity of a post: our own lexicon and rules, with negation, questions and complaints.

``negativity`` is in [0, 1]: 0 calm or reassured, near 1 angry or desperate. Rules:

* lexicon terms carry weights: worry, anger, complaint and lack words are positive ("买不到",
  "凭什么", "没有"), reassurance words negative ("充足", "恢复", "感谢");
* a negator shortly before a term in the same clause flips it, and two negators cancel:
  "没有口罩" is a lack (worry), "不是没有口罩" denies the lack (calm), "没恢复" is a worry;
* a lack word directly followed by another term is only a negator ("没恢复" counts once);
* questions (？, 吗, 什么时候, 怎么办 ...) add concern: people asking are people worried;
* "!" and repeated "!!!" (``<REPEAT_PUNCT>`` from normalisation) intensify.

The text is the normalised text (half-width punctuation).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nlp.concerns._match import compile_words

# Worry, anger, fear, complaint, hardship. Weights written by us; tuned on our own sentences.
NEGATIVE: dict[str, float] = {
    "买不到": 2.0, "抢不到": 2.0, "断货": 2.0, "缺货": 2.0, "脱销": 2.0, "短缺": 1.5, "紧缺": 1.5,
    "用完": 1.5, "没了": 1.5, "不够": 1.5, "缺": 1.0, "涨价": 1.5, "太贵": 2.0, "翻倍": 1.2,
    "哄抬": 2.0, "坐地起价": 2.5, "乱收费": 2.5, "骗": 1.5, "骗子": 2.5, "坑人": 2.0,
    "气死": 3.0, "愤怒": 3.0, "生气": 2.5, "火大": 2.5, "恼火": 2.5, "失望": 2.0, "寒心": 2.5,
    "害怕": 2.0, "担心": 1.5, "担忧": 1.5, "着急": 1.5, "急死": 2.5, "焦虑": 2.0, "恐慌": 2.5,
    "崩溃": 3.0, "受不了": 2.5, "熬不下去": 3.0, "活不下去": 3.0, "饿": 1.5, "困难": 1.2,
    "没人管": 3.0, "没有人管": 3.0, "不管不顾": 3.0, "投诉": 2.5, "举报": 1.2, "凭什么": 3.0,
    "太过分": 3.0, "过分": 2.0, "垃圾": 2.5, "无语": 2.0, "离谱": 2.0, "不满": 2.5, "抗议": 2.5,
    "骂": 1.5, "可怜": 1.5, "危险": 1.2, "病倒": 2.0, "死人": 2.5, "出事": 2.0, "怎么回事": 1.5,
    "到底": 1.2, "一直等": 1.5, "等了半天": 2.0, "没消息": 2.0, "没回复": 2.0, "不回复": 2.0,
    "打不通": 2.0, "关门": 1.0, "停运": 1.2, "停课": 0.8, "封了": 1.0, "隔离": 0.4, "失业": 2.0,
    "欠薪": 2.5, "拖欠": 2.5, "发不出": 2.5, "卖不出去": 2.5, "亏": 1.2, "不公平": 2.5,
    "乱": 0.6, "差": 0.6, "难": 0.6, "烦": 1.2, "惨": 1.5, "苦": 0.8,
}
# Lack words: negative by themselves, and negators of the term right after them.
LACK: dict[str, float] = {"没有": 1.5, "没": 1.0, "无": 0.6}
# Reassurance and thanks (negative weights lower negativity).
POSITIVE: dict[str, float] = {
    "充足": -1.5, "够用": -1.5, "有货": -1.5, "正常": -1.0, "恢复": -1.0, "放心": -1.5,
    "安心": -1.5, "感谢": -2.0, "谢谢": -1.5, "满意": -2.0, "及时": -1.0, "解决": -1.5,
    "辛苦了": -1.5, "点赞": -1.5, "给力": -1.5, "安全": -1.0, "开门": -0.5, "供应": -0.5,
    "辟谣": -1.0, "不用慌": -2.0, "别慌": -2.0, "不要慌": -2.0,
}
# Negators are looked for in a short window before a term, within its clause.
NEGATORS = ("不是", "并不", "并非", "不用", "不必", "不要", "没有", "不", "没", "别", "未", "无", "非")
_NEGATOR_RE = re.compile("|".join(sorted(NEGATORS, key=len, reverse=True)))
_CLAUSE_BREAK = re.compile(r"[,.!?;:，。！？；：\n]")
_WINDOW = 4

QUESTION_WORDS = ("吗", "什么时候", "啥时候", "何时", "怎么办", "怎么", "咋", "为什么", "为啥", "能不能",
                  "有没有", "是不是", "会不会", "要不要", "多久", "还要等", "谁管", "找谁", "哪里", "多少")
_QUESTION_RE = re.compile(r"\?|" + "|".join(QUESTION_WORDS))
COMPLAINT_WORDS = ("投诉", "凭什么", "没人管", "没有人管", "太过分", "不满", "举报", "抗议", "不公平",
                   "乱收费", "欠薪")
_COMPLAINT_RE = re.compile("|".join(COMPLAINT_WORDS))

_LEXICON: dict[str, float] = {**POSITIVE, **NEGATIVE, **LACK}
_TERMS = compile_words(_LEXICON)
QUESTION_WEIGHT = 0.8
SCALE = 2.5  # raw score at which negativity reaches 1 - 1/e


@dataclass(frozen=True)
class Mood:
    negativity: float
    is_question: bool
    is_complaint: bool
    terms: tuple[tuple[str, float], ...] = ()

    @property
    def is_concern(self) -> bool:
        """Worth the office's attention: a question, a complaint or clearly negative."""
        return self.is_question or self.is_complaint or self.negativity >= 0.3


def _negated(text: str, start: int) -> bool:
    lo = max(0, start - _WINDOW)
    window = text[lo:start]
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(window)]
    if breaks:
        window = window[breaks[-1]:]
    return len(_NEGATOR_RE.findall(window)) % 2 == 1


def mood(text: str) -> Mood:
    """Negativity and concern markers of one normalised text."""
    if not text:
        return Mood(0.0, False, False)
    raw = 0.0
    terms: list[tuple[str, float]] = []
    matches = list(_TERMS.finditer(text)) if _TERMS is not None else []
    for i, m in enumerate(matches):
        word = m.group(0)
        weight = _LEXICON[word]
        if word in LACK and i + 1 < len(matches) and matches[i + 1].start() - m.end() <= 1:
            continue  # "没恢复": 没 only negates what follows
        if _negated(text, m.start()):
            # A denied worry is mild reassurance; a denied reassurance is a full worry.
            weight = -weight * (0.5 if weight > 0 else 1.0)
        raw += weight
        terms.append((word, round(weight, 2)))
    is_question = _QUESTION_RE.search(text) is not None
    is_complaint = _COMPLAINT_RE.search(text) is not None
    if is_question:
        raw += QUESTION_WEIGHT
    if raw > 0:
        if "<REPEAT_PUNCT>" in text:
            raw *= 1.4
        elif "!" in text or "！" in text:
            raw *= 1.2
    negativity = 1.0 - math.exp(-raw / SCALE) if raw > 0 else 0.0
    return Mood(round(negativity, 4), is_question, is_complaint, tuple(terms))
