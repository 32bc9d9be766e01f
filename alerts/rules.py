"""Alert rules: the YAML the office edits, validated into typed objects.

A rules file has the severity model (weights of each risk part, category weights, the score
thresholds of each severity), the folding margins, per-category response templates, and a list
of rules. A rule says *when* a subject (an incident, a story, a hot topic, a lone post) deserves an alert and
how many points it adds to the risk score. Every rule has an ``id``, a Chinese ``name`` shown to
staff, an ``enabled`` flag and a ``severity`` contribution (points on the 0-100 risk scale).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput
from core.settings import get_settings

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules.yaml"
SEVERITIES = ("low", "medium", "high", "urgent")
SEVERITY_ZH = {"low": "低", "medium": "中", "high": "高", "urgent": "紧急"}


class AlertsConfigError(InvalidInput):
    """A rules or routing file that cannot be used; the message names the file and the field."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[\w\-]+$")]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    enabled: bool = True
    severity: Annotated[
        float, Field(ge=0, le=100, description="risk points this rule adds when it fires")
    ] = 0.0


class RumorProbabilityRule(_Rule):
    """Fires where a subject's (prior-adjusted) rumor probability reaches the threshold at which
    posts are expected to be rumors ``target_precision`` of the time, at the current estimate of
    the rumor share (nlp.prevalence_store). ``min_probability``, when given, fixes the threshold
    instead (the old behaviour; it ignores how rare rumors are on the stream)."""

    kind: Literal["rumor_probability"]
    target_precision: Annotated[float, Field(gt=0, lt=1)] = 0.8
    min_probability: Annotated[float | None, Field(ge=0, le=1)] = None
    # set by `resolve_rumor_thresholds`: why the threshold is what it is (shown to staff)
    threshold_note: str | None = None

    def threshold(self) -> float:
        """The probability this rule fires at (unresolved: the target precision itself, which a
        post whose own calibrated probability reaches meets alone)."""
        return self.min_probability if self.min_probability is not None else self.target_precision


class IncidentRiskRule(_Rule):
    """Fires for a rumor matter whose rumor risk (nlp: its claims' scores, the questions it draws,
    reach, velocity, hearsay and urgency, a debunk match, locality; Incident.risk) reaches
    ``min_risk``. Why a rule of its own: one line's probability, adjusted to a stream where about
    1% of chat lines are rumors, rarely reaches a precision-target threshold, while a claim stated
    in several groups and asked about is a different population."""

    kind: Literal["incident_risk"]
    min_risk: Annotated[float, Field(ge=0, le=1)] = 0.4
    min_posts: int = Field(
        2, ge=1, description="claims, questions and reactions the matter holds at least: one line nobody "
        "repeated or answered is not yet a matter")


class DebunkMatchRule(_Rule):
    kind: Literal["debunk_match"]
    min_similarity: Annotated[float, Field(ge=0, le=1)] = 0.0


class SpreadRule(_Rule):
    kind: Literal["spread"]
    min_groups: Annotated[int, Field(ge=1)] = 3
    window_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 6.0


class HotConcernRule(_Rule):
    kind: Literal["hot_concern"]
    require_local: bool = True
    categories: list[str] = Field(default_factory=list, description="empty: every category")
    min_posts: int = Field(
        3, ge=1, description="a concern incident is hot with this many complaints and questions about it"
    )


class KeywordRule(_Rule):
    """The office's own 监测方案: all of ``required``, at least one of ``any`` (when given),
    none of ``excluded``, and at least one of ``places`` (when given)."""

    kind: Literal["keyword"]
    required: list[str] = Field(default_factory=list)
    any: list[str] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)
    places: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_terms(self) -> KeywordRule:
        if not (self.required or self.any):
            raise ValueError("关键词规则至少要有 required（必须包含）或 any（任一包含）中的一个词")
        for words in (self.required, self.any, self.excluded, self.places):
            if any(not w.strip() for w in words):
                raise ValueError("关键词不能是空字符串")
        return self

    def matches(self, text: str) -> bool:
        if any(w in text for w in self.excluded):
            return False
        if not all(w in text for w in self.required):
            return False
        if self.any and not any(w in text for w in self.any):
            return False
        return not self.places or any(p in text for p in self.places)

    def hits(self, text: str) -> list[str]:
        return [w for w in (*self.required, *self.any, *self.places) if w in text]


Rule = Annotated[
    RumorProbabilityRule | IncidentRiskRule | DebunkMatchRule | SpreadRule | HotConcernRule | KeywordRule,
    Field(discriminator="kind"),
]


class Weights(BaseModel):
    """Maximum points of each risk part (they need not sum to 100; the score is capped)."""

    model_config = ConfigDict(extra="forbid")
    rumor: float = Field(30, ge=0)
    debunk: float = Field(25, ge=0)
    velocity: float = Field(15, ge=0)
    groups: float = Field(10, ge=0)
    local: float = Field(10, ge=0)
    category: float = Field(10, ge=0)
    negativity: float = Field(10, ge=0)
    enquiry: float = Field(10, ge=0, description="questions and reactions a matter drew")
    incident: float = Field(
        90, ge=0, description="points of a matter's whole rumor risk (nlp's Incident.risk = 1)"
    )


class Thresholds(BaseModel):
    """Risk score (0-100) at which each severity starts; below ``medium`` is low."""

    model_config = ConfigDict(extra="forbid")
    medium: float = Field(35, ge=0, le=100)
    high: float = Field(55, ge=0, le=100)
    urgent: float = Field(75, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.medium <= self.high <= self.urgent:
            raise ValueError("阈值必须满足 medium <= high <= urgent")
        return self


class Folding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rising_ratio: float = Field(0.5, gt=0, description="a 'rising' note when posts grew by this share")
    rising_min_posts: int = Field(3, ge=1, description="... and by at least this many posts")
    realert_ratio: float = Field(1.0, gt=0, description="a dismissed story re-alerts past this growth")
    realert_min_posts: int = Field(10, ge=1, description="... and at least this many new posts")


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    weights: Weights = Field(default_factory=Weights)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    velocity_full: float = Field(20, gt=0, description="posts/hour that earn the full velocity points")
    velocity_window_hours: int = Field(3, ge=1, le=72)
    groups_full: int = Field(10, ge=1, description="distinct groups/sources that earn the full group points")
    category_weights: dict[str, float] = Field(default_factory=dict)
    default_category_weight: float = Field(0.3, ge=0, le=1)
    min_severity: Literal["low", "medium", "high", "urgent"] = Field(
        "low", description="a subject whose rules fire is still not alerted below this severity"
    )
    folding: Folding = Field(default_factory=Folding)
    office_name: str = Field("我们", max_length=100, description="no longer used: drafts sign as office_public_name")
    response_hours: int = Field(6, ge=1, le=168, description="hours before/after a response to compare")
    # no longer used (drafts come from alerts.drafts' editable templates); still parsed so that
    # an office's older rules file loads
    response_templates: dict[str, str] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("category_weights")
    @classmethod
    def _weights_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not 0 <= weight <= 1:
                raise ValueError(f"类别 '{name}' 的权重 {weight} 超出 0 到 1")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"规则 id '{rule.id}' 重复")
            seen.add(rule.id)
        for category, template in self.response_templates.items():
            try:
                template.format(**_TEMPLATE_SAMPLE)
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"回应模板 '{category}' 有无法识别的占位符 {err}：可用 "
                    f"{', '.join('{' + k + '}' for k in _TEMPLATE_SAMPLE)}"
                ) from err
        return self

    def enabled(self, kind: str) -> list[Any]:
        return [r for r in self.rules if r.enabled and r.kind == kind]

    def category_weight(self, category: str | None) -> float:
        if category is None:
            return self.default_category_weight
        return self.category_weights.get(category, self.default_category_weight)


_TEMPLATE_SAMPLE = {"title": "", "places": "", "category": "", "office": ""}


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = re.sub(r"^Value error, ", "", str(e["msg"]))
        lines.append(f"{loc or '(根)'}: {msg}")
    return "；".join(lines)


def parse_rules(text: str, *, origin: str = "<text>") -> RulesConfig:
    """Parse and validate rules YAML; raises :class:`AlertsConfigError` naming the file and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise AlertsConfigError(f"规则文件 {origin} 不是有效的 YAML：{err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AlertsConfigError(f"规则文件 {origin} 的顶层必须是映射（键: 值），现在是 {type(data).__name__}")
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as err:
        raise AlertsConfigError(f"规则文件 {origin} 有误：{_format_errors(err)}") from err


def rules_path() -> Path:
    """The rules in force: YUQING_ALERT_RULES_FILE, else rules saved through the API into the data
    folder, else the defaults shipped with yuqing."""
    settings = get_settings()
    if settings.alert_rules_file:
        return settings.alert_rules_file
    saved = settings.data_dir / "alert_rules.yaml"
    return saved if saved.exists() else DEFAULT_RULES_FILE


def save_rules(text: str) -> tuple[Path, RulesConfig]:
    """Validate and store new rules (atomically) where :func:`rules_path` will find them."""
    cfg = parse_rules(text, origin="提交的规则")
    settings = get_settings()
    path = settings.alert_rules_file or settings.data_dir / "alert_rules.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path, cfg


def resolve_rumor_thresholds(cfg: RulesConfig, session: Any) -> RulesConfig:
    """``cfg`` with every rumor-probability rule's threshold filled in: the one that gives its
    target precision at the current rumor-share estimate (a rule with a fixed
    ``min_probability`` keeps it). Call once per evaluation; the file on disk is unchanged."""
    from nlp.prevalence_store import threshold_for_target

    rules: list[Any] = []
    changed = False
    for rule in cfg.rules:
        if isinstance(rule, RumorProbabilityRule) and rule.min_probability is None:
            t = threshold_for_target(session, rule.target_precision)
            rule = rule.model_copy(update={"min_probability": round(t.value, 4), "threshold_note": t.why()})
            changed = True
        rules.append(rule)
    return cfg.model_copy(update={"rules": rules}) if changed else cfg


def rumor_threshold_note(cfg: RulesConfig) -> str | None:
    """What the (resolved) rumor rule's threshold is and why, for the console."""
    for rule in cfg.enabled("rumor_probability"):
        if rule.threshold_note:
            return str(rule.threshold_note)
        if rule.min_probability is not None:
            return f"规则文件固定阈值：谣言概率 ≥ {rule.min_probability:.2f}（不随谣言占比变化）。"
    return None


def load_rules(path: Path | None = None) -> RulesConfig:
    """The rules in force (the configured file, else the default shipped with yuqing)."""
    path = path or rules_path()
    try:
        stat = path.stat()
    except OSError as err:
        raise AlertsConfigError(f"找不到规则文件 {path}：检查 YUQING_ALERT_RULES_FILE") from err
    return _load_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime: int, _size: int) -> RulesConfig:
    # Keyed on mtime and size, so an edited file is picked up by a running service.
    return parse_rules(Path(path).read_text(encoding="utf-8"), origin=path)
