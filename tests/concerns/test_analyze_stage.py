"""The concern stage inside `yuqing analyze` (nlp.pipeline): topics appear as posts are analysed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pytest
from sqlalchemy import func, select

from core.db import make_engine, session_scope
from core.ingest import ingest_posts
from core.tables import Post, Story, Topic
from nlp import pipeline
from nlp.concerns.pipeline_stage import STAGE_NAME, install
from nlp.pipeline import analyze, stages_without
from tests.concerns.conftest import DAY, synthetic_day


class FlatRumorModel:
    """Stands in for the rumor model (another stage's artifact, irrelevant to concerns)."""

    version = "flat-test"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile([0.9, 0.1], (len(texts), 1))

    def explain(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
        return [[] for _ in texts]


def test_the_stage_is_a_default_stage_before_write() -> None:
    # A fresh interpreter that imports only nlp.pipeline (no CLI) gets the stage.
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", "import nlp.pipeline as p; print(' '.join(s.name for s in p.STAGES))"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
                         env={**os.environ, "PYTHONPATH": "."}).stdout.split()
    assert out == ["text", "stories", STAGE_NAME, "write"]
    install()  # idempotent: still one concern stage, still before write
    names = [s.name for s in pipeline.STAGES]
    assert names.count(STAGE_NAME) == 1 and names.index(STAGE_NAME) == names.index("write") - 1


def test_stages_without_leaves_the_concern_stage_out(fresh_db_url: str) -> None:
    assert [s.name for s in stages_without(STAGE_NAME)] == ["text", "stories", "write"]
    with pytest.raises(ValueError, match="unknown stage"):
        stages_without("nope")
    engine = make_engine(fresh_db_url)
    try:
        with session_scope(engine) as session:
            ingest_posts(session, synthetic_day(until_hour=2))
        with session_scope(engine) as session:
            res = analyze(session, model=FlatRumorModel(), stages=stages_without(STAGE_NAME), workers=0,
                          now=DAY + dt.timedelta(hours=2))
            assert res.posts > 50 and "topics_new" not in res.counts
            assert session.scalar(select(func.count()).select_from(Post).where(Post.category.is_not(None))) == 0
    finally:
        engine.dispose()


def test_analyze_runs_the_concern_stage(fresh_db_url: str) -> None:
    # analyze() commits per batch, so it gets its own database rather than the rolled-back session.
    # No stages= given: the default pipeline computes concerns.
    engine = make_engine(fresh_db_url)
    try:
        with session_scope(engine) as session:
            ingest_posts(session, synthetic_day(until_hour=14))
        with session_scope(engine) as session:
            first = analyze(session, model=FlatRumorModel(), workers=0, batch_size=200,
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
            second = analyze(session, model=FlatRumorModel(), workers=0, batch_size=200,
                             now=DAY + dt.timedelta(hours=15))
            assert second.counts["topics_hot"] >= 1
            hot = session.scalars(select(Topic).where(Topic.is_hot.is_(True))).all()
            assert any(any(w == "口罩" for w, _ in t.keywords) for t in hot)
            assert not any(any(w == "青禾菜市场" for w, _ in t.keywords) for t in hot)
            # nothing new: nothing is analysed twice
            assert analyze(session, model=FlatRumorModel(), workers=0).posts == 0
    finally:
        engine.dispose()
