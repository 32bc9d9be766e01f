"""Risk score and severity, with every part kept so staff can see why.

The score (0-100) is the sum of seven parts (eight for a matter: the enquiries it drew), each
scaled to its weight in the rules file, plus the points of the rules that fired, capped at 100.
A matter whose analysis computed its rumor risk (``Incident.risk``) is scored from that instead
(see :func:`alerts.evaluate.incident_score`). Each part is stored on the alert as
``{"value": raw measurement, "points": its share of the score, "max": its weight, "text": a
Chinese phrase for the console}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from alerts.rules import SEVERITIES, RulesConfig


@dataclass
class Features:
    """What the analysis says about one subject (a story, a hot topic or a lone post)."""

    post_count: int = 0
    rumor_probability: float | None = None
    debunk_id: int | None = None
    debunk_similarity: float | None = None
    velocity: float = 0.0  # posts per hour over the recent window
    groups: int = 0  # distinct chat groups + distinct sources reached
    groups_in_window: int = 0  # ... within the spread rule's window
    local_share: float = 0.0
    category: str | None = None
    negativity: float | None = None
    is_hot: bool = False
    places: list[str] = field(default_factory=list)
    keyword_hits: dict[str, list[str]] = field(default_factory=dict)  # rule id -> words found
    enquiries: int | None = None  # questions and reactions a matter drew (None: not an incident)
    incident_risk: float | None = None  # a rumor matter's risk from the analysis (Incident.risk, 0-1)


def severity_for(score: float, cfg: RulesConfig) -> str:
    t = cfg.thresholds
    if score >= t.urgent:
        return "urgent"
    if score >= t.high:
        return "high"
    if score >= t.medium:
        return "medium"
    return "low"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def _saturating(value: float, full: float) -> float:
    """0 at 0, 1 at ``full`` and above, logarithmic between (the first copies matter most)."""
    if value <= 0:
        return 0.0
    return _clamp(math.log1p(value) / math.log1p(full))


def risk(features: Features, cfg: RulesConfig, fired: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    """The risk score and its parts. ``fired`` is the list of rules that fired (id, name, points)."""
    w = cfg.weights
    f = features
    parts: dict[str, Any] = {}

    def part(name: str, value: Any, share: float, weight: float, text: str) -> None:
        parts[name] = {"value": value, "points": round(share * weight, 2), "max": weight, "text": text}

    prob = f.rumor_probability or 0.0
    part("rumor", round(prob, 4), _clamp(prob), w.rumor, f"谣言概率 {prob:.2f}")
    sim = f.debunk_similarity or 0.0
    part(
        "debunk",
        round(sim, 4),
        _clamp(sim),
        w.debunk,
        f"与已辟谣信息相似度 {sim:.2f}" if f.debunk_id else "未匹配已辟谣信息",
    )
    part(
        "velocity",
        round(f.velocity, 2),
        _saturating(f.velocity, cfg.velocity_full),
        w.velocity,
        f"最近 {cfg.velocity_window_hours} 小时平均每小时 {f.velocity:.1f} 条",
    )
    part(
        "groups", f.groups, _saturating(f.groups, cfg.groups_full), w.groups, f"在 {f.groups} 个群或来源出现"
    )
    places = "、".join(f.places[:5])
    part(
        "local",
        round(f.local_share, 3),
        _clamp(f.local_share),
        w.local,
        f"{f.local_share:.0%} 的帖子涉及本地" + (f"（{places}）" if places else ""),
    )
    cw = cfg.category_weight(f.category)
    part("category", f.category, cw, w.category, f"类别：{f.category or '未分类'}（权重 {cw:.1f}）")
    neg = f.negativity or 0.0
    part("negativity", round(neg, 3), _clamp(neg), w.negativity, f"负面情绪 {neg:.2f}")
    if f.enquiries is not None:  # a matter: the questions and reactions it drew (never refutations)
        part(
            "enquiry",
            f.enquiries,
            _saturating(f.enquiries, cfg.groups_full),
            w.enquiry,
            f"引发 {f.enquiries} 条询问或反应",
        )
    rule_points = sum(r["points"] for r in fired)
    parts["rules"] = {
        "value": [r["id"] for r in fired],
        "points": round(rule_points, 2),
        "max": None,
        "text": "触发规则：" + ("、".join(r["name"] for r in fired) or "无"),
    }
    total = sum(p["points"] for p in parts.values())
    return round(min(100.0, total), 2), parts
