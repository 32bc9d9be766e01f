"""When the rumor model has nothing to judge: abstention ("无法判断").

The model was trained on Weibo posts about public events. Group chats are mostly greetings,
thanks, congratulations, logistics and ads, lines it never saw, and it gives some of them
confident scores ("恭喜老李家孙子考上大学！" 0.92). Such a number misleads staff; the honest answer
is that the model cannot judge the line. A post gets no rumor decision when, without any
rumor cue (hearsay, calls to spread, scares, panic buying: `nlp.cues.CUE_GROUPS`):

* ``short``: it has fewer than `MIN_CHARS` word characters ("收到", "好的谢谢", "[图片]");
* ``chatter``: it is a greeting, thanks, congratulation, personal errand or ad (`CHATTER`);
* ``unfamiliar``: few of its character bigrams occur in the training data (coverage below
  `COVERAGE_FLOOR`, against a hashed presence profile of the training texts stored beside the
  model as ``coverage.npz``: numbers only, no strings).

A line with a rumor cue is always judged: "紧急通知！明天封路" is short and unusual, and exactly
what the team must see.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.arrays import load_npz
from nlp.cues import CUE_GROUPS
from nlp.normalize import PLACEHOLDER_RE, normalize
from nlp.scoring import _char_text, hash_char_ngrams

__all__ = [
    "ABSTAIN_ZH",
    "Abstainer",
    "build_profile",
    "load_abstainer",
    "save_profile",
]

ABSTAIN_ZH = "无法判断"
REASON_ZH = {"short": "内容过短", "chatter": "日常闲聊、通知或广告", "unfamiliar": "与训练数据差异过大"}
MIN_CHARS = 6
COVERAGE_FLOOR = 0.3
PROFILE_BITS = 2**20
PROFILE_MIN_COUNT = 3  # a bigram seen fewer times than this in training counts as unseen
PROFILE_FILE = "coverage.npz"

# Cue groups that make a line worth judging whatever else it is.
_RUMOR_GROUPS = ("urgent_spread", "share_pressure", "deletion_claim", "hearsay", "sensational",
                 "health_scare", "panic_supply", "crime_scare", "debunk")
_RUMOR_CUES = re.compile("|".join(re.escape(w) for g in _RUMOR_GROUPS for w in CUE_GROUPS[g]))
# Everyday group-chat lines: the opening of a greeting / thanks / wish, a personal errand, an ad.
CHATTER = re.compile(
    r"^(?:大家|各位|亲们|群友们)?(?:早上好|早安|上午好|中午好|下午好|晚上好|晚安|早|你好|您好|大家好|新年好|过年好)"
    r"|^(?:谢谢|多谢|感谢|辛苦了|收到|好的|好滴|嗯|哦|ok|OK|哈哈|呵呵|嘿嘿|👍)"
    r"|恭喜|祝贺|生日快乐|新婚快乐|新年快乐|节日快乐|身体健康|万事如意|喜得|满月酒|喜酒"
    r"|快递|包裹|取件|驿站|捎我|捎带|拼车|顺路|钥匙|走丢|跑丢|捡到|失物|谁家的"
    r"|出售|转让|低价|优惠|八折|九折|特价|促销|团购|接龙|私聊|加微信|欢迎(?:进店|选购|光临)|上门回收|收废品|招聘|招工"
    r"|吃饭了|吃了吗|在吗|到了吗|我到了|等你|好久不见|最近怎么样|广场舞|打麻将|斗地主"
)
_NOT_WORDS = re.compile(r"[^\w]|_", re.UNICODE)


def _words(norm: str) -> str:
    if "<" in norm:
        norm = PLACEHOLDER_RE.sub("", norm)
    return _NOT_WORDS.sub("", norm)


def build_profile(texts: Sequence[str], *, bits: int = PROFILE_BITS, min_count: int = PROFILE_MIN_COUNT) -> np.ndarray:
    """A boolean array over hashed character-bigram buckets: seen at least ``min_count`` times
    in ``texts`` (the training data)."""
    _, cols, _, _ = hash_char_ngrams([_char_text(normalize(t)) for t in texts], 2, 2, bits)
    return np.bincount(cols, minlength=bits) >= min_count


def save_profile(profile: np.ndarray, directory: str | Path) -> Path:
    path = Path(directory) / PROFILE_FILE
    np.savez_compressed(path, bits=np.packbits(profile), n=np.array([len(profile)]))
    return path


@dataclass
class Abstainer:
    """Decides which normalised texts get no rumor decision, and why (`REASON_ZH`)."""

    profile: np.ndarray | None = None
    min_chars: int = MIN_CHARS
    coverage_floor: float = COVERAGE_FLOOR

    def coverage(self, norms: Sequence[str]) -> np.ndarray:
        """Share of each text's character bigrams seen in training (1.0 without a profile)."""
        out = np.ones(len(norms))
        if self.profile is None or not len(norms):
            return out
        rows, cols, _, _ = hash_char_ngrams([_char_text(n) for n in norms], 2, 2, len(self.profile))
        seen = np.bincount(rows, weights=self.profile[cols].astype(float), minlength=len(norms))
        total = np.bincount(rows, minlength=len(norms))
        np.divide(seen, total, out=out, where=total > 0)
        return out

    def reasons(self, norms: Sequence[str]) -> list[str | None]:
        """Per normalised text: None (judge it), or why not (a key of `REASON_ZH`)."""
        cov = self.coverage(norms)
        out: list[str | None] = []
        for norm, c in zip(norms, cov.tolist(), strict=True):
            if _RUMOR_CUES.search(norm):
                out.append(None)
            elif len(_words(norm)) < self.min_chars:
                out.append("short")
            elif CHATTER.search(norm.strip()):
                out.append("chatter")
            elif c < self.coverage_floor:
                out.append("unfamiliar")
            else:
                out.append(None)
        return out

    def mask(self, norms: Sequence[str]) -> np.ndarray:
        return np.array([r is not None for r in self.reasons(norms)], dtype=bool)


def load_abstainer(model_path: str | Path | None) -> Abstainer:
    """The abstainer of a model (its ``coverage.npz`` when there is one; without it the
    coverage test is skipped and the other two still apply)."""
    if model_path:
        d = Path(model_path)
        f = (d if d.is_dir() else d.parent) / PROFILE_FILE
        if f.is_file():
            z = load_npz(f)
            n = int(z["n"][0])
            return Abstainer(np.unpackbits(z["bits"])[:n].astype(bool))
    return Abstainer()
