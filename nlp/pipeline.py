"""`yuqing analyze`: score every unanalysed post, match it against the debunk library, group it
into a story, and write everything back in set-based statements.

The run is a loop over batches of posts with ``analyzed_at IS NULL`` (keyset by id), each batch
going through :data:`STAGES` in order:

``text``
    normalise, classify with explanations, MinHash-sign and match debunks. Pure (no database),
    so for a large backlog it runs ahead in a process pool (:func:`text_features`), one batch
    per worker, while the main process groups and writes the previous batches.
``stories``
    join each post to a story or found one (:mod:`nlp.stories`).
``concerns``
    hot concerns (:mod:`nlp.concerns`): category, mood and places of each post, topics and
    bursts. Run analyze without it with ``stages=stages_without("concerns")``.
``incidents``
    the matter (一件事) of each post, with its role (:mod:`nlp.incidents`): incidents founded and
    their stats, risk and title.
``write``
    post_scores / debunk_matches upserts, one executemany UPDATE of posts (norm_text, story_id,
    analyzed_at and any ``batch.post_columns``), story stats. Then the batch commits.

Adding a stage: write ``def my_stage(ctx: AnalysisContext, batch: Batch) ->
None`` that reads ``batch.norm`` / ``batch.tokens`` / ``batch.rows`` and puts per-post values in
``batch.post_columns["topic_id"] = [...]`` (one value per post, written by the ``write`` stage
in the same UPDATE), or writes its own tables with ``ctx.session``; keep per-run state (an index
loaded once) in ``ctx.state``. Then ``register_stage(Stage("my_stage", my_stage), before="write")``
or pass ``stages=`` to :func:`analyze`.

A stage that batches work up across batches gives ``finish=`` a function of the context, called
once after the last batch (then the run commits).

Work that depends only on each post's text can run with the ``text`` stage, in its worker
processes: give the stage ``text_part=`` a function of the context that returns a picklable
callable (module-level class or function) ``part(norm_texts) -> result``; its result for the
batch comes back as ``batch.extra("my_stage")`` (None where the text stage ran without it). A part
with ``wants_context = True`` is called ``part(norm_texts, contexts)``, one `PostContext` (is it a
reply, web or chat, titled) per post.

Idempotent and incremental: a post is analysed once per text (core.ingest resets
``analyzed_at`` when the text changes, and the final UPDATE only marks a post whose
``content_hash`` is still the one that was analysed); re-running with nothing new does nothing.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

import numpy as np
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.lifecycle import die_with_parent, owner_gone, worker_id
from core.tables import AnalysisRun, DebunkMatch, ModelVersion, Post, PostScore, utcnow
from nlp.abstain import Abstainer, load_abstainer
from nlp.bulk import constant, executemany
from nlp.concerns.pipeline_stage import STAGE_NAME as CONCERNS_STAGE
from nlp.concerns.pipeline_stage import concerns_stage, concerns_text_part
from nlp.cues import DEBUNK_TERM_PREFIX
from nlp.debunks import DebunkHit, DebunkMatcher
from nlp.incidents import STAGE_NAME as INCIDENTS_STAGE
from nlp.incidents import incidents_finish, incidents_stage, incidents_text_part
from nlp.normalize import normalize
from nlp.prevalence import DEFAULT_TARGET_PRECISION
from nlp.prevalence_store import LABEL_ABSTAIN, Decider, decider_for, reestimate, train_prior_of
from nlp.similarity import BandedIndex, match_key, shingle_batch
from nlp.stories import (
    DEFAULT_WINDOW_DAYS,
    BatchPrep,
    StoryIndex,
    StoryMember,
    assign_stories,
    prepare_batch,
    refresh_counts,
    write_stories,
)

__all__ = [
    "STAGES",
    "AnalysisContext",
    "AnalysisResult",
    "Batch",
    "Classifier",
    "PostContext",
    "Stage",
    "TextFeatures",
    "analyze",
    "backlog",
    "ensure_model_version",
    "load_active_model",
    "register_stage",
    "run_analysis",
    "score_histogram",
    "stages_without",
    "text_features",
]

log = logging.getLogger(__name__)

MODEL_NAME = "rumor"
HIST_BINS = 20
HIGH_SCORE = 0.8  # a "high" raw model score, for drift (nlp.drift compares raw score histograms)
# The label threshold is no fixed number: a post is labelled a rumor where its adjusted
# probability reaches the threshold that gives the target precision at the current prevalence
# estimate (nlp.prevalence_store.Decider). This is the target; before any estimate exists the
# threshold equals it (a post whose own calibrated probability reaches the target meets it).
TARGET_PRECISION = DEFAULT_TARGET_PRECISION
LABEL_THRESHOLD = TARGET_PRECISION
#: Re-estimate the rumor share at most this often (a run also re-estimates when none exists).
REESTIMATE_EVERY = dt.timedelta(hours=1)
EXPLAIN_TERMS = 5
RECENT_TEXTS = 20_000  # texts a shared segmenter remembers: a batch or more, cut by the model then a stage
PARALLEL_MIN_POSTS = 6_000  # below this a process pool costs more (start + model load) than it saves
_CHUNK = 500
# CPython's cyclic collector runs a young collection every 700 net allocations and now and then a
# full one that walks every live object. A run keeps millions of small long-lived objects (story
# index buckets, per-story stats, the model) and allocates millions more per batch: with the
# default thresholds a quarter of the main process's CPU went to the collector (40k posts: 6.3 s
# of CPU -> 4.6 s) and a sixth of the workers'. So the automatic collector is off during a run and
# the young generations are collected once after each batch (`_collect_per_batch`): by then the
# batch's temporary objects are gone, and a collection walks only what the batch left alive
# (100k posts, main process: the collector's CPU 3.7 s -> 2.7 s, against a young-generation
# threshold of 50,000, the step before). Garbage cycles are still collected, once per batch.


class Classifier(Protocol):
    """What the pipeline needs from a rumor model (nlp.classifier.RumorModel has it)."""

    version: str

    def predict_proba(self, texts: Sequence[str]) -> Any: ...

    def explain(self, texts: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]: ...


# ----------------------------------------------------------------------------- the pure text part


@dataclass
class TextFeatures:
    """Everything computed from the texts alone (picklable, returned by worker processes)."""

    norm: list[str]
    keys: list[str]
    signatures: np.ndarray
    proba: np.ndarray
    explanations: list[list[list[Any]]]  # per post: [term, weight] pairs, as stored (JSON)
    debunks: list[DebunkHit | None]
    timings: dict[str, float]
    story_prep: BatchPrep | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # stage name -> its text part's result
    # Set by `decide` in the main process: the model's own scores (``proba`` then holds the
    # probabilities adjusted to the channel's rumor share) and each post's label (1, 0, or
    # LABEL_ABSTAIN where the model cannot judge the text).
    raw: np.ndarray | None = None
    labels: np.ndarray | None = None


TextPart = Callable[..., Any]  # part(norm_texts) or, with ``wants_context``, part(norm_texts, contexts)


class PostContext(NamedTuple):
    """What a text part may know of a post besides its text (picklable, sent to the workers)."""

    is_reply: bool  # a reply to, or quote of, another post (posts.parent_id / parent_key)
    channel: str  # web | chat
    has_title: bool
    group: int | None = None  # chat group id: the role classifier reads the conversation
    at: float | None = None  # posted at, seconds since the epoch
    # The post's id and the id of the post it replies to: the role classifier reads the replied-to
    # message's role and words (from the batch, or as stored when an earlier batch analysed it).
    post: int | None = None
    parent: int | None = None
    parent_role: str = ""  # the parent's stored role, when it is not in this batch
    parent_text: str = ""  # the parent's stored normalised text, with parent_role


def _positive_column(proba: Any) -> np.ndarray:
    arr = np.asarray(proba, dtype=np.float64)
    return arr[:, 1] if arr.ndim == 2 else arr


def text_features(
    texts: Sequence[str],
    model: Classifier,
    matcher: DebunkMatcher | None,
    explain_k: int = EXPLAIN_TERMS,
    banding: BandedIndex | None = None,
    parts: dict[str, TextPart] | None = None,
    contexts: Sequence[PostContext] | None = None,
) -> TextFeatures:
    """Normalise, classify + explain, sign and match debunks: the CPU-heavy, database-free part.

    With ``banding`` (the story index, or its empty twin) also the story grouping's
    `prepare_batch`, so the main process only looks stories up. ``parts``: the stages' per-text
    parts (`Stage.text_part`), each run on the normalised texts into ``extras[stage name]``; a
    part with ``wants_context = True`` is called ``part(norm, contexts)`` (one `PostContext` per
    text, or None when the caller has none).
    """
    # CPU seconds, not wall: on a shared machine a worker's wall time measures its neighbours.
    clock = time.process_time
    timings: dict[str, float] = {}
    t0 = clock()
    norm = [normalize(t) for t in texts]
    keys = [match_key(n) for n in norm]
    t1 = clock()
    timings["normalize"] = t1 - t0
    proba, explanations = _classify_and_explain(model, norm, explain_k)
    t2 = clock()
    timings["classify_explain"] = t2 - t1
    shingles = shingle_batch(keys)
    signatures = shingles.signatures()
    t4 = clock()
    timings["signatures"] = t4 - t2
    debunks: list[DebunkHit | None] = (
        matcher.match(keys, signatures, shingles)
        if matcher is not None and len(matcher)
        else [None] * len(texts)
    )
    t5 = clock()
    timings["debunks"] = t5 - t4
    prep = prepare_batch(banding, keys, signatures) if banding is not None else None
    timings["story_prep"] = clock() - t5
    extras = {}
    for name, part in (parts or {}).items():
        t6 = clock()
        extras[name] = part(norm, contexts) if getattr(part, "wants_context", False) else part(norm)
        timings[f"{name}.text"] = clock() - t6
    return TextFeatures(norm, keys, signatures, proba, explanations, debunks, timings, prep, extras)


def _classify_and_explain(
    model: Classifier, norm: Sequence[str], k: int
) -> tuple[np.ndarray, list[list[list[Any]]]]:
    """P(rumor) and the top terms of already-normalised texts, as stored ([term, weight] pairs,
    built here so the worker processes do it rather than the main one).

    RumorModel featurises once for both (``predict_and_explain_normalized``); any other
    `Classifier` is asked twice (normalisation is idempotent, so passing ``norm`` is safe).
    """
    if not norm:
        return np.zeros(0), []
    both = getattr(model, "predict_and_explain_normalized", None)
    if both is not None:
        proba, explained = both(norm, k)
    else:
        proba, explained = _positive_column(model.predict_proba(norm)), model.explain(norm, k=k)
    return proba, [[[str(term), round(float(w), 4)] for term, w in row] for row in explained]


@contextmanager
def _collect_per_batch() -> Iterator[None]:
    """Turn the automatic collector off for the block; the caller runs `_batch_done` after each
    batch (see the comment above)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _batch_done() -> None:
    """A batch is done: collect the young generations (what survives joins the oldest)."""
    gc.collect(1)


_WORKER: dict[str, Any] = {}


def _portable(model: Classifier) -> Classifier:
    """What a worker process gets: RumorModel's sklearn-free twin (unpickling the sklearn
    pipeline would import scikit-learn, about a second of CPU per worker), else the model."""
    portable = getattr(model, "portable", None)
    return portable() if portable is not None else model



def _share_segmenter(model: Classifier, parts: dict[str, TextPart]) -> None:
    """Let text parts that segment (``share_segmenter``) reuse the words the model's featuriser
    has just cut from the same batch, instead of segmenting every text a second time."""
    wants = [p for p in parts.values() if hasattr(p, "share_segmenter")]
    features = getattr(model, "features", None)
    seg = getattr(features, "segmenter", None) if features is not None else None
    if not wants or seg is None or not hasattr(seg, "remember_recent"):
        return
    seg.remember_recent(RECENT_TEXTS)
    for part in wants:
        part.share_segmenter(seg)


def _worker_init(state_file: str, parent_pid: int | None = None) -> None:
    """Set a worker up from the state `_write_worker_state` pickled to ``state_file``."""
    if parent_pid is not None:
        die_with_parent(parent_pid)  # a kill -9 of `yuqing analyze` must not leave workers behind
    with open(state_file, "rb") as fh:
        model, matcher, explain_k, banding, parts = pickle.load(fh)  # our own file (mode 0600)
    _share_segmenter(model, parts)
    _WORKER.update(model=model, matcher=matcher, explain_k=explain_k, banding=banding, parts=parts)
    gc.disable()  # our own process, for its lifetime: `_worker_run` collects after each batch
    logging.getLogger("jieba").setLevel(logging.WARNING)


def _write_worker_state(model: Classifier, matcher: DebunkMatcher | None, explain_k: int,
                        banding: BandedIndex | None, parts: dict[str, TextPart]) -> str:
    """Pickle what each worker needs (about 35 MB: the models' arrays) to a private temporary file
    that the workers read, instead of passing it as the pool's ``initargs``.

    Why: a spawned worker receives its initargs through a pipe, and the parent's write blocks
    until the child has read them, i.e. until the child has started Python and imported
    everything the pickle names (seconds on this machine, longer under load). The pool starts
    its workers one after the other from ``submit``, so the run stood still for both starts
    before its first batch. A path is a few bytes: the workers now start in parallel with the run.
    """
    fd, path = tempfile.mkstemp(prefix="yuqing-analyze-", suffix=".pickle")  # mode 0600
    with os.fdopen(fd, "wb") as fh:
        pickle.dump((model, matcher, explain_k, banding, parts), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _worker_run(texts: list[str], contexts: list[PostContext] | None = None) -> TextFeatures:
    w = _WORKER
    out = text_features(texts, w["model"], w["matcher"], w["explain_k"], w["banding"], w["parts"], contexts)
    _batch_done()
    return out


# ----------------------------------------------------------------------------- batches and stages


@dataclass
class PostRow:
    id: int
    title: str | None
    raw_text: str
    content_hash: str
    channel: str
    group_id: int | None
    source_id: int | None
    published_at: dt.datetime | None
    collected_at: dt.datetime
    story_id: int | None
    image_text: str | None = None  # recognised in the post's pictures (nlp.images), analysed with the text
    parent_id: int | None = None
    parent_key: str | None = None
    author: str | None = None  # the sender (a pseudonym in chat): grouping reads who carries a matter on
    # The replied-to post's stored role and normalised text when an earlier batch analysed it
    # (`_with_stored_parents`).
    parent_role: str = ""
    parent_text: str = ""

    @property
    def context(self) -> PostContext:
        return PostContext(self.parent_id is not None or self.parent_key is not None, self.channel, bool(self.title),
                           self.group_id, self.when.timestamp(), self.id, self.parent_id, self.parent_role,
                           self.parent_text)

    @property
    def text(self) -> str:
        text = f"{self.title}\n{self.raw_text}" if self.title else self.raw_text
        return f"{text}\n{self.image_text}" if self.image_text else text

    @property
    def when(self) -> dt.datetime:
        return self.published_at or self.collected_at


@dataclass
class Batch:
    """One batch of posts on its way through the stages; lists are parallel to ``rows``."""

    rows: list[PostRow]
    features: TextFeatures | None = None
    story_ids: list[int | None] = field(default_factory=list)
    post_columns: dict[str, list[Any]] = field(default_factory=dict)
    pending: Future[TextFeatures] | None = None
    segmenter: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]

    def _f(self) -> TextFeatures:
        if self.features is None:
            raise RuntimeError("the 'text' stage has not run on this batch yet")
        return self.features

    @property
    def norm(self) -> list[str]:
        return self._f().norm

    @property
    def proba(self) -> np.ndarray:
        """P(rumor) adjusted to each post's channel (after the text stage)."""
        return self._f().proba

    @property
    def raw_proba(self) -> np.ndarray:
        """The model's own scores, before the prevalence adjustment."""
        f = self._f()
        return f.raw if f.raw is not None else f.proba

    @property
    def debunks(self) -> list[DebunkHit | None]:
        return self._f().debunks

    def extra(self, stage: str) -> Any:
        """What ``stage``'s text part computed for this batch (None if it did not run)."""
        return self._f().extras.get(stage)

    @cached_property
    def tokens(self) -> list[list[str]]:
        """Words of each normalised post (computed on first use, for stages that need them)."""
        if self.segmenter is None:
            from nlp.segment import Segmenter

            self.segmenter = Segmenter()
        return self.segmenter.cut_many(self.norm)


@dataclass
class AnalysisContext:
    """Per-run state shared by the stages."""

    session: Session
    model: Classifier
    model_version_id: int | None
    matcher: DebunkMatcher
    stories: StoryIndex
    now: dt.datetime
    explain_k: int = EXPLAIN_TERMS
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    segmenter: Any = None
    text_parts: dict[str, TextPart] = field(default_factory=dict)  # see Stage.text_part

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[AnalysisContext, Batch], None]
    # Builds, once per run, this stage's per-text part: run with the text stage (see the module
    # docstring), its result reaches `run` as batch.extra(name).
    text_part: Callable[[AnalysisContext], TextPart] | None = None
    # Called once after the last batch (then the run commits): work a stage batches up across
    # batches, e.g. rows it rewrites often (the incident stage's stats).
    finish: Callable[[AnalysisContext], None] | None = None


def text_stage(ctx: AnalysisContext, batch: Batch) -> None:
    """Normalise, classify, explain, sign, match debunks (here, or collect a worker's result)."""
    if batch.pending is not None:
        t0 = time.perf_counter()
        batch.features = batch.pending.result()
        batch.pending = None
        ctx.timings["wait_workers"] = ctx.timings.get("wait_workers", 0.0) + time.perf_counter() - t0
    elif batch.features is None:
        batch.features = text_features(
            [r.text for r in batch.rows], ctx.model, ctx.matcher, ctx.explain_k, ctx.stories.lsh, ctx.text_parts,
            [r.context for r in batch.rows],
        )
    for name, seconds in batch.features.timings.items():
        ctx.timings[name] = ctx.timings.get(name, 0.0) + seconds
    decide(ctx, batch)


def decide(ctx: AnalysisContext, batch: Batch) -> None:
    """Adjust the batch's scores to each channel's estimated rumor share, abstain on texts the
    model cannot judge, and label the rest at the current threshold (nlp.prevalence_store)."""
    f = batch._f()
    if f.raw is not None:
        return
    t0 = time.perf_counter()
    decider: Decider = ctx.state.get("decider") or Decider(train_prior_of(getattr(ctx.model, "card", None)))
    abstainer: Abstainer = ctx.state.get("abstainer") or Abstainer()
    channels = [r.channel for r in batch.rows]
    f.raw = np.asarray(f.proba, dtype=np.float64)
    f.proba, f.labels = decider.decide(f.raw, channels, abstainer.mask(f.norm))
    ctx.count("abstained", int((f.labels == LABEL_ABSTAIN).sum()))
    ctx.timings["decide"] = ctx.timings.get("decide", 0.0) + time.perf_counter() - t0


def story_stage(ctx: AnalysisContext, batch: Batch) -> None:
    f = batch._f()
    members = [
        StoryMember(
            post_id=r.id,
            key=f.keys[i],
            when=r.when,
            old_story_id=r.story_id,
            title=f.norm[i][:200],
            group_id=r.group_id,
            source_id=r.source_id,
            rumor_probability=float(f.proba[i]),
            debunk_id=hit.debunk_id if hit else None,
            debunk_similarity=hit.similarity if hit else None,
        )
        for i, (r, hit) in enumerate(zip(batch.rows, f.debunks, strict=True))
    ]
    tick = _Ticker(ctx, "stories.")
    assigned, updates = assign_stories(ctx.stories, members, f.signatures, prep=f.story_prep)
    tick("assign")
    ctx.count("stories_new", sum(1 for s in updates if s < 0))
    batch.story_ids = write_stories(ctx.session, ctx.stories, assigned, updates)
    tick("write")
    # Stories founded by this batch got exact counts at insert; older ones are recounted after
    # the posts point at them (the write stage).
    ctx.state["_recount_stories"] = sorted(s for s in updates if s > 0)


def write_stage(ctx: AnalysisContext, batch: Batch) -> None:
    """Everything back to the database in a handful of executemany statements."""
    session, f, now = ctx.session, batch._f(), utcnow()
    conn = session.connection()
    ids = batch.ids
    tick = _Ticker(ctx, "write.")
    # Matches of a re-analysed post are replaced, not accumulated.
    match_table = cast(Table, DebunkMatch.__table__)
    for start in range(0, len(ids), _CHUNK):
        conn.execute(delete(match_table).where(match_table.c.post_id.in_(ids[start : start + _CHUNK])))
    # Constant columns are values converted once (nlp.bulk.constant), not per-row parameters.
    matches = [
        {"post_id": r.id, "debunk_id": hit.debunk_id, "similarity": hit.similarity, "method": hit.method}
        for r, hit in zip(batch.rows, f.debunks, strict=True)
        if hit is not None
    ]
    if matches:
        conn.execute(match_table.insert().values(matched_at=constant(conn, match_table.c.matched_at, now)), matches)
    ctx.count("debunk_matches", len(matches))
    tick("matches")

    scores = []
    raw = batch.raw_proba
    for i, r in enumerate(batch.rows):
        p = float(f.proba[i])
        hit = f.debunks[i]
        explanation = f.explanations[i]
        if hit is not None:  # a known rumor is flagged whatever the classifier says
            explanation = [[f"{DEBUNK_TERM_PREFIX}{hit.debunk_id}", hit.similarity], *explanation]
        label = int(f.labels[i]) if f.labels is not None else int(p >= LABEL_THRESHOLD)
        if hit is not None:
            label = 1
        scores.append({"post_id": r.id, "rumor_probability": p, "raw_probability": float(raw[i]),
                       "label": label, "explanation": explanation})
    _upsert_scores(session, scores, ctx.model_version_id, now)
    tick("scores")

    table = cast(Table, Post.__table__)
    extra_cols = {name: values for name, values in batch.post_columns.items() if values is not None}
    for name, column in extra_cols.items():
        if len(column) != len(batch):
            raise ValueError(f"post_columns[{name!r}] has {len(column)} values for {len(batch)} posts")
    new_values: dict[str, Any] = {
        "norm_text": bindparam("_norm"),
        "story_id": bindparam("_story"),
        "analyzed_at": constant(conn, table.c.analyzed_at, now),
    }
    new_values |= {name: bindparam(f"_x_{name}") for name in extra_cols}
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"), table.c.content_hash == bindparam("_hash"),
               # pictures read while this batch was analysed leave the post for the next run
               table.c.image_text.is_not_distinct_from(bindparam("_img")))
        .values(new_values)
    )
    params: list[dict[str, Any]] = []
    for i, r in enumerate(batch.rows):
        row = {"_id": r.id, "_hash": r.content_hash, "_norm": f.norm[i], "_story": batch.story_ids[i],
               "_img": r.image_text}
        for name, column in extra_cols.items():
            row[f"_x_{name}"] = column[i]
        params.append(row)
    executemany(conn, stmt, params)
    tick("posts")
    refresh_counts(session, ctx.state.pop("_recount_stories", []))
    tick("story_counts")
    ctx.count("posts", len(batch))


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall seconds to ``timings[name]`` and its CPU seconds to
    ``timings["cpu." + name]`` (on a shared machine the CPU seconds are the steadier figure)."""
    t, c = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
        timings["cpu." + name] = timings.get("cpu." + name, 0.0) + time.process_time() - c


class _Ticker:
    """Adds the CPU time since the last tick to ``ctx.timings["cpu." + prefix + name]``."""

    def __init__(self, ctx: AnalysisContext, prefix: str) -> None:
        self.ctx, self.prefix, self.last = ctx, prefix, time.process_time()

    def __call__(self, name: str) -> None:
        now = time.process_time()
        key = "cpu." + self.prefix + name
        self.ctx.timings[key] = self.ctx.timings.get(key, 0.0) + now - self.last
        self.last = now


STAGES: list[Stage] = [
    Stage("text", text_stage),
    Stage("stories", story_stage),
    Stage(CONCERNS_STAGE, concerns_stage, text_part=concerns_text_part),
    Stage(INCIDENTS_STAGE, incidents_stage, text_part=incidents_text_part, finish=incidents_finish),
    Stage("write", write_stage),
]


def stages_without(*names: str) -> list[Stage]:
    """The default pipeline minus the named stages (e.g. a rumor-only run: ``"concerns"``)."""
    unknown = set(names) - {s.name for s in STAGES}
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; the pipeline has {[s.name for s in STAGES]}")
    return [s for s in STAGES if s.name not in names]


def register_stage(stage: Stage, *, before: str = "write") -> None:
    """Insert a stage into the default pipeline (idempotent by name)."""
    global STAGES
    names = [s.name for s in STAGES]
    if stage.name in names:
        STAGES = [stage if s.name == stage.name else s for s in STAGES]
        return
    STAGES.insert(names.index(before) if before in names else len(STAGES), stage)


def _upsert_scores(
    session: Session, rows: list[dict[str, Any]], model_version_id: int | None, now: dt.datetime
) -> None:
    if not rows:
        return
    table = cast(Table, PostScore.__table__)
    conn = session.connection()
    scored_at = constant(conn, table.c.scored_at, now)
    if model_version_id is None:
        # NULL never conflicts in a unique index: replace by delete + insert instead.
        ids = [r["post_id"] for r in rows]
        for start in range(0, len(ids), _CHUNK):
            conn.execute(
                delete(table).where(
                    table.c.post_id.in_(ids[start : start + _CHUNK]), table.c.model_version_id.is_(None)
                )
            )
        conn.execute(table.insert().values(model_version_id=None, scored_at=scored_at), rows)
        return
    # Named binds, so nlp.bulk.executemany can run it: SQLAlchemy's general executemany path
    # processed every row's five values one by one (a third of the write stage's Python work).
    cols = list(rows[0])
    ins = upsert_insert(session, table).values(
        {c: bindparam(f"_{c}") for c in cols} | {"model_version_id": model_version_id, "scored_at": scored_at}
    )
    stmt = ins.on_conflict_do_update(
        index_elements=["post_id", "model_version_id"],
        set_={c: ins.excluded[c] for c in ("rumor_probability", "raw_probability", "label", "explanation",
                                           "scored_at")},
    )
    executemany(conn, stmt, [{f"_{c}": r[c] for c in cols} for r in rows])


# ----------------------------------------------------------------------------- the model registry


def ensure_model_version(session: Session, model: Classifier, path: str | Path | None = None) -> int:
    """The ``model_versions`` id of a model passed in by the caller (tests, benchmarks, notebooks).

    The shipped model is registered through :mod:`nlp.registry` (with its path and card); any
    other version is recorded as a candidate, or as active when nothing is.
    """
    from nlp import registry
    from nlp.classifier import default_model_path

    version = str(getattr(model, "version", "") or "unknown")
    found = session.scalar(
        select(ModelVersion).where(ModelVersion.name == MODEL_NAME, ModelVersion.version == version)
    )
    if found is not None:
        return found.id
    try:
        shipped = default_model_path()
    except FileNotFoundError:
        shipped = None
    if shipped is not None and shipped.name == version:
        active = registry.ensure_registered(session)
        if active.version == version:
            return active.id
        return registry.register_version(session, shipped).id
    has_active = registry.active_count(session)
    row = ModelVersion(
        name=MODEL_NAME,
        version=version,
        path=str(path or getattr(model, "path", "") or ""),
        status="candidate" if has_active else "active",
        card=dict(getattr(model, "card", {}) or {}),
        promoted_at=None if has_active else utcnow(),
        note=None if has_active else "首次使用时自动登记",
    )
    session.add(row)
    session.flush()
    log.debug("model registered", extra={"version": version, "status": row.status})
    return row.id


def load_active_model(session: Session) -> tuple[Classifier, int]:
    """The active rumor model and its id, from the registry (hot-swapped when another is promoted)."""
    from nlp.registry import load_active_model as registry_load

    return registry_load(session)


# ----------------------------------------------------------------------------- the run


def _abstainer(session: Session, model_version_id: int | None) -> Abstainer:
    row = session.get(ModelVersion, model_version_id) if model_version_id is not None else None
    return load_abstainer(row.path if row is not None and row.path else None)


def _estimate_due(session: Session, model_version_id: int | None, now: dt.datetime) -> bool:
    from nlp.prevalence_store import current

    latest = current(session, model_version_id).get("all")
    return latest is None or latest.created_at <= now - REESTIMATE_EVERY


def score_histogram(proba: np.ndarray, bins: int = HIST_BINS) -> list[int]:
    counts, _ = np.histogram(np.clip(proba, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return [int(c) for c in counts]


def backlog(session: Session) -> int:
    """How many posts wait for analysis."""
    return int(session.scalar(select(func.count()).select_from(Post).where(Post.analyzed_at.is_(None))) or 0)


def _read_batches(session: Session, batch_size: int, limit: int | None) -> Iterator[list[PostRow]]:
    t = Post.__table__
    cols = [
        t.c.id,
        t.c.title,
        t.c.raw_text,
        t.c.content_hash,
        t.c.channel,
        t.c.group_id,
        t.c.source_id,
        t.c.published_at,
        t.c.collected_at,
        t.c.story_id,
        t.c.parent_id,
        t.c.parent_key,
        t.c.author,
    ]
    last = 0
    image_text = t.c.image_text
    taken = 0
    while limit is None or taken < limit:
        size = batch_size if limit is None else min(batch_size, limit - taken)
        rows = session.execute(
            select(*cols, image_text).where(t.c.analyzed_at.is_(None), t.c.id > last).order_by(t.c.id).limit(size)
        ).all()
        if not rows:
            return
        last = rows[-1].id
        taken += len(rows)
        batch = [PostRow(**row._mapping) for row in rows]  # by column name: PostRow's fields are posts' columns
        _with_stored_parents(session, batch)
        yield batch


# Of a stored parent the role classifier reads the words it shares with the reply: its first
# characters are enough, and they bound what one batch reads.
_PARENT_TEXT_CHARS = 300


def _with_stored_parents(session: Session, rows: list[PostRow]) -> None:
    """Give each reply whose parent is outside the batch the parent's stored role and text: one
    query per batch (a chunk of at most _CHUNK ids), never one per post. A parent not analysed yet
    (no role: a batch still with a worker) stays unknown."""
    inside = {r.id for r in rows}
    wanted = sorted({r.parent_id for r in rows if r.parent_id is not None and r.parent_id not in inside})
    if not wanted:
        return
    t = Post.__table__
    stored: dict[int, tuple[str, str]] = {}
    for start in range(0, len(wanted), _CHUNK):
        q = select(t.c.id, t.c.role, func.substr(t.c.norm_text, 1, _PARENT_TEXT_CHARS)).where(
            t.c.id.in_(wanted[start : start + _CHUNK]), t.c.role.is_not(None))
        for pid, role, text in session.execute(q):
            stored[pid] = (role, text or "")
    for r in rows:
        if r.parent_id in stored:
            r.parent_role, r.parent_text = stored[r.parent_id]


@dataclass
class AnalysisResult:
    run_id: int | None
    posts: int
    seconds: float
    counts: dict[str, int]
    timings: dict[str, float]
    mean_score: float | None
    high_share: float | None
    workers: int

    @property
    def posts_per_second(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0


class RunLock:
    """One `analyze` run at a time per data folder (the scheduler's job and a manual run).

    A ``flock`` on ``<data_dir>/analyze.lock``: released by the OS if the process dies. It guards
    one machine; several machines on one PostgreSQL database need their own coordination.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def analyze(session: Session, **kwargs: Any) -> AnalysisResult:
    """Analyse every post with ``analyzed_at IS NULL``; see :func:`run_analysis` for the options.

    Returns at once (``counts == {"skipped_busy": 1}``) when another run holds the lock.
    """
    from core.settings import get_settings

    lock = RunLock(get_settings().data_dir / "analyze.lock")
    if not lock.acquire():
        log.info("another analyze run is in progress; skipped")
        return AnalysisResult(None, 0, 0.0, {"skipped_busy": 1}, {}, None, None, 0)
    try:
        return run_analysis(session, **kwargs)
    finally:
        lock.release()


def _finish(ctx: AnalysisContext, pipeline: Sequence[Stage]) -> None:
    """Each stage's `Stage.finish`, then a commit."""
    for stage in pipeline:
        if stage.finish is not None:
            with _timed(ctx.timings, stage.name):
                stage.finish(ctx)
    with _timed(ctx.timings, "commit"):
        ctx.session.commit()


def _record_progress(session: Session, run: AnalysisRun | None, started_at: dt.datetime,
                     model_version_id: int | None, done: int, probas: list[np.ndarray],
                     workers: int) -> AnalysisRun:
    """Create or update this run's ``analysis_runs`` row (in the batch's transaction)."""
    if run is None:
        run = AnalysisRun(started_at=started_at, model_version_id=model_version_id, score_histogram=[],
                          stats={"state": "running", "worker": worker_id(), "workers": workers})
        session.add(run)
    proba = np.concatenate(probas) if probas else np.zeros(0)
    run.posts_processed = done
    run.score_histogram = score_histogram(proba)
    run.mean_score = float(proba.mean()) if len(proba) else None
    run.high_share = float((proba >= HIGH_SCORE).mean()) if len(proba) else None
    return run


def mark_interrupted_runs(session: Session) -> int:
    """Runs still "running" whose process is gone (killed) are marked interrupted, keeping the
    work they recorded; returns how many."""
    count = 0
    for run in session.scalars(select(AnalysisRun).where(AnalysisRun.finished_at.is_(None))):
        stats = dict(run.stats or {})
        if stats.get("state") == "running" and owner_gone(stats.get("worker")):
            run.stats = stats | {"state": "interrupted"}
            run.finished_at = utcnow()
            count += 1
    if count:
        session.commit()
        log.warning("marked %d killed analysis run(s) as interrupted", count)
    return count


@_collect_per_batch()
def run_analysis(
    session: Session,
    *,
    model: Classifier | None = None,
    model_version_id: int | None = None,
    batch_size: int = 2000,
    workers: int | None = None,
    limit: int | None = None,
    stages: Sequence[Stage] | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    progress: Callable[[int, int], None] | None = None,
    now: dt.datetime | None = None,
    reestimate_prevalence: bool = False,
) -> AnalysisResult:
    """Analyse every post with ``analyzed_at IS NULL``; commits after each batch.

    ``model`` defaults to the active model (registered on first use). ``workers``: processes for
    the text stage (None: both cores when the backlog is large, else none; 0 or 1: in-process).
    ``progress(done, total)`` is called after each batch. After the batches the rumor share of
    each channel is re-estimated (at most every `REESTIMATE_EVERY`, or always with
    ``reestimate_prevalence``) and recent scores re-adjusted to it (nlp.prevalence_store).
    """
    started = time.perf_counter()
    run_started_at = utcnow()
    if model is None:
        model, model_version_id = load_active_model(session)
    elif model_version_id is None:
        model_version_id = ensure_model_version(session, model)
    session.commit()  # a model registered just now: the write lock is not held through loading
    total = backlog(session)
    if limit is not None:
        total = min(total, limit)
    timings: dict[str, float] = {}
    with _timed(timings, "load_indexes"):
        matcher = DebunkMatcher.from_session(session)
        index = StoryIndex.load(session, now=now, window_days=window_days)
        ctx = AnalysisContext(
            session=session,
            model=model,
            model_version_id=model_version_id,
            matcher=matcher,
            stories=index,
            now=now or utcnow(),
            timings=timings,
        )
        ctx.state["decider"] = decider_for(session, model_version_id, card=getattr(model, "card", None))
        ctx.state["abstainer"] = _abstainer(session, model_version_id)
    pipeline = list(stages) if stages is not None else list(STAGES)
    ctx.text_parts = {s.name: s.text_part(ctx) for s in pipeline if s.text_part is not None}
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if total >= PARALLEL_MIN_POSTS else 0
    pool: ProcessPoolExecutor | None = None
    state_file: str | None = None
    if workers > 1 and total > batch_size:
        import multiprocessing  # spawn: a forked child would share (and close) our DB connections

        with _timed(ctx.timings, "start_workers"):
            state_file = _write_worker_state(_portable(model), matcher.portable(), ctx.explain_k,
                                             index.lsh.empty_like(), ctx.text_parts)
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(state_file, os.getpid()),
        )
    else:
        workers = 0
    probas: list[np.ndarray] = []
    done = 0
    mark_interrupted_runs(session)
    # Whatever else setup wrote commits now: on SQLite an open write holds the database's one write
    # lock, here while the workers start and the first batch runs, and every push and token touch
    # would wait for it (10 s and more measured on a fresh database).
    session.commit()
    run: AnalysisRun | None = None
    try:
        reader = _read_batches(session, batch_size, limit)
        queue: list[Batch] = []
        depth = workers + 1 if pool else 1

        def refill() -> None:
            while len(queue) < depth:
                with _timed(ctx.timings, "read"):
                    rows = next(reader, None)
                if rows is None:
                    return
                batch = Batch(rows=rows, segmenter=ctx.segmenter)
                if pool is not None:
                    batch.pending = pool.submit(_worker_run, [r.text for r in rows], [r.context for r in rows])
                queue.append(batch)

        refill()
        while queue:
            batch = queue.pop(0)
            for stage in pipeline:
                # "text" in the main process: waiting for a worker, or the text work itself without one
                with _timed(ctx.timings, "text_main" if stage.name == "text" else stage.name):
                    stage.run(ctx, batch)
            probas.append(batch.raw_proba)  # drift is measured on the model's own scores
            done += len(batch)
            with _timed(ctx.timings, "commit"):
                # the run's record rides on the batch's commit: a killed run leaves what it did
                run = _record_progress(session, run, run_started_at, model_version_id, done, probas, workers)
                session.commit()
            with _timed(ctx.timings, "collect"):
                _batch_done()
            if progress is not None:
                progress(done, total)
            refill()
        _finish(ctx, pipeline)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if state_file is not None:
            Path(state_file).unlink(missing_ok=True)
    proba = np.concatenate(probas) if probas else np.zeros(0)
    seconds = time.perf_counter() - started
    run_id = None
    mean = float(proba.mean()) if len(proba) else None
    high = float((proba >= HIGH_SCORE).mean()) if len(proba) else None
    if done and run is not None:
        run.finished_at = utcnow()
        run.posts_processed = done
        run.score_histogram = score_histogram(proba)
        run.mean_score, run.high_share = mean, high
        run.stats = {
            "seconds": round(seconds, 3),
            "posts_per_second": round(done / seconds, 1),
            "workers": workers,
            "batch_size": batch_size,
            "counts": dict(ctx.counts),
            "timings": {k: round(v, 3) for k, v in ctx.timings.items()},
            "histogram_bins": HIST_BINS,
            "high_threshold": HIGH_SCORE,
            "state": "finished",
            "worker": worker_id(),
        }
        session.commit()
        run_id = run.id
    if done and (reestimate_prevalence or _estimate_due(session, model_version_id, ctx.now)):
        with _timed(ctx.timings, "prevalence"):
            reestimate(session, model_version_id=model_version_id, card=getattr(model, "card", None), now=ctx.now)
            session.commit()
    log.info("analyze done", extra={"posts": done, "seconds": round(seconds, 2), "workers": workers})
    return AnalysisResult(run_id, done, seconds, dict(ctx.counts), dict(ctx.timings), mean, high, workers)
