"""The concern stage as a step of `yuqing analyze` (nlp.pipeline), plus a refresh for quiet times.

nlp.pipeline lists the stage in its default ``STAGES``, before the ``write`` step; it reads the
batch's normalised texts and tokens and runs `update_concerns` with the run's ``now``. The analyzer
(taxonomy, gazetteer, thresholds) is loaded once per run and kept in ``ctx.state``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy.orm import Session

from nlp.concerns.stage import ConcernAnalyzer, ConcernStats, ConcernText, PostView, update_concerns

STAGE_NAME = "concerns"


def _analyzer(ctx: Any) -> ConcernAnalyzer:
    """The run's analyzer (taxonomy, gazetteer, models), loaded once and kept in ``ctx.state``."""
    analyzer = ctx.state.get("concerns_analyzer")
    if analyzer is None:
        analyzer = ctx.state["concerns_analyzer"] = ConcernAnalyzer()
    return analyzer


def concerns_text_part(ctx: Any) -> ConcernText:
    """The stage's per-text part (nlp.pipeline runs it with the text stage, in its workers)."""
    return _analyzer(ctx).text


def concerns_stage(ctx: Any, batch: Any) -> None:
    """nlp.pipeline stage: categories, places, mood, topics and bursts for one batch."""
    analyzer = _analyzer(ctx)
    t, c = time.perf_counter(), time.process_time()
    norm = batch.norm
    texts = batch.extra(STAGE_NAME)  # the ConcernText results, when the text stage computed them
    if texts is None:
        tokens, texts = batch.tokens, [None] * len(batch)  # tokens: segmented here, on first use
    else:
        tokens = [()] * len(batch)  # not needed: the text part used them
    segment = {"segment": time.perf_counter() - t}, {"segment": time.process_time() - c}
    views = [PostView(r.id, norm[i], tokens[i], r.when, r.group_id, r.source_id,
                      batch.story_ids[i] if batch.story_ids else r.story_id, text=texts[i])
             for i, r in enumerate(batch.rows)]
    # The per-post columns ride on the write stage's UPDATE of the batch (one statement, not two).
    stats = update_concerns(ctx.session, views, now=ctx.now, analyzer=analyzer, post_columns=batch.post_columns)
    ctx.count("topics_new", stats.topics_new)
    ctx.count("topics_hot", len(stats.hot_topic_ids))
    ctx.count("local_posts", stats.local_posts)
    for key, timings in (("concerns_timings", segment[0] | stats.timings),
                         ("concerns_cpu_timings", segment[1] | stats.cpu_timings)):
        total = ctx.state.setdefault(key, {})
        for name, seconds in timings.items():
            total[name] = total.get(name, 0.0) + seconds


def install() -> None:
    """Put the concern stage back into the default pipeline after someone replaced it (idempotent)."""
    from nlp.pipeline import Stage, register_stage

    register_stage(Stage(STAGE_NAME, concerns_stage, text_part=concerns_text_part), before="write")


def refresh(session: Session, *, now: dt.datetime | None = None) -> ConcernStats:
    """Re-score bursts with no new posts (hot topics cool down even when nothing arrives)."""
    return update_concerns(session, [], now=now or dt.datetime.now(dt.UTC))
