"""Comparing two rumor models fairly: on texts neither was trained on, with n and an interval.

The promotion gate used to compare candidate and active model on the whole fixed evaluation
set. The shipped model was trained on every research text, including those that hash into the
evaluation bucket, so it scored 0.999 there and refused every retrain. Now:

- every model folder may hold ``seen_keys.npy``: the (64-bit prefixes of the) text keys it was
  fitted on; a recalibrated model also saw what its base saw (``card["recalibrated_from"]``);
- :func:`fair_evalset` drops from the evaluation set every text either model saw;
- :func:`compare` scores both on what is left, with a paired bootstrap interval of the
  macro-F1 difference, per-slice figures (category, source, channel) where the labels link to
  posts, the texts on which they disagree, and calibration. It writes nothing.
- the gate (:func:`gate`) refuses to decide below :data:`MIN_EVAL_N` texts (saying how many more
  labels are needed) and refuses a candidate only when it is worse beyond the interval.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.arrays import load_npy
from core.tables import ChatGroup, Label, ModelVersion, Post, Source

SEEN_FILE = "seen_keys.npy"
#: Below this many texts neither model saw (or fewer than MIN_PER_CLASS of a class), the gate
#: does not decide: with 17 texts one text moves macro-F1 by 0.06.
MIN_EVAL_N = 50
MIN_PER_CLASS = 10
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
#: Roughly one label in EVAL_MODULUS lands in the evaluation set (nlp.retrain.in_evalset).
EVAL_SHARE = 5
MAX_DISAGREEMENTS = 50


def key_prefix(text_key: str) -> int:
    """The 64-bit prefix of a text key (a SHA-256 hex digest) kept in ``seen_keys.npy``."""
    return int(text_key[:16], 16)


def write_seen_keys(folder: Path, text_keys: Sequence[str]) -> Path:
    """Record which texts a model was fitted on (numbers only: no text leaves the machine)."""
    path = folder / SEEN_FILE
    arr = np.unique(np.array([key_prefix(k) for k in text_keys], dtype=np.uint64))
    np.save(path, arr, allow_pickle=False)
    return path


def seen_keys(folder: Path) -> np.ndarray:
    path = Path(folder) / SEEN_FILE
    if not path.is_file():
        return np.zeros(0, dtype=np.uint64)
    return load_npy(path).astype(np.uint64)


def seen_by(session: Session, row: ModelVersion, _depth: int = 0) -> np.ndarray:
    """What ``row`` was fitted on, including its base's texts for a recalibrated model."""
    own = seen_keys(Path(row.path).parent if Path(row.path).is_file() else Path(row.path))
    base = (row.card or {}).get("recalibrated_from")
    if base and _depth < 10:
        base_row = session.scalar(select(ModelVersion).where(ModelVersion.name == row.name,
                                                             ModelVersion.version == str(base)))
        if base_row is not None:
            own = np.union1d(own, seen_by(session, base_row, _depth + 1))
    return own


@dataclass
class FairSet:
    texts: list[str]
    labels: list[int]
    keys: list[str]
    excluded: int  # evaluation texts dropped because a model had seen them
    slices: list[dict[str, str]] = field(default_factory=list)  # category / source / channel per text

    @property
    def n(self) -> int:
        return len(self.labels)

    def per_class(self) -> tuple[int, int]:
        y = np.asarray(self.labels, dtype=int)
        return int((y == 1).sum()), int((y == 0).sum())


def _read_evalset(path: Path) -> list[tuple[str, str, int]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return [(r["text_hash"], r["text"], int(r["label"])) for r in csv.DictReader(handle)]


def fair_evalset(session: Session, a: ModelVersion, b: ModelVersion, evalset: Path) -> FairSet:
    """The evaluation texts neither ``a`` nor ``b`` was fitted on, with their slices."""
    seen = np.union1d(seen_by(session, a), seen_by(session, b))
    rows = _read_evalset(evalset)
    keep = [r for r in rows if not np.isin(np.uint64(key_prefix(r[0])), seen)] if len(seen) else rows
    fair = FairSet([t for _, t, _ in keep], [y for _, _, y in keep], [k for k, _, _ in keep], len(rows) - len(keep))
    fair.slices = _slices(session, fair.keys)
    return fair


def _slices(session: Session, keys: list[str]) -> list[dict[str, str]]:
    """Category, source and channel of each text, from its labels and the posts they point at."""
    info: dict[str, dict[str, str]] = {}
    for chunk in range(0, len(keys), 500):
        part = keys[chunk:chunk + 500]
        rows = session.execute(
            select(Label.text_hash, Label.category, Label.origin, Post.channel, Source.name, ChatGroup.name)
            .outerjoin(Post, Post.id == Label.post_id)
            .outerjoin(Source, Source.id == Post.source_id)
            .outerjoin(ChatGroup, ChatGroup.id == Post.group_id)
            .where(Label.text_hash.in_(part))
        )
        for text_hash, category, origin, channel, source, group in rows:
            slot = info.setdefault(text_hash, {})
            slot.setdefault("category", category or "")
            slot.setdefault("channel", channel or "")
            slot.setdefault("source", group or source or ("导入" if origin == "import" else ""))
    return [{"category": info.get(k, {}).get("category") or "未分类",
             "channel": {"chat": "群聊", "web": "网页"}.get(info.get(k, {}).get("channel", ""), "未知"),
             "source": info.get(k, {}).get("source") or "研究数据或文件"} for k in keys]


# ----------------------------------------------------------------------------- metrics


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for cls in (0, 1):
        tp = float(((pred == cls) & (y == cls)).sum())
        fp = float(((pred == cls) & (y != cls)).sum())
        fn = float(((pred != cls) & (y == cls)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def _batched_macro_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """macro-F1 of each row of resampled (B, n) label and prediction arrays."""
    scores = []
    for cls in (0, 1):
        tp = ((pred == cls) & (y == cls)).sum(axis=1).astype(float)
        fp = ((pred == cls) & (y != cls)).sum(axis=1).astype(float)
        fn = ((pred != cls) & (y == cls)).sum(axis=1).astype(float)
        denom = 2 * tp + fp + fn
        scores.append(np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0))
    return np.mean(scores, axis=0)


def bootstrap_delta(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *,
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Paired bootstrap interval of macro-F1(a) - macro-F1(b): the same resampled texts for both."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(resamples, len(y)))
    deltas = _batched_macro_f1(y[idx], pred_a[idx]) - _batched_macro_f1(y[idx], pred_b[idx])
    tail = (1 - confidence) / 2
    return float(np.quantile(deltas, tail)), float(np.quantile(deltas, 1 - tail))


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Reliability table: per score band, how many texts, mean score and share of rumors."""
    out = []
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in itertools.pairwise(edges):
        mask = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if mask.any():
            out.append({"from": round(float(lo), 2), "to": round(float(hi), 2), "n": int(mask.sum()),
                        "mean_score": float(p[mask].mean()), "rumor_share": float(y[mask].mean())})
    return out


def _summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from nlp.classifier import expected_calibration_error

    pred = (p >= 0.5).astype(int)
    tp = float(((pred == 1) & (y == 1)).sum())
    return {"n": len(y), "macro_f1": macro_f1(y, pred), "accuracy": float((pred == y).mean()) if len(y) else 0.0,
            "rumor_precision": tp / max(1.0, float(pred.sum())), "rumor_recall": tp / max(1.0, float(y.sum())),
            "ece": expected_calibration_error(y, p) if len(y) else 0.0}


# ----------------------------------------------------------------------------- the comparison


@dataclass
class Comparison:
    """Candidate (a) against active (b) on the fair evaluation set; nothing written."""

    candidate_version: str
    active_version: str
    n: int
    per_class: tuple[int, int]
    excluded: int
    candidate: dict[str, float]
    active: dict[str, float]
    ci_low: float
    ci_high: float
    slices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    @property
    def delta(self) -> float:
        return self.candidate["macro_f1"] - self.active["macro_f1"]

    @property
    def enough(self) -> bool:
        return self.n >= MIN_EVAL_N and min(self.per_class) >= MIN_PER_CLASS

    @property
    def clearly_worse(self) -> bool:
        """The whole interval of the difference lies below zero."""
        return self.ci_high < 0

    def labels_needed(self) -> int:
        """About how many more reviewed labels it takes to reach the minimum (one in EVAL_SHARE
        labels lands in the evaluation set; the scarcer class sets the pace)."""
        short_n = max(0, MIN_EVAL_N - self.n)
        rumors, others = self.per_class
        short_class = max(0, MIN_PER_CLASS - rumors, MIN_PER_CLASS - others)
        # the scarcer class arrives at its own rate: about half of the labels when balanced
        return max(short_n, 2 * short_class) * EVAL_SHARE

    def as_dict(self) -> dict[str, Any]:
        return {"candidate_version": self.candidate_version, "active_version": self.active_version, "n": self.n,
                "rumors": self.per_class[0], "non_rumors": self.per_class[1], "excluded_seen": self.excluded,
                "candidate": self.candidate, "active": self.active, "delta": self.delta,
                "ci": [self.ci_low, self.ci_high], "confidence": CONFIDENCE, "enough": self.enough,
                "min_n": MIN_EVAL_N, "min_per_class": MIN_PER_CLASS,
                "labels_needed": self.labels_needed(), "slices": self.slices,
                "disagreements": self.disagreements, "calibration": self.calibration}

    def sentence(self) -> str:
        """The comparison in one Chinese sentence, with n and the interval."""
        return (f"评估集中两个模型都没训练过的 {self.n} 条（谣言 {self.per_class[0]} / 非谣言 {self.per_class[1]}，"
                f"另有 {self.excluded} 条因某个模型训练时见过而不计）：{self.candidate_version} macro-F1 "
                f"{self.candidate['macro_f1']:.4f}，{self.active_version} {self.active['macro_f1']:.4f}，"
                f"差 {self.delta:+.4f}（{int(CONFIDENCE * 100)}% 区间 {self.ci_low:+.4f} ~ {self.ci_high:+.4f}）")


def _slice_table(y: np.ndarray, pa: np.ndarray, pb: np.ndarray, values: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        groups[v].append(i)
    rows = []
    for value, idx in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        sel = np.asarray(idx)
        rows.append({"value": value, "n": len(idx), "rumors": int(y[sel].sum()),
                     "candidate_macro_f1": macro_f1(y[sel], (pa[sel] >= 0.5).astype(int)),
                     "active_macro_f1": macro_f1(y[sel], (pb[sel] >= 0.5).astype(int))})
    return rows


def compare(session: Session, candidate: ModelVersion, active: ModelVersion, evalset: Path, *,
            details: bool = True, seed: int = 0) -> Comparison:
    """Score both models on the fair evaluation set. Writes nothing."""
    from nlp.registry import load_for_scoring

    fair = fair_evalset(session, candidate, active, evalset)
    y = np.asarray(fair.labels, dtype=int)
    pa = np.asarray(load_for_scoring(candidate.path).predict_proba(fair.texts), dtype=float) if fair.n else np.zeros(0)
    pb = np.asarray(load_for_scoring(active.path).predict_proba(fair.texts), dtype=float) if fair.n else np.zeros(0)
    pred_a, pred_b = (pa >= 0.5).astype(int), (pb >= 0.5).astype(int)
    low, high = bootstrap_delta(y, pred_a, pred_b, seed=seed) if fair.n else (-math.inf, math.inf)
    result = Comparison(candidate.version, active.version, fair.n, fair.per_class(), fair.excluded,
                        _summary(y, pa), _summary(y, pb), low, high)
    if details and fair.n:
        result.slices = {dim: _slice_table(y, pa, pb, [s[dim] for s in fair.slices])
                         for dim in ("category", "source", "channel")}
        differ = np.flatnonzero(pred_a != pred_b)
        result.disagreements = [
            {"text": fair.texts[i][:200], "label": int(y[i]), "candidate": round(float(pa[i]), 4),
             "active": round(float(pb[i]), 4), "right": "candidate" if pred_a[i] == y[i] else "active"}
            for i in differ[np.argsort(-np.abs(pa[differ] - pb[differ]))][:MAX_DISAGREEMENTS]
        ]
        result.calibration = {"candidate": calibration_bins(y, pa), "active": calibration_bins(y, pb)}
    return result
