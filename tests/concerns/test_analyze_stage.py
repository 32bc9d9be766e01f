"""The concern stage inside `yuqing analyze` (nlp.pipeline): topics appear as posts are analysed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select

from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.tables import Post, Story, Topic
from nlp.concerns.pipeline_stage import STAGE_NAME, concerns_stage, install
from nlp.pipeline import STAGES, Stage, analyze
from tests.concerns.conftest import DAY, synthetic_day


class FlatRumorModel:
    """Stands in for the rumor model (another stage's artifact, irrelevant to concerns)."""

    version = "flat-test"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(texts), 1))

    def explain(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        return [[] for _ in texts]


def test_install_puts_the_stage_before_write() -> None:
    install()
    install()
    names = [s.name for s in STAGES]
    assert names.count(STAGE_NAME) == 1 and names.index(STAGE_NAME) == names.index("write") - 1


def test_analyze_runs_the_concern_stage(fresh_db_url: str) -> None:
    # analyze() commits per batch, so it gets its own database rather than the rolled-back session.
    stages = [s for s in STAGES if s.name != STAGE_NAME]
    stages.insert(len(stages) - 1, Stage(STAGE_NAME, concerns_stage))
    engine = make_engine(fresh_db_url)
    try:
        with session_scope(engine) as session:
            ingest_posts(session, synthetic_day(until_hour=14))
        with session_scope(engine) as session:
            first = analyze(session, model=FlatRumorModel(), stages=stages, workers=0, batch_size=200,
                            now=DAY + dt.timedelta(hours=14))
            assert first.posts > 400 and first.counts["topics_new"] >= 2
            analysed = session.scalar(select(func.count()).select_from(Post).where(Post.topic_id.is_not(None)))
            assert analysed > 0.9 * first.posts
            assert session.scalar(select(func.count()).select_from(Post).where(Post.category.is_(None))) == 0
            # stories carry their topic
            assert session.scalar(select(func.count()).select_from(Story).where(Story.topic_id.is_not(None))) > 0
        with session_scope(engine) as session:
            ingest_posts(session, synthetic_day(from_hour=14, until_hour=15))
        with session_scope(engine) as session:
            second = analyze(session, model=FlatRumorModel(), stages=stages, workers=0, batch_size=200,
                             now=DAY + dt.timedelta(hours=15))
            assert second.counts["topics_hot"] >= 1
            hot = session.scalars(select(Topic).where(Topic.is_hot.is_(True))).all()
            assert any(any(w == "口罩" for w, _ in t.keywords) for t in hot)
            assert not any(any(w == "青禾菜市场" for w, _ in t.keywords) for t in hot)
            # nothing new: nothing is analysed twice
            assert analyze(session, model=FlatRumorModel(), stages=stages, workers=0).posts == 0
    finally:
        engine.dispose()
