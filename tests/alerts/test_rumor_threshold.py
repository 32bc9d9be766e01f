"""The rumor rule's threshold comes from the target precision at the current rumor-share estimate
(nlp.prevalence_store), on a real database; a fixed min_probability in a rules file is kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.rules import (
    RumorProbabilityRule,
    load_rules,
    parse_rules,
    resolve_rumor_thresholds,
    rumor_threshold_note,
)
from core.ingest import ingest_posts
from core.tables import ModelVersion
from nlp.pipeline import analyze
from nlp.prevalence_store import reestimate, threshold_for_target
from tests.nlp_pipeline.conftest import db as db
from tests.nlp_pipeline.conftest import rumor_model as rumor_model
from tests.nlp_pipeline.conftest import sample_items

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _rule(cfg) -> RumorProbabilityRule:
    return next(r for r in cfg.rules if isinstance(r, RumorProbabilityRule))


def test_the_rule_threshold_moves_when_the_prevalence_moves(db: Session, rumor_model) -> None:
    session = db
    cfg = load_rules()
    assert _rule(cfg).min_probability is None and _rule(cfg).target_precision == 0.8
    ingest_posts(session, sample_items())
    analyze(session, model=rumor_model, workers=0, now=NOW)
    version = session.scalar(select(ModelVersion).where(ModelVersion.version == rumor_model.version))
    # analyze made a first estimate, with too few posts for a channel of its own: defaults
    before = _rule(resolve_rumor_thresholds(cfg, session))
    assert before.min_probability == threshold_for_target(session, 0.8).value
    assert "默认" in (before.threshold_note or "") or "估计" in (before.threshold_note or "")
    # a window where most lines are rumors: a new estimate, a new threshold, and the reason says so
    rows = reestimate(session, model_version_id=version.id, now=NOW, min_posts=5)
    after = _rule(resolve_rumor_thresholds(cfg, session))
    assert after.min_probability == round(rows["all"].threshold, 4)
    assert after.min_probability != before.min_probability
    assert f"{rows['all'].estimate:.1%}" in (after.threshold_note or "")
    assert rumor_threshold_note(resolve_rumor_thresholds(cfg, session)) == after.threshold_note
    # another target precision asks the window, not the stored threshold
    stricter = threshold_for_target(session, 0.95)
    assert stricter.value >= after.min_probability
    # the file on disk is unchanged
    assert _rule(load_rules()).min_probability is None


def test_a_fixed_threshold_in_the_rules_file_is_kept(session: Session) -> None:
    cfg = parse_rules("rules:\n  - {id: r1, name: 固定, kind: rumor_probability, min_probability: 0.6}\n")
    resolved = resolve_rumor_thresholds(cfg, session)
    assert _rule(resolved).min_probability == 0.6 and _rule(resolved).threshold() == 0.6
    assert "固定阈值" in (rumor_threshold_note(resolved) or "")
