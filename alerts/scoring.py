"""The rules a subject meets, its risk score with every part explained, the alert's kind, and a
draft response (from a matched debunk, else the category's template)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from alerts.drafts import draft, response_kind
from alerts.rules import RulesConfig
from alerts.severity import Features, risk, severity_for
from alerts.subjects import Subject, matter_kind

#: Which fired rule names the alert's kind, strongest first.
_KIND_OF_RULE = {
    "debunk_match": "debunk_match",
    "rumor_probability": "rumor",
    "incident_risk": "rumor",
    "spread": "spread",
    "keyword": "keyword",
    "hot_concern": "concern",
}
_KIND_ORDER = ("debunk_match", "rumor", "spread", "keyword", "concern", "manual")


def fire_rules(f: Features, cfg: RulesConfig, subject_kind: str) -> list[dict[str, Any]]:
    """The enabled rules a subject meets, as ``{"id", "name", "kind", "points", "why"}``.

    ``subject_kind``: story | topic | post, or a matter's kind (rumor | concern | notice | unknown)."""
    fired: list[dict[str, Any]] = []

    def add(rule: Any, why: str) -> None:
        fired.append(
            {"id": rule.id, "name": rule.name, "kind": rule.kind, "points": rule.severity, "why": why}
        )

    for rule in cfg.enabled("rumor_probability"):
        if f.rumor_probability is not None and f.rumor_probability >= rule.threshold():
            add(rule, f"谣言概率 {f.rumor_probability:.2f} ≥ {rule.threshold():.2f}")
    if subject_kind == "rumor":
        for rule in cfg.enabled("incident_risk"):
            if (f.incident_risk is not None and f.incident_risk >= rule.min_risk
                    and f.post_count + (f.enquiries or 0) >= rule.min_posts):
                add(rule, f"这件事的谣言风险 {f.incident_risk:.2f} ≥ {rule.min_risk:.2f}（说法、询问、传播等各部分见下）")
    for rule in cfg.enabled("debunk_match"):
        if f.debunk_id and (f.debunk_similarity or 0) >= rule.min_similarity:
            add(rule, f"与已辟谣信息 #{f.debunk_id} 相似度 {f.debunk_similarity or 0:.2f}")
    for rule in cfg.enabled("spread"):
        if f.groups_in_window >= rule.min_groups:
            add(rule, f"{rule.window_hours:g} 小时内在 {f.groups_in_window} 个群或来源出现")
    if subject_kind in ("topic", "concern"):
        for rule in cfg.enabled("hot_concern"):
            # a topic is hot by nlp's measure; a concern incident by its complaints and questions
            hot = f.is_hot if subject_kind == "topic" else f.post_count >= rule.min_posts
            if (
                hot
                and (not rule.require_local or f.local_share > 0)
                and (not rule.categories or f.category in rule.categories)
            ):
                add(rule, "本地热点关切" if rule.require_local else "热点关切")
    for rule in cfg.enabled("keyword"):
        if rule.id in f.keyword_hits:
            add(rule, "命中关键词：" + "、".join(f.keyword_hits[rule.id][:8]))
    return fired


def alert_kind(fired: list[dict[str, Any]], default: str, subject_kind: str = "story") -> str:
    kinds = {_KIND_OF_RULE[r["kind"]] for r in fired}
    if subject_kind in ("concern", "notice"):
        return subject_kind  # a matter's kind was decided by its roles
    if subject_kind == "topic" and "concern" in kinds:
        return "concern"  # a topic is a concern first, whatever else it also meets
    return next((k for k in _KIND_ORDER if k in kinds), default)


def rule_kind(subject: Subject) -> str:
    """What :func:`fire_rules` is told the subject is (a matter by its kind)."""
    if subject.incident is not None:
        return matter_kind(subject.incident)
    return subject.kind


def score_subject(
    subject: Subject, cfg: RulesConfig, fired: list[dict[str, Any]]
) -> tuple[float, dict[str, Any], str]:
    if subject.incident is not None:
        score, parts = incident_score(subject, cfg, fired)
    else:
        score, parts = risk(subject.features, cfg, fired)
    return score, parts, severity_for(score, cfg)


def incident_score(subject: Subject, cfg: RulesConfig, fired: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    """A matter's risk score (0-100) and its explained parts.

    A rumor whose analysis computed its risk (``Incident.risk`` with ``risk_parts``: claims,
    questions, reach, velocity, cues, debunk, locality, each with a Chinese phrase) is scored from
    those parts, scaled to ``weights.incident`` points, plus the category's weight and the points of
    the rules that fired (the office's own rules file stays in charge of severity). Without them
    (an older analysis) the alert computes the parts itself from the claims. A concern is scored
    from its complaints; an official notice is information: always low.
    """
    inc = subject.incident
    assert inc is not None
    kind = matter_kind(inc)
    f = subject.features
    rules_part = {
        "value": [r["id"] for r in fired],
        "points": round(sum(r["points"] for r in fired), 2),
        "max": None,
        "text": "触发规则：" + ("、".join(r["name"] for r in fired) or "无"),
    }
    if kind == "notice":
        notice_parts: dict[str, Any] = {
            "notice": {
                "value": f.groups,
                "points": 0.0,
                "max": None,
                "text": f"官方通知在 {f.groups} 个群或来源传播：是信息，不是谣言",
            },
            "rules": rules_part | {"points": 0.0},
        }
        return 0.0, notice_parts
    matter_parts = (inc.risk_parts or {}).get("parts") if isinstance(inc.risk_parts, dict) else None
    if kind == "concern" or inc.risk is None or not isinstance(matter_parts, list) or not matter_parts:
        return risk(f, cfg, fired)
    scale = cfg.weights.incident
    parts: dict[str, Any] = {}
    for p in matter_parts:
        if not isinstance(p, dict) or not p.get("key"):
            continue
        if p["key"] == "debunk" and inc.debunk_id is not None and not p.get("contribution"):
            # a debunk matched after the matter was last counted (the claims stage points the
            # incident at it without recounting): the part says so now
            weight = float(p.get("weight") or 0.0)
            p = p | {"value": 1.0, "contribution": weight,
                     "detail": f"与辟谣库 #{inc.debunk_id} 相符（相似度 {inc.debunk_similarity or 0:.2f}）"}
        parts[f"matter_{p['key']}"] = {
            "value": p.get("value"),
            "points": round(float(p.get("contribution") or 0.0) * scale, 2),
            "max": round(float(p.get("weight") or 0.0) * scale, 2),
            "text": f"{p.get('label') or p['key']}：{p.get('detail') or ''}".rstrip("："),
        }
    cw = cfg.category_weight(f.category)
    parts["category"] = {
        "value": f.category,
        "points": round(cw * cfg.weights.category, 2),
        "max": cfg.weights.category,
        "text": f"类别：{f.category or '未分类'}（权重 {cw:.1f}）",
    }
    notes = [n for n in (inc.risk_parts or {}).get("notes") or [] if isinstance(n, str)]
    if notes:
        parts["response"] = {"value": len(notes), "points": 0.0, "max": None, "text": "；".join(notes)}
    parts["rules"] = rules_part
    total = sum(float(p["points"]) for p in parts.values())
    return round(min(100.0, total), 2), parts


# ----------------------------------------------------------------------------- suggested responses


def suggest_response(
    session: Session,
    *,
    debunk_id: int | None,
    category: str | None,
    title: str,
    places: list[str],
    cfg: RulesConfig,
    kind: str = "rumor",
) -> str | None:
    """A draft for staff to edit (alerts.drafts): the template of the matter's kind and category,
    with the matched debunk's facts where there is one. ``cfg`` is kept for callers; the wording
    now lives in the editable templates, not in the rules file."""
    del cfg
    return draft(session, kind=response_kind(kind), category=category, claim=title, places=places,
                 debunk_id=debunk_id)
