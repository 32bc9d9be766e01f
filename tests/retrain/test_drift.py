from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from core.tables import AnalysisRun, ModelVersion
from nlp.drift import drift_status


def _setup(session: Session, recent_bins: list[int]) -> None:
    mv = ModelVersion(name="rumor", version="d1", path="-", status="active",
                      reference_distribution={"bins": [300, 200, 100, 50, 50, 50, 50, 50, 100, 50]})
    session.add(mv)
    session.flush()
    session.add(AnalysisRun(model_version_id=mv.id, started_at=dt.datetime.now(dt.UTC), score_histogram=recent_bins))
    session.flush()


def test_same_distribution_is_not_drift(session: Session) -> None:
    _setup(session, [300, 200, 100, 50, 50, 50, 50, 50, 100, 50])
    status = drift_status(session)
    assert not status.drifting and "正常" in status.message


def test_many_more_high_scores_is_drift(session: Session) -> None:
    _setup(session, [100, 50, 50, 50, 50, 50, 50, 100, 300, 300])
    status = drift_status(session)
    assert status.drifting and "升高" in status.message and status.recent.high_share > 0.5
    assert "生成校准版本" in status.message  # what to do about it


def test_too_few_posts_say_nothing(session: Session) -> None:
    _setup(session, [5, 0, 0, 0, 0, 0, 0, 0, 0, 50])
    status = drift_status(session)
    assert not status.drifting and "不足" in status.message
