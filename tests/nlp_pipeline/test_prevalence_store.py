"""Prevalence estimates on a real database (SQLite, and PostgreSQL with YUQING_TEST_DATABASE=postgres):
analyze stores raw and adjusted scores; re-estimating moves probabilities, labels and story maxima
without scoring again; reviewed verdicts refine the estimate; history is kept."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ingest import ingest_posts
from core.tables import Label, ModelVersion, Post, PostScore, PrevalenceEstimate, Story
from nlp.pipeline import analyze
from nlp.prevalence import adjust
from nlp.prevalence_store import (
    DEFAULT_PRIORS,
    LABEL_ABSTAIN,
    current,
    decider_for,
    history,
    model_profile,
    moved,
    reestimate,
)
from tests.nlp_pipeline.conftest import ORDINARY, STORY_A, STORY_B, STORY_C, chat, sample_items

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _scores(db: Session) -> dict[int, PostScore]:
    return {s.post_id: s for s in db.scalars(select(PostScore))}


def _analyzed(db: Session, rumor_model) -> ModelVersion:
    ingest_posts(db, sample_items())
    analyze(db, model=rumor_model, workers=0, now=NOW)
    version = db.scalar(select(ModelVersion).where(ModelVersion.version == rumor_model.version))
    assert version is not None
    return version


def test_the_shipped_model_has_a_profile(rumor_model) -> None:
    from nlp.classifier import default_model_path

    profile = model_profile(rumor_model.card, default_model_path())
    assert 0.3 < profile.train_prior < 0.6
    assert profile.tail is not None and profile.method == "bbe"
    assert model_profile({}, None).train_prior == 0.5 and model_profile({}, None).method == "em"


def test_reestimating_changes_decisions_without_rescoring(db: Session, rumor_model) -> None:
    version = _analyzed(db, rumor_model)
    before = _scores(db)
    assert all(s.raw_probability is not None for s in before.values())
    profile = model_profile(version.card, version.path)
    # before any estimate: the chat default, and the threshold is the target itself
    for s in before.values():
        if s.label != LABEL_ABSTAIN:
            assert s.rumor_probability == pytest.approx(float(adjust(s.raw_probability, profile.train_prior,
                                                                     DEFAULT_PRIORS["chat"])))
    scored_at = {pid: s.scored_at for pid, s in before.items()}
    raw = {pid: s.raw_probability for pid, s in before.items()}
    labels_before = {pid: s.label for pid, s in before.items()}

    # a window that is mostly rumors (8 of the 12 lines): the estimate rises far above 1%
    rows = reestimate(db, model_version_id=version.id, now=NOW, min_posts=5)
    db.commit()
    assert set(rows) == {"chat", "all"}
    chat_est = rows["chat"]
    assert chat_est.estimate > 5 * DEFAULT_PRIORS["chat"]
    assert chat_est.lower <= chat_est.estimate <= chat_est.upper
    assert chat_est.method == "bbe" and chat_est.n >= 10 and chat_est.model_version_id == version.id

    db.expire_all()
    after = _scores(db)
    assert {pid: s.raw_probability for pid, s in after.items()} == raw  # no re-scoring
    assert {pid: s.scored_at for pid, s in after.items()} == scored_at
    moved_up = 0
    for pid, s in after.items():
        if s.label == LABEL_ABSTAIN:
            continue
        expected = float(adjust(s.raw_probability, profile.train_prior, chat_est.estimate))
        assert s.rumor_probability == pytest.approx(expected)
        assert s.rumor_probability >= before[pid].rumor_probability
        moved_up += s.label == 1 and labels_before[pid] == 0
    assert moved_up >= 1
    assert all(s.label == LABEL_ABSTAIN for pid, s in after.items() if labels_before[pid] == LABEL_ABSTAIN)
    # the stories' maxima follow the adjusted probabilities
    for story in db.scalars(select(Story)):
        members = [after[p].rumor_probability for p in db.scalars(select(Post.id).where(Post.story_id == story.id))
                   if after[p].label != LABEL_ABSTAIN]
        if members:
            assert story.max_rumor_probability == pytest.approx(max(members))

    # the next analysis run adjusts new posts to the stored estimate and labels at its threshold
    decider = decider_for(db, version.id)
    assert decider.prior("chat") == pytest.approx(chat_est.estimate)
    assert decider.threshold == pytest.approx(rows["all"].threshold)
    assert current(db, version.id)["chat"].id == chat_est.id


def test_the_threshold_moves_with_the_prevalence(db: Session, rumor_model) -> None:
    version = _analyzed(db, rumor_model)
    profile = model_profile(version.card, version.path)
    raw = np.array([s.raw_probability for s in _scores(db).values()])
    low = decider_for(db, version.id)
    high = reestimate(db, model_version_id=version.id, now=NOW, min_posts=5)
    # the raw score a post needs to be called a rumor is lower when rumors are more common
    from nlp.prevalence import unadjust

    cut_low = float(unadjust(low.threshold, profile.train_prior, low.prior("chat")))
    cut_high = float(unadjust(high["all"].threshold, profile.train_prior, high["chat"].estimate))
    assert cut_high < cut_low
    assert len(raw) == 12


def test_reviewed_verdicts_refine_the_estimate_and_history_is_kept(db: Session, rumor_model) -> None:
    version = _analyzed(db, rumor_model)
    first = reestimate(db, model_version_id=version.id, now=NOW, min_posts=5)["chat"]
    posts = dict(db.execute(select(Post.raw_text, Post.id)).all())
    for text, label in [(t, 1) for t in STORY_A + STORY_B + STORY_C] + [(t, 0) for t in ORDINARY[:3]]:
        db.add(Label(dedup_key=f"t:{posts[text]}", post_id=posts[text], text=text, text_hash=str(posts[text]),
                     label=label, origin="review"))
    db.flush()
    second = reestimate(db, model_version_id=version.id, now=NOW + dt.timedelta(hours=2), min_posts=5)["chat"]
    db.commit()
    assert second.method == "bbe+labels" and second.n_labels == 11
    # 8 confirmed rumors of 11 judged lines: the estimate is at least their share
    assert second.estimate >= 8 / second.n - 1e-9
    assert [h.id for h in history(db, "chat")] == [second.id, first.id]
    assert db.scalar(select(PrevalenceEstimate).where(PrevalenceEstimate.id == first.id)) is not None
    change = moved(db, "chat")
    assert change is None or change[1].id == second.id


def test_a_web_channel_gets_its_own_estimate(db: Session, rumor_model) -> None:
    items = [{**chat(t, n), "channel": "web", "url": f"https://example.cn/{n}", "source": "青禾论坛"}
             for n, t in enumerate(STORY_A + ORDINARY)]
    for it in items:
        it.pop("group")
    report = ingest_posts(db, items)
    assert db.scalar(select(Post.channel).limit(1)) == "web", report
    analyze(db, model=rumor_model, workers=0, now=NOW)
    version = db.scalar(select(ModelVersion).where(ModelVersion.version == rumor_model.version))
    rows = reestimate(db, model_version_id=version.id, now=NOW, min_posts=5)
    assert "web" in rows and "chat" not in rows


def test_a_too_uncertain_estimate_widens_its_window_and_says_so(db: Session, rumor_model) -> None:
    from nlp.prevalence_store import MAX_WINDOW_DAYS, UNCERTAIN_ZH, describe, too_uncertain
    from tests.fixtures.labelled_texts import labelled_texts

    # forty ordinary lines and a rumor this week, as many eighteen days ago: a week's estimate of
    # so low a share is far too uncertain, so the channel is estimated again over longer windows
    texts, labels = labelled_texts(100, seed=5)
    ordinary = [t for t, lab in zip(texts, labels, strict=True) if lab == 0]
    week = [chat(t, n, minute=n % 60) for n, t in enumerate([*ordinary[:40], STORY_A[0]])]
    old = [{**chat(t, 100 + n, minute=n % 60), "published_at": NOW - dt.timedelta(days=18, minutes=n)}
           for n, t in enumerate([*ordinary[40:80], STORY_B[0]])]
    ingest_posts(db, week + old)
    analyze(db, model=rumor_model, workers=0, now=NOW)
    version = db.scalar(select(ModelVersion).where(ModelVersion.version == rumor_model.version))
    assert version is not None

    def judged(days: int) -> int:
        return db.scalar(select(func.count()).select_from(PostScore).join(Post, Post.id == PostScore.post_id)
                         .where(PostScore.label != LABEL_ABSTAIN, Post.published_at >= NOW - dt.timedelta(days=days))) or 0

    rows = reestimate(db, model_version_id=version.id, now=NOW, min_posts=5)
    chat_est = rows["chat"]
    assert chat_est.window_end - chat_est.window_start == dt.timedelta(days=MAX_WINDOW_DAYS)
    assert chat_est.n == judged(MAX_WINDOW_DAYS) > judged(7)
    # eighty lines still leave the interval far wider than 2.25x: said, not hidden
    assert too_uncertain(chat_est) and UNCERTAIN_ZH in describe(chat_est)
    assert "近 28 天" in describe(chat_est)
    assert not too_uncertain(rows["all"])
    # the pooled row, and the scores re-adjusted, are the base week's
    assert rows["all"].window_end - rows["all"].window_start == dt.timedelta(days=7)
    assert rows["all"].n == judged(7)
