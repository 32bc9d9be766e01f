"""Score drift: is the active model seeing a different world than the one it was trained on?

Each analyze run stores a histogram of the rumor scores it produced (``analysis_runs``). We
compare the last day's scores with the model's reference distribution (its training-time scores
from the model card, or, when the card has none, the model's own first runs here) and warn when
the mean score or the share of high scores moves beyond a threshold. Both shifts are easy to say
in words for the digest and the console badge.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.tables import AnalysisRun, ModelVersion

HIGH = 0.8  # a "high" score
MEAN_SHIFT = 0.10
HIGH_SHARE_SHIFT = 0.10
MIN_POSTS = 200  # fewer scored posts than this say nothing reliable


@dataclass
class Distribution:
    n: int
    mean: float
    high_share: float


@dataclass
class DriftStatus:
    drifting: bool
    message: str  # Chinese, for the digest and the console
    recent: Distribution | None
    reference: Distribution | None


def _from_histogram(counts: list[int]) -> Distribution:
    c = np.asarray(counts, dtype=float)
    n = int(c.sum())
    if n == 0:
        return Distribution(0, 0.0, 0.0)
    edges = np.linspace(0.0, 1.0, len(c) + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    return Distribution(n, float((c * centers).sum() / n), float(c[edges[:-1] >= HIGH - 1e-9].sum() / n))


def _sum_histograms(runs: list[AnalysisRun]) -> list[int]:
    hists = [r.score_histogram for r in runs if r.score_histogram]
    if not hists:
        return []
    width = max(len(h) for h in hists)
    total = np.zeros(width)
    for h in hists:
        if len(h) == width:
            total += np.asarray(h, dtype=float)
    return total.astype(int).tolist()


def _reference(session: Session, version: ModelVersion) -> Distribution | None:
    ref = version.reference_distribution or {}
    if ref.get("bins"):
        return _from_histogram(ref["bins"])
    first = list(session.scalars(select(AnalysisRun).where(AnalysisRun.model_version_id == version.id)
                                 .order_by(AnalysisRun.id).limit(5)))
    dist = _from_histogram(_sum_histograms(first))
    return dist if dist.n >= MIN_POSTS else None


def drift_status(session: Session, *, now: dt.datetime | None = None,
                 window: dt.timedelta = dt.timedelta(hours=24)) -> DriftStatus:
    version = session.scalar(select(ModelVersion).where(ModelVersion.name == "rumor", ModelVersion.status == "active"))
    if version is None:
        return DriftStatus(False, "尚未启用模型", None, None)
    since = (now or dt.datetime.now(dt.UTC)) - window
    runs = list(session.scalars(select(AnalysisRun).where(AnalysisRun.model_version_id == version.id,
                                                          AnalysisRun.started_at >= since)))
    recent = _from_histogram(_sum_histograms(runs))
    reference = _reference(session, version)
    if reference is None or recent.n < MIN_POSTS:
        return DriftStatus(False, f"评分数据不足（近 24 小时 {recent.n} 条），暂不判断模型漂移", recent, reference)
    mean_shift = recent.mean - reference.mean
    high_shift = recent.high_share - reference.high_share
    if abs(mean_shift) > MEAN_SHIFT or abs(high_shift) > HIGH_SHARE_SHIFT:
        direction = "升高" if high_shift > 0 or mean_shift > 0 else "降低"
        return DriftStatus(True, (
            f"模型 {version.version} 评分分布明显{direction}：高分（≥{HIGH}）占比 {recent.high_share:.0%}"
            f"（基准 {reference.high_share:.0%}），平均分 {recent.mean:.2f}（基准 {reference.mean:.2f}）。"
            "建议抽查并标注近期帖子：谣言大多仍排在前面时，在模型页生成校准版本（yuqing recalibrate）；漏判整类谣言时用新标注重新训练。"), recent, reference)
    return DriftStatus(False, f"模型 {version.version} 评分分布正常（近 24 小时 {recent.n} 条）", recent, reference)
