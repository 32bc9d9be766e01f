"""`yuqing analyze` end to end on the test database (SQLite, and PostgreSQL under `make test`):
idempotent, incremental, a known rumor flagged whatever the classifier says."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import AnalysisRun, Debunk, DebunkMatch, ModelVersion, Post, PostScore, Story
from nlp.debunks import import_debunks
from nlp.pipeline import HIST_BINS, Stage, analyze, backlog, register_stage
from nlp.prevalence import adjust
from nlp.prevalence_store import DEFAULT_PRIORS, LABEL_ABSTAIN, train_prior_of
from tests.nlp_pipeline.conftest import DEMO_DEBUNKS, ORDINARY, STORY_A, STORY_B, chat, sample_items


def _scores(session: Session) -> dict[str, PostScore]:
    rows = session.execute(
        select(Post.raw_text, PostScore).join(PostScore, PostScore.post_id == Post.id)
    ).all()
    return {text: score for text, score in rows}


def test_analyze_scores_matches_groups_and_is_idempotent(db: Session, rumor_model) -> None:
    import_debunks(db, DEMO_DEBUNKS)
    items = sample_items()
    ingest_posts(db, items)
    assert backlog(db) == len(items)

    first = analyze(db, model=rumor_model, workers=0)
    assert first.posts == len(items) and backlog(db) == 0
    assert db.scalar(select(func.count()).where(Post.norm_text.is_(None))) == 0

    version = db.scalar(select(ModelVersion).where(ModelVersion.version == rumor_model.version))
    assert version is not None and version.status == "active"
    scores = _scores(db)
    assert len(scores) == len(items) and {s.model_version_id for s in scores.values()} == {version.id}
    texts = [i["text"] for i in items]
    expected = rumor_model.predict_proba(texts)
    # the model's own score is kept; the probability is adjusted to the chat channel's rumor share
    # (the default before any estimate), and a line the model cannot judge ("收到") gets no label
    train_prior = train_prior_of(version.card, version.path)
    for text, p in zip(texts, expected, strict=True):
        s = scores[text]
        assert abs(s.raw_probability - float(p)) < 1e-6
        if s.label == LABEL_ABSTAIN:
            assert s.rumor_probability == DEFAULT_PRIORS["chat"]
        else:
            assert abs(s.rumor_probability - float(adjust(p, train_prior, DEFAULT_PRIORS["chat"]))) < 1e-6
    assert scores["收到"].label == LABEL_ABSTAIN

    # Every copy of the 封城 rumor matches the official refutation and is flagged, whatever its score.
    debunk = db.scalar(select(Debunk).where(Debunk.claim.like("青禾镇明天封城%")))
    for text in STORY_A:
        assert scores[text].label == 1 and scores[text].explanation[0][0] == f"辟谣库#{debunk.id}"
    assert all(scores[t].explanation is not None for t in texts)
    matched = set(db.scalars(select(DebunkMatch.post_id).where(DebunkMatch.debunk_id == debunk.id)))
    assert len(matched) == len(STORY_A)
    ordinary_ids = set(db.scalars(select(Post.id).where(Post.raw_text.in_(ORDINARY))))
    assert not ordinary_ids & set(db.scalars(select(DebunkMatch.post_id)))

    story_ids = {db.scalar(select(Post.story_id).where(Post.raw_text == t)) for t in STORY_A}
    assert len(story_ids) == 1
    story = db.get(Story, story_ids.pop())
    assert story.post_count == len(STORY_A) and story.group_count == 4 and story.debunk_id == debunk.id
    assert abs(story.max_rumor_probability - max(scores[t].rumor_probability for t in STORY_A)) < 1e-9

    run = db.get(AnalysisRun, first.run_id)
    assert run.posts_processed == len(items) and len(run.score_histogram) == HIST_BINS
    assert sum(run.score_histogram) == len(items) and run.finished_at is not None
    assert {"normalize", "classify_explain", "stories", "write"} <= set(run.stats["timings"])

    n_stories = db.scalar(select(func.count()).select_from(Story))
    again = analyze(db, model=rumor_model, workers=0)
    assert again.posts == 0 and again.run_id is None
    assert db.scalar(select(func.count()).select_from(PostScore)) == len(items)
    assert db.scalar(select(func.count()).select_from(Story)) == n_stories
    assert db.scalar(select(func.count()).select_from(AnalysisRun)) == 1


def test_an_edited_post_is_rescored_and_moves_story(db: Session, rumor_model) -> None:
    import_debunks(db, DEMO_DEBUNKS)
    items = [
        chat(t, n, group)
        for n, (t, group) in enumerate(
            [(STORY_A[0], "qh-1"), (STORY_A[1], "qh-2"), (STORY_B[0], "qh-1"), (ORDINARY[0], "qh-3")]
        )
    ]
    ingest_posts(db, items)
    analyze(db, model=rumor_model, workers=0)
    post = db.scalar(select(Post).where(Post.raw_text == STORY_A[1]))
    old_story = post.story_id
    stories_before = db.scalar(select(func.count()).select_from(Story))

    # The sender edits the message (same id): ingest resets analyzed_at, analyze picks it up again.
    edited = chat(STORY_B[0] + "，刚看到的", 1, "qh-2")
    assert ingest_posts(db, [edited]).updated == 1
    assert backlog(db) == 1
    third = analyze(db, model=rumor_model, workers=0)
    assert third.posts == 1
    db.expire_all()
    post = db.get(Post, post.id)
    assert post.analyzed_at is not None and "刚看到的" in post.norm_text
    assert db.scalar(select(func.count()).select_from(PostScore).where(PostScore.post_id == post.id)) == 1
    b_story = db.scalar(select(Post.story_id).where(Post.raw_text == STORY_B[0]))
    assert post.story_id == b_story != old_story
    assert db.get(Story, old_story).post_count == 1 and db.get(Story, b_story).post_count == 2
    assert sum(db.get(Story, old_story).hourly_counts.values()) == 1
    assert db.scalar(select(func.count()).select_from(Story)) == stories_before
    claims = set(db.scalars(select(Debunk.claim).join(DebunkMatch).where(DebunkMatch.post_id == post.id)))
    assert len(claims) == 1 and "自来水" in claims.pop()


def test_extra_stage_columns_are_written_with_the_batch(db: Session, rumor_model) -> None:
    from nlp import pipeline

    def places(ctx, batch) -> None:
        assert batch.tokens and len(batch.tokens) == len(batch)
        batch.post_columns["places"] = [["青禾镇"] if "青禾镇" in t else [] for t in batch.norm]
        ctx.count("extra_stage_batches")

    saved = list(pipeline.STAGES)
    try:
        register_stage(Stage("places", places), before="write")
        names = [s.name for s in pipeline.STAGES]  # other stages (hot concerns) may be installed too
        assert names[:2] == ["text", "stories"] and names[-2:] == ["places", "write"]
        ingest_posts(db, [chat(STORY_A[0], 1), chat(ORDINARY[1], 2)])
        result = analyze(db, model=rumor_model, workers=0)
    finally:
        pipeline.STAGES[:] = saved
    assert result.counts["extra_stage_batches"] == 1
    got = dict(db.execute(select(Post.raw_text, Post.places)).all())
    assert got == {STORY_A[0]: ["青禾镇"], ORDINARY[1]: []}


def test_worker_processes_give_the_same_result(db: Session, rumor_model) -> None:
    import_debunks(db, DEMO_DEBUNKS)
    items = sample_items()
    ingest_posts(db, items)
    result = analyze(db, model=rumor_model, workers=2, batch_size=4)
    assert result.workers == 2 and result.posts == len(items)
    scores = _scores(db)
    expected = rumor_model.predict_proba([i["text"] for i in items])
    assert np.allclose([scores[i["text"]].raw_probability for i in items], expected, atol=1e-6)
    story_ids = {db.scalar(select(Post.story_id).where(Post.raw_text == t)) for t in STORY_A}
    assert len(story_ids) == 1 and None not in story_ids
    # the workers' sklearn-free model explains exactly like the model itself
    texts = [i["text"] for i in items]
    for text, terms in zip(texts, rumor_model.explain(texts, k=5), strict=True):
        stored = [e for e in scores[text].explanation if not str(e[0]).startswith("辟谣库#")]
        assert stored == [[term, weight] for term, weight in terms], text


def test_concern_text_part_runs_in_the_workers_with_the_same_result(db: Session, rumor_model) -> None:
    """The concern stage's per-text part (segment, category, mood, places) travels back from the
    worker processes and gives the columns the in-process path gives."""
    from nlp.concerns.stage import ConcernAnalyzer

    items = [*sample_items(), chat("青禾镇药店没有口罩了，怎么办？", 90), chat("不是没有口罩，药店有货", 91)]
    ingest_posts(db, items)
    result = analyze(db, model=rumor_model, workers=2, batch_size=4)
    assert result.workers == 2 and result.timings.get("concerns.text", 0.0) > 0.0
    rows = db.execute(select(Post.norm_text, Post.category, Post.negativity, Post.places, Post.is_local)).all()
    assert len(rows) == len(items)
    expected = ConcernAnalyzer().text([r.norm_text for r in rows])
    got = [(r.category, round(r.negativity, 4), r.places, r.is_local) for r in rows]
    assert got == [(e.category, round(e.negativity, 4), e.places, e.local) for e in expected]
    assert any(r.is_local for r in rows) and len({r.negativity for r in rows}) > 1


def test_default_model_is_registered_once(db: Session) -> None:
    ingest_posts(db, [chat(STORY_B[0], 1)])
    first = analyze(db, workers=0)
    ingest_posts(db, [chat(STORY_B[1], 2)])
    second = analyze(db, workers=0)
    assert first.posts == second.posts == 1
    rows = db.scalars(select(ModelVersion)).all()
    assert len(rows) == 1 and rows[0].status == "active" and rows[0].path


def test_a_second_run_waits_for_the_first(db: Session, rumor_model) -> None:
    from core.settings import get_settings
    from nlp.pipeline import RunLock

    ingest_posts(db, [chat(STORY_B[0], 1)])
    db.commit()
    held = RunLock(get_settings().data_dir / "analyze.lock")
    assert held.acquire()
    try:
        busy = analyze(db, model=rumor_model, workers=0)
        assert busy.counts == {"skipped_busy": 1} and busy.posts == 0 and backlog(db) == 1
    finally:
        held.release()
    assert analyze(db, model=rumor_model, workers=0).posts == 1
