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
    assert out == ["text", "stories", STAGE_NAME, "incidents", "write"]
    install()  # idempotent: still one concern stage, still before write
    names = [s.name for s in pipeline.STAGES]
    assert names.count(STAGE_NAME) == 1 and names.index(STAGE_NAME) < names.index("write")


def test_stages_without_leaves_the_concern_stage_out(fresh_db_url: str) -> None:
    assert [s.name for s in stages_without(STAGE_NAME)] == ["text", "stories", "incidents", "write"]
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


# A fresh install's first batch (the demo's, in short): official notices that share only their
# boilerplate and the town's name, and one rumor wave.
FIRST_BATCH = [
    "青禾镇关于冬季集中供暖的通知 青禾镇各村集中供暖将于下月一日开始，请居民提前检查暖气管道。",
    "青禾镇冬季森林防火通告 即日起至明年三月为森林防火期，严禁野外用火，各村做好巡查。",
    "青禾镇中心小学举行冬季运动会 青禾镇中心小学冬季运动会今天开幕，全校三百多名学生参加。",
    "镇政府召开民生实事推进会 青禾镇召开民生实事推进会，部署农村道路、饮水安全等十项工作。",
    "关于网传青禾镇下周封城的情况说明 经核实，该消息为谣言，青禾镇没有任何封控计划，各村道路正常。",
    "柳树村合作社草莓进入采摘期，欢迎游客前来采摘，青禾镇各村游客都可以来。",
    "听说下周要封城了？超市米面都被抢光了，群里都在传青禾镇下周要封城",
    "有人说要封城了，大家都在抢米抢油，南坪村超市排了好长的队",
    "菜价也涨了，白菜比上周贵了一倍，肯定是要封城了",
    "东湾村也在抢米抢油，是不是真的要封城了",
    "石桥村主管道维修，明日上午临时停水，请村民提前储水",
    "石桥村又停水了，听说水被污染了，大家千万别喝自来水",
]


def test_a_fresh_install_does_not_glue_unrelated_notices_into_one_topic(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        with session_scope(engine) as session:
            stored = ingest_posts(session, [
                {"channel": "chat", "group": {"platform": "wechat", "external_id": "g1", "name": "青禾镇居民群"},
                 "author": f"用户{i}", "external_id": f"n{i}", "text": text,
                 "published_at": DAY + dt.timedelta(hours=8, minutes=5 * i)}
                for i, text in enumerate(FIRST_BATCH)])
            assert stored.new == len(FIRST_BATCH), stored.rejected
        with session_scope(engine) as session:
            analyze(session, model=FlatRumorModel(), workers=0, now=DAY + dt.timedelta(hours=10))
            topic_of = {text: topic for text, topic in session.execute(select(Post.raw_text, Post.topic_id))}
        notices = [topic_of[t] for t in FIRST_BATCH[:4]]
        assert len({t for t in notices if t is not None}) == sum(t is not None for t in notices), notices
        wave = [topic_of[t] for t in FIRST_BATCH[6:10]]
        assert wave[0] is not None and len(set(wave)) == 1, wave  # the rumor wave is one matter
        heating = topic_of[FIRST_BATCH[0]]
        assert heating is None or heating not in {topic_of[t] for t in FIRST_BATCH[4:]}
    finally:
        engine.dispose()
