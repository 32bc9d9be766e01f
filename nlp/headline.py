"""Headlines: a title a person would write for a matter, cut from what its posts say.

`headline` takes candidate texts (the best first: a representative claim or complaint), drops the
forwarding hooks and share-pressure tails ("【转】", "紧急扩散！", "转发：", "不转不是中国人"),
placeholders (<URL>, <AT>, emoji) and repeated punctuation, and keeps whole clauses up to about
30 characters, so the title reads "青禾镇明天封城，所有人不准出门" rather than a keyword list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nlp.normalize import PLACEHOLDER_RE, normalize

__all__ = ["TITLE_CHARS", "clean_hooks", "headline", "is_keyword_list"]

TITLE_CHARS = 30
_MIN_CHARS = 4  # a shorter clean text says nothing ("转发", "收到")

# Leading hooks, applied repeatedly: "【转】紧急扩散！转发：..." loses all three. A bracketed lead is
# a hook only when short or a forward/urgency marker ("【转】", "【紧急通知】"), never a headline
# of its own ("【青禾镇人民政府关于停水的通知】" keeps its words).
_LEAD_RE = re.compile(
    r"^\s*(?:"
    r"【(?:转|转发|转载|转帖|扩散|紧急|紧急扩散|紧急通知|紧急提醒|重要|重要通知|必看|速看|注意|提醒)?】"
    r"|\[(?:转|转发|转载|转帖|语音转文字|语音|图片|表情|视频)\]|\((?:转|转发|转载)\)"
    # a forwarder's caption before what they forward: "转发一个 家长们都看看：【紧急扩散】…"
    # (not a notice's own name: "转发镇政府通知：明天停水" keeps "镇政府通知")
    r"|(?:转发|转给|转自|转\s)(?![^:：【\n]{0,16}(?:通知|公告|通告|通报|说明)[:：])[^:：【\n]{1,16}[:：]"
    r"|(?:转发|转载|转帖|转自[^:：!！,，\s]{0,20}|转|紧急扩散|紧急转发|紧急提醒|紧急通知|扩散|速转|急转|求扩散|求转发"
    r"|重要提醒|大家注意了?|注意了?|震惊|突发|刚刚|最新消息|速看|必看|急急急|急|好消息|大新闻|出大事了|号外|重磅"
    r"|[^\s:：，,。！!]{0,6}都看看|大家(?:都)?看看)"
    r"\s*[:：!！,，。.、~\s]+"
    r")"
)
# Trailing calls to share, applied repeatedly.
_TAIL_RE = re.compile(
    r"[\s,，。.!！~]*(?:不转不是中国人|是中国人就转|转发扩散|请转发|请扩散|扩散周知|互相转告|相互转告|请转告|速转"
    r"|转起来|大家转告|转给身边的人|告诉身边的人|转发积德|好人一生平安|看到请转|看完请转|求扩散|求转发"
    r"|扩散出去|帮忙扩散|帮忙转发|扩散|转发)[\s!！。.~,，]*$"
)
_WEIBO_CHAIN_RE = re.compile(r"//\s*<AT>\s*:?.*$")
# What a chat export writes for a message's media ("水是黄的[图片]"): nothing a title says. A mark
# between two clauses stands for a break ("停水 [图片] 大家存水" -> "停水，大家存水").
_MEDIA_MARK_RE = re.compile(r"\[(?:图片|语音|视频|表情|动画表情|文件|链接)\]")
_SPACES_RE = re.compile(r"\s+")
_REPEAT_RE = re.compile(r"([，。！？；、,.!?;])\1+")
# Half-width punctuation back to full width next to Chinese (normalize makes it half width).
_FULL = str.maketrans({",": "，", "!": "！", "?": "？", ":": "：", ";": "；", "(": "（", ")": "）"})
_CLAUSE_END = "。！？；!?;"
_CLAUSE_SEP = "，、："  # half-width "," and ":" are left between digits ("8:00", "1,000"): no clause ends there
_TRAILING = " ，,、：:；;。.~-—"
_TRAILING_LEN = _TRAILING + "…"  # what does not count in a clause's length


def clean_hooks(text: str, *, normalized: bool = False) -> str:
    """``text`` (raw or normalised) without forwarding hooks, share-pressure tails, placeholders
    and repeated punctuation; punctuation full width. ``normalized``: ``text`` is already
    nlp.normalize's output (a post's norm_text), so normalising again is skipped."""
    t = text if normalized else normalize(text)
    t = _WEIBO_CHAIN_RE.sub("", t)
    t = _MEDIA_MARK_RE.sub(" ", t)
    t = PLACEHOLDER_RE.sub(" ", t)
    t = _SPACES_RE.sub(" ", t).strip()
    for _ in range(6):
        before = t
        t = _LEAD_RE.sub("", t, count=1).strip()
        t = _TAIL_RE.sub("", t, count=1).strip()
        if t == before:
            break
    t = _HALF_MARK_RE.sub(lambda m: m.group(0).translate(_FULL), t)
    t = _SPACE_CLAUSE_RE.sub("，", t)
    t = _CJK_SPACE_RE.sub("", t)
    t = _REPEAT_RE.sub(r"\1", t)
    return t.strip(_TRAILING)


# Chat lines mark their clauses with spaces ("暖气还是凉的 交了两千多暖气费 屋里才十五度"): a space
# between two words of Chinese is a clause break, written as "，" in a title; a space next to a
# mark is dropped; one next to Latin letters or digits stays ("加微信 sgsw2000 就能领").
_SPACE_CLAUSE_RE = re.compile(r"(?<=[\u4e00-\u9fff）)」”》】])\s+(?=[\u4e00-\u9fff（(「“《【])")
_CJK_SPACE_RE = re.compile(r"(?<=[，。！？；：、（）“”「」《》【】…])\s+|\s+(?=[，。！？；：、（）“”「」《》【】…])")
# A half-width mark (normalize makes them so) next to Chinese is written full width again; between
# digits or letters it stays ("8:00-17:00", "1,000").
_HALF_MARK_RE = re.compile(r"(?<=[\u4e00-\u9fff])[,!?:;()]|[,!?:;()](?=[\u4e00-\u9fff])"
                           r"|(?<=[\u4e00-\u9fff])\([^()\u4e00-\u9fff]{0,12}\)|\([^()]{0,12}\)(?=[\u4e00-\u9fff])")


def _clauses(text: str) -> list[str]:
    """Clauses with their closing punctuation ("青禾镇明天封城，", "所有人不准出门。")."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch in _CLAUSE_END or ch in _CLAUSE_SEP:
            out.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return [c for c in out if c.strip(_TRAILING)]


# Clauses that open a message without saying what it is about: a notice's grounds ("接白沙供电所
# 通知，", "根据国家新政策，", "为改善群众出行条件，"), a document's header ("白沙镇人民政府文件，",
# "白政发〔2026〕47号，"), a salutation ("各位老板：", "家人们，"), a call to listen ("讲件事，",
# "跟大家说个事：", "原森工林业局退休的职工注意了！"): a title starts after them.
_PREAMBLE_RE = re.compile(
    r"^(?:【[^】]{1,20}】)?(?:(?:接|根据|按照|依据)[^，。！？；]{1,24}(?:通知|精神|要求|规定|安排|部署|政策|新规)"
    r"|为了?[^，。！？；]{1,24}(?:条件|质量|安全|秩序|需要|保卫战|工作|环境)"
    r"|因[^，。！？；]{0,12}(?:检修|施工|维修|改造|工作需要)"
    r"|[^，。！？；]{2,20}(?:人民政府|委员会|局|办公室|办)文件|[^，。！？；\d]{1,8}〔\d{4}〕\d{1,4}号"
    r"|(?:各位|尊敬的|亲爱的)[^，。！？；：]{0,10}(?:老板|村民|居民|家长|乡亲|朋友|群友|业主|老师|同学|蔗农|牧民|渔民"
    r"|摊主|职工|老人|姐妹|兄弟|邻居|街坊|家人|师傅|宝妈)们?(?:注意了?)?|家人们|姐妹们|兄弟们|大家好|各位好"
    r"|(?:家人们|姐妹们|兄弟们|宝子们)?谁懂啊?"
    r"|(?:我|俺|额)?(?:跟|给|和)?(?:大家|大伙|你们|恁们|各位)?(?:讲|说|港|讲下|说下)(?:个|件|一件|一个)事(?:儿|情)?[哈啊呀哦嘛]?"
    r"|[^，。！？；]{2,20}(?:的|嘅)[^，。！？；]{0,6}注意了?)[，、：！]$"
)


def _skip_preamble(clauses: list[str]) -> list[str]:
    """``clauses`` without up to two preamble clauses at their start, when something follows."""
    out = list(clauses)
    for _ in range(2):
        if len(out) < 2 or not _PREAMBLE_RE.match(out[0]):
            break
        lead = re.match(r"^【[^】]{1,20}】", out[0])
        out = out[1:]
        if lead:  # the notice's own bracketed title stays in front ("【停电通知】")
            out[0] = lead.group(0) + out[0]
    return out


def _cut(text: str, limit: int) -> str:
    """Whole clauses up to ``limit`` characters; a first clause longer than that is cut at the
    last space before the limit, else hard, and marked with an ellipsis."""
    taken = ""
    for clause in _skip_preamble(_clauses(text)):
        size = len(taken) + len(clause.rstrip(_TRAILING_LEN))
        if size > limit and (taken or size > limit + limit // 4):
            break  # (a first clause a little over the limit is taken whole rather than cut)
        taken += clause
        if clause[-1:] in _CLAUSE_END and len(taken) >= limit * 0.6:
            break  # a full sentence that already says it: stop at its end
    taken = taken.strip(_TRAILING)
    if taken:
        return taken
    head = text[:limit]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(_TRAILING) + "…"


def headline(*texts: str | None, limit: int = TITLE_CHARS, fallback: Iterable[str] = (),
             normalized: bool = False) -> str:
    """A headline for a matter: the first of ``texts`` (best first) that still says something once
    its hooks are gone, cut at a clause boundary near ``limit`` characters. ``fallback`` words
    (e.g. keywords) are joined only when no text says anything; "" when nothing does.
    ``normalized``: the texts are nlp.normalize's output already (see :func:`clean_hooks`)."""
    for text in texts:
        if not text:
            continue
        clean = clean_hooks(text, normalized=normalized)
        if len(clean) >= _MIN_CHARS:
            return _cut(clean, limit)
    words = [w for w in fallback if w]
    return "、".join(words[:4])


_LIST_SEP_RE = re.compile(r"[、,，\s]+")


def is_keyword_list(text: str | None) -> bool:
    """True for a label that is a list of words ("封城、一倍、菜价、超市"), not a sentence: what older
    topic labels were, and never a title."""
    parts = [p for p in _LIST_SEP_RE.split(text or "") if p]
    return len(parts) >= 2 and "、" in (text or "") and all(len(p) <= 4 for p in parts)
