"""The claim matcher: do two texts state the same claim? Survives rewording, shortening, hooks.

A rumor is retold: "84岁钟南山院士再度出征！" becomes "84岁钟南山院士再次出征北京", "石桥村又停水了，
听说水被污染了" becomes "听说石桥村的水被污染了，别喝". Near-duplicate machinery (MinHash) misses
those; this module scores them, and keeps the specific things apart (another village, another
amount: :mod:`nlp.anchors`).

How a pair is scored:

* each text becomes a :class:`ClaimDoc`: its match key without chat hooks ("听说", "是真的吗"),
  its words (rjieba) and character bigrams, each weighted by an IDF learned offline from the
  research corpora and shipped as hashed numbers only (no strings), and its anchors;
* :meth:`ClaimFeaturizer.pair_features` measures the pair: IDF-weighted containment of the
  smaller text in the larger (a short claim inside a long retelling) both ways, on words and on
  bigrams, weighted Jaccard, the longest shared run, the heaviest word of the smaller text the
  larger lacks, anchor agreement and conflict, lengths;
* a small classifier (trained on pairs mined from the research data, see
  ``nlp/claims_training.py``) turns the features into P(same claim); a pair whose anchors
  conflict, or that says opposite things (涨价 / 降价, 男孩 / 女孩), is never the same claim.

:class:`ClaimIndex` is the incremental, sublinear index for debunk matching and incident
grouping: ``add(key, text)`` then ``query(texts, k)``. Candidates come from an inverted index
over the rarer words and bigrams (sparse matrix blocks: one sparse product per query batch),
and only the best few candidates per text are scored by the classifier.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from core.arrays import load_npy, reading_arrays
from nlp.anchors import AnchorExtractor, Anchors, anchor_overlap, anchors_conflict, default_extractor
from nlp.claim_events import event_families
from nlp.claim_words import canonical_key, canonical_words
from nlp.scoring import numpy_twin
from nlp.segment import Segmenter
from nlp.similarity import match_key

__all__ = [
    "FEATURES",
    "MODEL_DIR",
    "ClaimDoc",
    "ClaimFeaturizer",
    "ClaimIndex",
    "ClaimMatcher",
    "claim_key",
    "load_claim_matcher",
    "save_claim_matcher",
]

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "claims"
HASH_BITS = 20
N_BUCKETS = 1 << HASH_BITS
_MASK = N_BUCKETS - 1
_WORD_SEED = 0x5EED
_GRAM_SEED = 0xB16A
_CHAR_SEED = 0xC4A2

# ----------------------------------------------------------------------------- keys

# Hooks people put around a claim in chats: "听说", "网传", "是真的吗". match_key already drops
# forward decoration ("转发", "紧急扩散"); these are the spoken ones, stripped from the key.
_LEAD_HOOK_RE = re.compile(
    r"^(?:我?听(?:人|别人|朋友|群里)?说|据说|据悉|网传|网上(?:说|传)|有人说|朋友说|群里(?:说|在传|都在传)"
    r"|大家(?:注意|小心)了?|注意了?|刚刚|刚才|今天|真的假的|求证|辟谣|好像|又)+"
)
_TAIL_HOOK_RE = re.compile(
    r"(?:是(?:不是)?真的吗?|真的吗|真的假的|是不是真的|有没有人知道|谁知道|求证|求辟谣|大家注意|注意安全"
    r"|吗|么|呢|吧|啊|呀|了吧|没有)+$"
)


def claim_key(norm_text: str | None) -> str:
    """The match key of a normalised text without spoken hooks (听说 ..., ... 是真的吗)."""
    key = match_key(norm_text)
    if len(key) > 6:
        stripped = _TAIL_HOOK_RE.sub("", _LEAD_HOOK_RE.sub("", key))
        if len(stripped) >= 4:
            return stripped
    return key


def _without_lead_hooks(norm_text: str) -> str:
    """The normalised text without the spoken hooks it opens with, for anchors: "听说市场里卖
    假大米" names no place "听说市"."""
    m = _LEAD_HOOK_RE.match(norm_text)
    return norm_text[m.end() :] if m and len(norm_text) - m.end() >= 4 else norm_text


# A denial or a negated event ("没有伤人", "未发现", "不是真的"): the retelling of a claim says
# what it says, a text that denies it is another claim (the model weighs it, a feature).
_DENIAL_RE = re.compile(r"没有|没事|未|不是|并非|否认|不实|谣言|假消息")
# A number with the thing it counts ("10桌", "3个月", "20多人"): two texts counting one thing
# with different numbers are two claims, whatever the unit (the anchors know only common units).
# Dates and times of day are retold loosely ("昨天" for "12月5日"): not counted.
_COUNT_RE = re.compile(r"(\d+(?:\.\d+)?)(?:多|几|余)?([\u4e00-\u9fff])")
_NOT_COUNTED = frozenset("月日号点时分秒年")


def _counts(key: str) -> frozenset[tuple[str, str]]:
    return frozenset((unit, value) for value, unit in _COUNT_RE.findall(key) if unit not in _NOT_COUNTED)


def counts_conflict(a: ClaimDoc, b: ClaimDoc) -> bool:
    """True when both count one thing and each has a number the other lacks ("10桌" / "20桌")."""
    if not a.counts or not b.counts:
        return False
    units = {u for u, _ in a.counts} & {u for u, _ in b.counts}
    for unit in units:
        va = {v for u, v in a.counts if u == unit}
        vb = {v for u, v in b.counts if u == unit}
        if va - vb and vb - va:
            return True
    return False


# Words that say when, not what: a claim about another thing at the same time is another claim.
_TIME_WORDS = frozenset({
    "今天", "明天", "后天", "昨天", "前天", "今晚", "昨晚", "明晚", "今年", "明年", "去年", "本月", "下个月", "上个月", "月底", "月初", "年底",
    "周末", "下周", "上周", "本周", "周一", "周二", "周三", "周四", "周五", "周六", "周日", "早上", "上午", "中午", "下午", "晚上", "夜里",
    "凌晨", "现在", "刚刚", "最近", "以后", "马上", "已经",
})
_EVENT_MIN_IDF = 6.0


def _is_event_word(word: str, anchors: Anchors) -> bool:
    """A word that says what happened: not part of a place, name or amount, no number, no time."""
    if word in _TIME_WORDS or any(ch.isdigit() for ch in word):
        return False
    for group in (anchors.places, anchors.names, anchors.amounts):
        for a in group:
            if word in a or a in word:
                return False
    return True


def _hash(seed: int, token: str) -> int:
    return zlib.crc32(token.encode("utf-8"), seed) & _MASK


# Memoised: the same words, bigrams and characters recur across posts, and hashing them was a
# sixth of the time of building a document (profile of debunk matching on the analyze bench's posts).
@lru_cache(maxsize=1 << 17)
def word_hash(word: str) -> int:
    return _hash(_WORD_SEED, word)


@lru_cache(maxsize=1 << 17)
def gram_hash(gram: str) -> int:
    return _hash(_GRAM_SEED, gram)


@lru_cache(maxsize=1 << 14)
def char_hash(ch: str) -> int:
    return _hash(_CHAR_SEED, ch)


# ----------------------------------------------------------------------------- documents


@dataclass(frozen=True, slots=True)
class ClaimDoc:
    """One text as the matcher sees it."""

    key: str
    words: Mapping[int, float]  # hashed word -> IDF
    grams: Mapping[int, float]  # hashed bigram -> IDF
    gram_seq: tuple[int, ...]  # hashed bigrams in order (for the longest shared run)
    chars: Mapping[str, float]  # character -> IDF (characters carry meaning in Chinese)
    word_chars: tuple[tuple[int, str], ...]  # (hashed word, the word) for partial word credit
    cut: bytes  # lengths of the words in order (the key cut again without the segmenter)
    anchors: Anchors
    word_weight: float
    gram_weight: float
    char_weight: float
    denial: bool = False
    counts: frozenset[tuple[str, str]] = frozenset()
    event: frozenset[int] = frozenset()  # hashed words that say what happened (no anchor, time or hook)
    families: frozenset[str] = frozenset()  # event families named (nlp/dicts/claim_events.txt)


#: The pair features, in order (the classifier's columns).
FEATURES = (
    "word_cont_small",  # IDF share of the smaller text's words found in the larger
    "word_cont_large",  # ... of the larger text's words found in the smaller
    "gram_cont_small",
    "gram_cont_large",
    "char_cont_small",  # IDF share of the smaller text's characters found in the larger
    "soft_word_cont_small",  # words of the smaller text, partly credited by their characters
    "word_jaccard",  # IDF-weighted
    "gram_jaccard",
    "run_share",  # longest run of shared bigrams / bigrams of the shorter key
    "missing_max_idf",  # the heaviest word of the smaller text that the larger lacks (scaled)
    "anchor_overlap",
    "anchor_conflict",
    "anchors_both",  # both texts name some anchor
    "log_len_small",
    "log_len_large",
    "soft_word_cont_large",  # words of the larger text, partly credited by their characters
    "char_cont_large",
    "missing_max_idf_large",  # the heaviest word of the larger text that the smaller lacks (scaled)
    "denial_mismatch",  # one side denies or negates, the other does not
    "seq_ratio",  # difflib ratio of the two keys (order-aware overlap)
    "replaced_small",  # IDF share of the smaller key's characters replaced by others in the larger
    "replaced_large",
    "max_swap",  # the heaviest single replacement (min of both sides' IDF sums), scaled
    "event_cont_small",  # IDF share of the smaller text's event words found (partly by characters) in the larger
    "event_cont_large",
    "event_missing_small",  # the heaviest event word of the smaller text with no character in the larger, scaled
    "event_missing_large",
    # Products of the above: the trees split on one feature at a time, and these contrasts
    # (a short restatement with its words found, but one heavy word of its own; a shortened
    # retelling of a long post) separate retellings from other claims in fewer splits.
    "cover_x_missing",  # word_cont_small * missing_max_idf
    "cover_x_event",  # word_cont_small * event_cont_small
    "cover_x_len_gap",  # word_cont_small * (log_len_large - log_len_small)
    "gram_cover_x_run",  # gram_cont_small * run_share
    # What happens, by event family (nlp/claim_events.py): a retelling names the claim's event
    # in other words, another claim about the same place and numbers names another event.
    "family_both",  # both texts name some event family
    "family_agree",  # ... and they share one
    "family_disagree",  # ... and they share none (停水检修 / 水被污染)
    "family_one_side",  # only one text names an event family
    "family_cover_small",  # share of the smaller text's families the larger names (1.0 if it names none)
    "family_cover_large",  # share of the larger text's families the smaller names (1.0 if it names none)
)


class ClaimFeaturizer:
    """Texts -> :class:`ClaimDoc`, pairs -> feature rows. Picklable (the segmenter is rebuilt lazily).

    ``idf`` is one array of ``2**20`` hashed IDF values shared by words and bigrams (their
    hashes use different seeds); ``max_idf`` is the value for a bucket never seen.
    """

    def __init__(
        self,
        idf: np.ndarray,
        *,
        segmenter: Segmenter | None = None,
        extractor: AnchorExtractor | None = None,
    ) -> None:
        self.idf = np.asarray(idf, dtype=np.float32)
        if self.idf.shape != (N_BUCKETS,):
            raise ValueError(f"claim IDF table must have {N_BUCKETS} values, got {self.idf.shape}")
        self.max_idf = float(self.idf.max()) if len(self.idf) else 1.0
        self.segmenter = segmenter or Segmenter()
        self.extractor = extractor  # None: the office's gazetteer (default_extractor)

    def __getstate__(self) -> dict[str, Any]:
        return {"idf": self.idf, "max_idf": self.max_idf, "segmenter": self.segmenter, "extractor": self.extractor}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def doc(self, norm_text: str) -> ClaimDoc:
        """The document of one normalised text (``nlp.normalize.normalize`` output)."""
        key = canonical_key(claim_key(norm_text))
        words = self.segmenter.cut(key) if key else []
        extractor = self.extractor or default_extractor()
        anchors = extractor.extract(_without_lead_hooks(norm_text)) if norm_text else Anchors()
        return self._build(key, words, anchors)

    def _build(self, key: str, cut: Sequence[str], anchors: Anchors) -> ClaimDoc:
        idf = self.idf
        words: dict[int, float] = {}
        word_chars: list[tuple[int, str]] = []
        # one-character synonyms ("娃" for "孩子") count as their canonical word
        for w, cw in zip(cut, canonical_words(cut), strict=True):
            h = word_hash(cw)
            if h not in words:
                words[h] = float(idf[h])
                word_chars.append((h, w))
        chars = {ch: float(idf[char_hash(ch)]) for ch in key}
        seq = tuple(gram_hash(key[i : i + 2]) for i in range(len(key) - 1)) if len(key) > 1 else (
            (gram_hash(key),) if key else ()
        )
        grams = {h: float(idf[h]) for h in seq}
        event = frozenset(h for h, w in word_chars if _is_event_word(w, anchors) and words[h] >= _EVENT_MIN_IDF)
        lengths = [len(w) for w in cut]
        cut_bytes = bytes(lengths) if max(lengths, default=0) < 256 and sum(lengths) == len(key) else b""
        return ClaimDoc(
            key, words, grams, seq, chars, tuple(word_chars), cut_bytes, anchors,
            sum(words.values()), sum(grams.values()), sum(chars.values()), bool(_DENIAL_RE.search(key)),
            _counts(key) if any(ch.isdigit() for ch in key) else frozenset(),
            event,
            event_families(key),
        )

    def pack(self, doc: ClaimDoc) -> tuple[str, bytes, Anchors]:
        """A small stand-in for a document (about a tenth of its memory): the key, the lengths
        of its words in order, its anchors. :meth:`unpack` rebuilds the document without
        segmenting or extracting again."""
        return doc.key, doc.cut, doc.anchors

    def unpack(self, packed: tuple[str, bytes, Anchors]) -> ClaimDoc:
        key, lengths, anchors = packed
        if sum(lengths) != len(key):
            return self._build(key, self.segmenter.cut(key) if key else [], anchors)
        words: list[str] = []
        pos = 0
        for n in lengths:
            words.append(key[pos : pos + n])
            pos += n
        return self._build(key, words, anchors)

    def docs(self, norm_texts: Iterable[str]) -> list[ClaimDoc]:
        return [self.doc(t) for t in norm_texts]

    def pair_features(
        self, a: ClaimDoc, b: ClaimDoc, parents: Mapping[str, frozenset[str]] | None = None
    ) -> list[float]:
        """One feature row (see :data:`FEATURES`)."""
        small, large = (a, b) if a.gram_weight <= b.gram_weight else (b, a)
        w_shared = _shared(small.words, large.words)
        g_shared = _shared(small.grams, large.grams)
        wc_s = w_shared / small.word_weight if small.word_weight else 0.0
        wc_l = w_shared / large.word_weight if large.word_weight else 0.0
        gc_s = g_shared / small.gram_weight if small.gram_weight else 0.0
        gc_l = g_shared / large.gram_weight if large.gram_weight else 0.0
        w_union = small.word_weight + large.word_weight - w_shared
        g_union = small.gram_weight + large.gram_weight - g_shared
        short = small if len(small.gram_seq) <= len(large.gram_seq) else large
        other = large if short is small else small
        run = best = 0
        for h in short.gram_seq:
            if h in other.grams:
                run += 1
                best = max(best, run)
            else:
                run = 0
        missing, soft, c_shared = _cover(small, large, w_shared)
        missing_l, soft_l, c_shared_l = _cover(large, small, w_shared)
        ratio, rep_s, rep_l, swap = _replacements(small, large)
        ev_s, miss_s = _event_cover(small, large)
        ev_l, miss_l = _event_cover(large, small)
        both = bool(a.anchors) and bool(b.anchors)
        run_share = best / len(short.gram_seq) if short.gram_seq else 0.0
        missing_s = missing / self.max_idf
        len_s, len_l = math.log1p(len(small.key)), math.log1p(len(large.key))
        return [
            wc_s,
            wc_l,
            gc_s,
            gc_l,
            c_shared / small.char_weight if small.char_weight else 0.0,
            soft / small.word_weight if small.word_weight else 0.0,
            w_shared / w_union if w_union > 0 else 0.0,
            g_shared / g_union if g_union > 0 else 0.0,
            run_share,
            missing_s,
            anchor_overlap(a.anchors, b.anchors),
            1.0 if both and anchors_conflict(a.anchors, b.anchors, parents) else 0.0,
            1.0 if both else 0.0,
            len_s,
            len_l,
            soft_l / large.word_weight if large.word_weight else 0.0,
            c_shared_l / large.char_weight if large.char_weight else 0.0,
            missing_l / self.max_idf,
            1.0 if a.denial != b.denial else 0.0,
            ratio,
            rep_s / small.char_weight if small.char_weight else 0.0,
            rep_l / large.char_weight if large.char_weight else 0.0,
            swap / (4 * self.max_idf),
            ev_s,
            ev_l,
            miss_s / self.max_idf,
            miss_l / self.max_idf,
            wc_s * missing_s,
            wc_s * ev_s,
            wc_s * (len_l - len_s),
            gc_s * run_share,
            *_family_features(small.families, large.families),
        ]

    def features(
        self,
        a: Sequence[ClaimDoc],
        b: Sequence[ClaimDoc],
        parents: Mapping[str, frozenset[str]] | None = None,
    ) -> np.ndarray:
        if len(a) != len(b):
            raise ValueError(f"score_pairs needs aligned pairs: {len(a)} texts on one side, {len(b)} on the other")
        out = np.zeros((len(a), len(FEATURES)), dtype=np.float64)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out[i] = self.pair_features(x, y, parents)
        return out


# Opposites: one side says the one where the other says the other, and neither says both
# ("涨价" / "降价", "增加" / "减少", "男孩" / "女孩", "停水" / "停电"): the wording is shared, the claim
# is not. Characters for the common ones, words where a character alone is too loose.
_OPPOSED_CHARS = (("涨", "降"), ("涨", "跌"), ("增", "减"), ("加", "减"), ("升", "降"), ("男", "女"), ("水", "电"))
_OPPOSED_WORDS = (
    ("提前", "推迟"), ("延长", "缩短"), ("允许", "禁止"), ("停课", "复课"), ("停水", "停电"), ("停工", "复工"), ("上调", "下调"),
    ("提高", "降低"), ("开放", "关闭"), ("解封", "封锁"), ("确诊", "排除"), ("上涨", "下跌"),
)


# Who did what to whom: "老师把学生打了" / "学生被老师打了" (agent, patient) = (老师, 学生).
_BA_RE = re.compile(r"([\u4e00-\u9fff]{2})把([\u4e00-\u9fff]{2})")
_BEI_RE = re.compile(r"([\u4e00-\u9fff]{2})被([\u4e00-\u9fff]{2})")


def agent_patient(key: str) -> set[tuple[str, str]]:
    """Who did it to whom, as (agent, patient) pairs of two characters: "老师把学生打了" and
    "学生被老师打了" both give (老师, 学生)."""
    out = {(m.group(1), m.group(2)) for m in _BA_RE.finditer(key)}
    out.update((m.group(2), m.group(1)) for m in _BEI_RE.finditer(key))
    return out


def roles_swapped(a: ClaimDoc, b: ClaimDoc) -> bool:
    """True when one text has X do it to Y and the other Y to X ("老师把学生" / "学生把老师")."""
    if ("把" not in a.key and "被" not in a.key) or ("把" not in b.key and "被" not in b.key):
        return False
    ra = agent_patient(a.key)
    return bool(ra) and any((y, x) in ra and x != y for x, y in agent_patient(b.key))


def opposed(a: ClaimDoc, b: ClaimDoc) -> bool:
    """True when one text says one of a pair of opposites and the other says the other, or
    the two swap who did what to whom."""
    if roles_swapped(a, b):
        return True
    ka, kb = a.key, b.key
    for x, y in _OPPOSED_CHARS:
        ax, ay, bx, by = x in a.chars, y in a.chars, x in b.chars, y in b.chars
        if (ax and not ay and by and not bx) or (ay and not ax and bx and not by):
            return True
    for x, y in _OPPOSED_WORDS:
        ax, ay, bx, by = x in ka, y in ka, x in kb, y in kb
        if (ax and not ay and by and not bx) or (ay and not ax and bx and not by):
            return True
    return False


def _event_cover(x: ClaimDoc, y: ClaimDoc) -> tuple[float, float]:
    """How much of what happens in ``x`` ``y`` says too: the IDF share of x's event words in y
    (a word y lacks gets the share of its characters y has), and the heaviest event word of x
    none of whose characters y has. 1.0, 0.0 when x names no event word."""
    total = covered = missing = 0.0
    for h, w in x.word_chars:
        if h not in x.event:
            continue
        v = x.words[h]
        total += v
        if h in y.words:
            covered += v
            continue
        share = sum(1 for ch in w if ch in y.chars) / len(w)
        covered += v * share
        if share == 0.0:
            missing = max(missing, v)
    return (covered / total if total else 1.0), missing


def _family_features(small: frozenset[str], large: frozenset[str]) -> tuple[float, ...]:
    """family_both, family_agree, family_disagree, family_one_side, family_cover_small,
    family_cover_large (see :data:`FEATURES`)."""
    shared = len(small & large)
    both = bool(small) and bool(large)
    return (
        float(both),
        float(both and shared > 0),
        float(both and shared == 0),
        float(bool(small) != bool(large)),
        shared / len(small) if small else 1.0,
        shared / len(large) if large else 1.0,
    )


def _cover(a: ClaimDoc, b: ClaimDoc, w_shared: float) -> tuple[float, float, float]:
    """How much of ``a`` ``b`` covers: the rarest word of ``a`` it lacks (its IDF), the shared word
    weight with partial credit for words ``b`` says in part, and the shared character weight."""
    missing = 0.0
    soft = w_shared
    for h, w in a.word_chars:
        if h not in b.words:
            v = a.words[h]
            missing = max(missing, v)
            # "农商行" in "农商银行", "再度" against "再次": credit the share of its characters
            soft += v * sum(1 for ch in w if ch in b.chars) / len(w)
    return missing, soft, sum(v for ch, v in a.chars.items() if ch in b.chars)


def _replacements(small: ClaimDoc, large: ClaimDoc) -> tuple[float, float, float, float]:
    """How the smaller key becomes the larger: the ratio of matched characters, the IDF of the
    characters replaced on each side, and the heaviest single replacement. A retelling deletes
    and inserts (hooks, detail); a claim about another thing keeps the frame and replaces its
    core ("中考取消体育" / "高考取消英语")."""
    # difflib indexes its second sequence: the smaller key is the cheaper one to index
    sm = difflib.SequenceMatcher(None, large.key, small.key, autojunk=False)
    rep_s = rep_l = swap = 0.0
    for op, j1, j2, i1, i2 in sm.get_opcodes():
        if op == "replace":
            ws = sum(small.chars.get(ch, 0.0) for ch in small.key[i1:i2])
            wl = sum(large.chars.get(ch, 0.0) for ch in large.key[j1:j2])
            rep_s += ws
            rep_l += wl
            swap = max(swap, min(ws, wl))
    total = len(small.key) + len(large.key)
    ratio = 2.0 * sum(b.size for b in sm.get_matching_blocks()) / total if total else 0.0
    return ratio, rep_s, rep_l, swap


def _shared(small: Mapping[int, float], large: Mapping[int, float]) -> float:
    if len(small) > len(large):
        small, large = large, small
    return sum(v for h, v in small.items() if h in large)


# ----------------------------------------------------------------------------- the matcher


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    """The process's thread pools, found once: `threadpool_limits` rescans the loaded libraries
    (/proc/self/maps) on every call, half the cost of scoring a few pairs."""
    return ThreadpoolController()


class ClaimMatcher:
    """P(same claim) for pairs of normalised texts, and an incremental index. Picklable.

    ``model`` is any fitted classifier with ``predict_proba`` over :data:`FEATURES`;
    ``threshold`` the operating point (chosen for precision >= 0.95 on the tune data, see the
    model card); ``parents`` the place hierarchy for anchor conflicts (the office's gazetteer
    when None).
    """

    def __init__(
        self,
        featurizer: ClaimFeaturizer,
        model: Any,
        *,
        threshold: float = 0.5,
        parents: Mapping[str, frozenset[str]] | None = None,
        version: str = "",
    ) -> None:
        self.featurizer = featurizer
        self.model = model
        self.threshold = threshold
        self.parents = dict(parents) if parents is not None else None
        self.version = version

    def _predictor(self) -> Any:
        """What computes the probabilities: ``model``'s numpy twin where it has one
        (nlp.scoring.numpy_twin: the same probabilities to the bit, at a fifth of the CPU of
        scikit-learn's predict_proba on the few pairs a call scores), else ``model`` itself.
        Built once per model (a new ``model`` gets its own)."""
        cached = self.__dict__.get("_twin")
        if cached is None or cached[0] is not self.model:
            cached = self.__dict__["_twin"] = (self.model, numpy_twin(self.model) or self.model)
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_twin"}

    def _parents(self) -> Mapping[str, frozenset[str]]:
        if self.parents is not None:
            return self.parents
        return default_extractor().parents

    def doc(self, norm_text: str) -> ClaimDoc:
        return self.featurizer.doc(norm_text)

    def score_docs(self, a: Sequence[ClaimDoc], b: Sequence[ClaimDoc]) -> np.ndarray:
        """P(same claim) for aligned pairs of documents."""
        if not len(a):
            return np.zeros(0)
        parents = self._parents()
        if parents:
            a, b = self._lift_places(a, b, parents)
        x = self.featurizer.features(a, b, parents)
        model = self._predictor()
        # features are only ever appended: an older model reads the columns it was trained on
        x_model = x[:, : getattr(model, "n_features_in_", x.shape[1])]
        if model is self.model:
            # One thread: the trees are small, and OpenMP threads on a busy machine cost 7x the work.
            with _threadpools().limit(limits=1, user_api="openmp"):
                p = model.predict_proba(x_model)[:, 1]
        else:
            p = model.predict_proba(x_model)[:, 1]
        # One claim key (the same words once hooks are gone and wording is canonical): the same
        # claim, whatever the model makes of the lengths.
        p[[d.key == e.key for d, e in zip(a, b, strict=True)]] = 1.0
        # Another village, another amount, the opposite change: another claim, whatever the
        # wording shares.
        p[x[:, FEATURES.index("anchor_conflict")] > 0] = 0.0
        p[[opposed(d, e) or counts_conflict(d, e) for d, e in zip(a, b, strict=True)]] = 0.0
        empty = np.array([not d.key or not e.key for d, e in zip(a, b, strict=True)])
        p[empty] = 0.0
        return np.asarray(p, dtype=np.float64)

    def _lift_places(
        self, a: Sequence[ClaimDoc], b: Sequence[ClaimDoc], parents: Mapping[str, frozenset[str]]
    ) -> tuple[list[ClaimDoc], list[ClaimDoc]]:
        """Pairs whose places nest (石桥村 lies in 青禾镇) measured as if both named the larger
        place: a claim about the town covers its villages, and the model, which learned that
        another place name is another claim, would count the village as a word the other lacks.
        Rare (both sides name places, and they differ), so the rebuilt documents are not cached."""
        a, b = list(a), list(b)
        for i, (d, e) in enumerate(zip(a, b, strict=True)):
            pd, pe = d.anchors.places, e.anchors.places
            if pd and pe and pd != pe:
                a[i] = self._lifted(d, pe, parents)
                b[i] = self._lifted(e, pd, parents)
        return a, b

    def _lifted(self, doc: ClaimDoc, other: frozenset[str], parents: Mapping[str, frozenset[str]]) -> ClaimDoc:
        """``doc`` with each of its places that lies inside one of ``other``'s named as that place."""
        key, places = doc.key, set(doc.anchors.places)
        for place in sorted(doc.anchors.places - other):
            outer = sorted(parents.get(place, frozenset()) & other)
            if outer and place in key:
                key = key.replace(place, outer[0])
                places.discard(place)
                places.add(outer[0])
        if key == doc.key:
            return doc
        fz = self.featurizer
        return fz._build(key, fz.segmenter.cut(key), dc_replace(doc.anchors, places=frozenset(places)))

    def score_pairs(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """P(same claim) for aligned pairs of texts (normalised: ``nlp.normalize.normalize``)."""
        if len(a) != len(b):
            raise ValueError(f"score_pairs needs aligned pairs: {len(a)} texts on one side, {len(b)} on the other")
        return self.score_docs(self.featurizer.docs(a), self.featurizer.docs(b))

    def same_claim(self, a: str, b: str) -> bool:
        return bool(self.score_pairs([a], [b])[0] >= self.threshold)

    def index(self, *, candidates: int = 10) -> ClaimIndex:
        """An empty incremental index that scores with this matcher."""
        return ClaimIndex(self, candidates=candidates)


# ----------------------------------------------------------------------------- the index


class ClaimIndex:
    """Incremental claim index: ``add(key, text)``, ``remove(key)``, ``query(texts, k)``.

    Retrieval is an inverted index kept as sparse matrix blocks (items x hashed tokens, IDF
    weights, only tokens with IDF >= ``min_idf``): one sparse product per query batch gives
    every indexed item's shared weight with every query, which only touches the posting lists
    of the query's tokens. The ``candidates`` best items by shared-weight containment are then
    scored by the classifier. Added items wait in a small pending list and are frozen into a
    block every ``block_size`` adds, so adding costs no rebuild.
    """

    def __init__(
        self,
        matcher: ClaimMatcher,
        *,
        candidates: int = 10,
        min_idf: float = 3.0,
        min_share: float = 0.3,
        block_size: int = 2048,
    ) -> None:
        self.matcher = matcher
        self.candidates = candidates
        # Rows sharing less than this share of the smaller side's rare-token weight are no
        # candidates (a retelling shares far more; the classifier never sees the rest).
        self.min_share = min_share
        self.min_idf = min_idf
        self.block_size = block_size
        self._keys: list[Any] = []  # row -> key (None once removed)
        self._row: dict[Any, int] = {}
        # Rows keep a packed document (about 1 KB); the documents of recent candidates are cached.
        self._packed: list[tuple[str, bytes, Anchors] | None] = []
        self._cache: dict[int, ClaimDoc] = {}
        self.cache_size = 4096
        self._pending_tokens: list[dict[int, float]] = []
        self._weights: list[float] = []  # retrieval weight of each row
        self._blocks: list[tuple[int, sp.csc_matrix]] = []  # (first row, tokens x rows)
        self._pending: list[int] = []

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, key: Any) -> bool:
        return key in self._row

    def _tokens(self, doc: ClaimDoc) -> dict[int, float]:
        """Retrieval tokens: rarer words and bigrams (bigram buckets offset to keep them apart)."""
        lo = self.min_idf
        out = {h: v for h, v in doc.words.items() if v >= lo}
        out.update({h + N_BUCKETS: v for h, v in doc.grams.items() if v >= lo})
        return out

    def add(self, key: Any, text: str) -> None:
        """Index a normalised text under ``key`` (a key already present is replaced)."""
        self.add_doc(key, self.matcher.doc(text))

    def add_doc(self, key: Any, doc: ClaimDoc) -> None:
        if key in self._row:
            self.remove(key)
        row = len(self._keys)
        self._keys.append(key)
        self._row[key] = row
        self._packed.append(self.matcher.featurizer.pack(doc))
        tokens = self._tokens(doc)
        self._weights.append(sum(tokens.values()))
        self._pending.append(row)
        self._pending_tokens.append(tokens)
        if len(self._pending) >= self.block_size:
            self._freeze()

    def add_many(self, items: Iterable[tuple[Any, str]]) -> None:
        for key, text in items:
            self.add(key, text)

    def remove(self, key: Any) -> None:
        row = self._row.pop(key, None)
        if row is not None:
            # the row stays in its block (its postings are skipped: its key is None)
            self._keys[row] = None
            self._packed[row] = None
            self._cache.pop(row, None)

    def _doc(self, row: int) -> ClaimDoc | None:
        doc = self._cache.get(row)
        if doc is None:
            packed = self._packed[row]
            if packed is None:
                return None
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            doc = self._cache[row] = self.matcher.featurizer.unpack(packed)
        return doc

    @staticmethod
    def _matrix(token_rows: Sequence[Mapping[int, float]]) -> sp.csr_matrix:
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        for toks in token_rows:
            indices.extend(toks)
            data.extend(toks.values())
            indptr.append(len(indices))
        m = sp.csr_matrix(
            (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
            shape=(len(token_rows), 2 * N_BUCKETS),
        )
        return m.T.tocsr()  # tokens x rows: a query row times this is one posting-list pass

    def _freeze(self) -> None:
        if self._pending:
            self._blocks.append((self._pending[0], self._matrix(self._pending_tokens)))
            self._pending = []
            self._pending_tokens = []

    def _query_matrix(self, docs: Sequence[ClaimDoc]) -> sp.csr_matrix:
        indptr = [0]
        indices: list[int] = []
        for doc in docs:
            indices.extend(self._tokens(doc))
            indptr.append(len(indices))
        return sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
            shape=(len(docs), 2 * N_BUCKETS),
        )

    def candidates_of(self, docs: Sequence[ClaimDoc]) -> list[list[int]]:
        """For each document, the rows with the most shared token weight relative to the
        smaller side (at most ``candidates``)."""
        out: list[list[int]] = [[] for _ in docs]
        if not docs or not self._row:
            return out
        q = self._query_matrix(docs)
        qw = np.array([sum(self._tokens(d).values()) for d in docs])
        weights = np.asarray(self._weights, dtype=np.float64)
        parts: list[tuple[int, sp.csr_matrix]] = list(self._blocks)
        if self._pending:
            parts.append((self._pending[0], self._matrix(self._pending_tokens)))
        qs: list[np.ndarray] = []
        rs: list[np.ndarray] = []
        ss: list[np.ndarray] = []
        for first, block in parts:
            shared = (q @ block).tocoo()  # queries x rows of this block
            if not shared.nnz:
                continue
            rows = shared.col.astype(np.int64) + first
            score = shared.data / np.maximum(np.minimum(qw[shared.row], weights[rows]), 1e-9)
            keep = score >= self.min_share
            qs.append(shared.row[keep].astype(np.int64))
            rs.append(rows[keep])
            ss.append(score[keep])
        if not qs:
            return out
        qa, ra, sa = np.concatenate(qs), np.concatenate(rs), np.concatenate(ss)
        # best first within each query, then the first `candidates` of each query (no Python loop
        # over all pairs: a common word can touch thousands of rows)
        order = np.lexsort((-sa, qa))
        qa, ra = qa[order], ra[order]
        starts = np.searchsorted(qa, qa, side="left")
        rank = np.arange(len(qa)) - starts
        take = rank < self.candidates
        for qi, r in zip(qa[take].tolist(), ra[take].tolist(), strict=True):
            if self._keys[r] is not None:
                out[qi].append(r)
        return out

    def query_docs(
        self, docs: Sequence[ClaimDoc], k: int = 5, min_score: float | None = None
    ) -> list[list[tuple[Any, float]]]:
        limit = self.matcher.threshold if min_score is None else min_score
        cands = self.candidates_of(docs)
        left: list[ClaimDoc] = []
        right: list[ClaimDoc] = []
        owner: list[tuple[int, int]] = []
        for qi, rows in enumerate(cands):
            for r in rows:
                doc = self._doc(r)
                if doc is not None:
                    left.append(docs[qi])
                    right.append(doc)
                    owner.append((qi, r))
        out: list[list[tuple[Any, float]]] = [[] for _ in docs]
        if not owner:
            return out
        scores = self.matcher.score_docs(left, right)
        for (qi, r), s in zip(owner, scores.tolist(), strict=True):
            if s >= limit and s > 0.0:  # a conflict (0) is never returned, whatever min_score
                out[qi].append((self._keys[r], float(s)))
        for hits in out:
            hits.sort(key=lambda x: -x[1])
            del hits[k:]
        return out

    def query(
        self, texts: Sequence[str], k: int = 5, min_score: float | None = None
    ) -> list[list[tuple[Any, float]]]:
        """For each normalised text, up to ``k`` indexed keys stating the same claim (P >=
        ``min_score``, default the matcher's threshold), best first."""
        return self.query_docs(self.matcher.featurizer.docs(texts), k, min_score)


# ----------------------------------------------------------------------------- saving and loading

IDF_FILE = "idf.npy"
MODEL_FILE = "model.skops"
CARD_FILE = "card.json"
#: What a claim model file may hold (skops refuses anything else).
TRUSTED_TYPES = [
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
]


class ClaimModelMissing(RuntimeError):
    """No trained claim matcher where one was looked for."""


def save_claim_matcher(matcher: ClaimMatcher, folder: Path, card: Mapping[str, Any]) -> None:
    """Numbers only: the hashed IDF table (float16), the classifier (skops) and its card."""
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / IDF_FILE, matcher.featurizer.idf.astype(np.float16))
    sio.dump(matcher.model, folder / MODEL_FILE)
    (folder / CARD_FILE).write_text(json.dumps(dict(card), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def load_matcher_files(folder: Path) -> ClaimMatcher:
    import skops.io as sio

    for name in (IDF_FILE, MODEL_FILE, CARD_FILE):
        if not (folder / name).is_file():
            raise ClaimModelMissing(
                f"claim matcher {folder} lacks {name}: retrain with `python -m nlp.claims_training --out {folder}`"
            )
    info = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    untrusted = sio.get_untrusted_types(file=folder / MODEL_FILE)
    unknown = [t for t in untrusted if t not in TRUSTED_TYPES]
    if unknown:
        raise ClaimModelMissing(f"claim model {folder / MODEL_FILE} holds unexpected types {unknown}: refusing to load it")
    with reading_arrays():
        model = sio.load(folder / MODEL_FILE, trusted=untrusted)
    idf = load_npy(folder / IDF_FILE).astype(np.float32)
    return ClaimMatcher(
        ClaimFeaturizer(idf), model, threshold=float(info["threshold"]), version=str(info.get("version", folder.name))
    )


def active_version(base: Path = MODEL_DIR) -> str:
    active = base / "ACTIVE"
    if not active.is_file():
        raise ClaimModelMissing(
            f"no claim matcher in {base}: train one with `python -m nlp.claims_training --out {base}/<version>`"
        )
    return active.read_text(encoding="utf-8").strip()


@lru_cache(maxsize=4)
def _load(path: str) -> ClaimMatcher:
    return load_matcher_files(Path(path))


def load_claim_matcher(version: str | None = None, base: Path = MODEL_DIR) -> ClaimMatcher:
    """The shipped claim matcher (``models/claims/<ACTIVE>/``), loaded once per process."""
    v = version or active_version(base)
    return _load(str(base / v))


def card(version: str | None = None, base: Path = MODEL_DIR) -> dict[str, Any]:
    v = version or active_version(base)
    data: dict[str, Any] = json.loads((base / v / CARD_FILE).read_text(encoding="utf-8"))
    return data
