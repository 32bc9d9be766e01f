"""The concern stage of `yuqing analyze`: categories, places, mood, topics and bursts.

`update_concerns` takes a batch of posts that the pipeline has normalised and segmented and
writes back, in a few set-based statements (Core executemany, no per-row ORM objects):

* on each post: ``category``, ``negativity``, ``is_local``, ``places``, ``topic_id`` (or hands
  them to the pipeline's own UPDATE of the batch, see ``post_columns``);
* topics: new ones, and for touched ones counts, hourly volume and mood, label, keywords,
  representative post, category, places, distinct groups/sources, centroid;
* keyword counts per hour (`keyword_rates`, for keyword bursts), hashed document frequencies (TF-IDF);
* bursts: every touched or currently hot topic is scored against its own baseline at ``now``;
  hot hours are recorded in ``topic_bursts``.

A post that matches nothing waits in the pending pool (`nlp.concerns.pending`) instead of
becoming a one-post topic; it becomes a topic, with its first post, when a second post joins.

Re-running a batch is safe: a post that was analysed before is first taken out of its topic or
the pending pool (its keywords are not counted twice), then assigned again.
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np
import scipy.sparse as sp
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.settings import Settings, get_settings
from core.tables import ConcernState, Post, Story, Topic, TopicBurst, utcnow
from nlp.bulk import constant, executemany
from nlp.concerns import keyword_rates
from nlp.concerns import pending as pend
from nlp.concerns import topics as tp
from nlp.concerns.bursts import BurstParams, burst, hour_floor, hour_key
from nlp.concerns.mood import mood
from nlp.concerns.places import Gazetteer, load_gazetteer
from nlp.concerns.taxonomy import Taxonomy, load_taxonomy
from nlp.cues import refutation_cues
from nlp.headline import headline

log = logging.getLogger(__name__)

_POSTS: Table = Post.__table__  # type: ignore[assignment]
_STORIES: Table = Story.__table__  # type: ignore[assignment]
_TOPICS: Table = Topic.__table__  # type: ignore[assignment]
_BURSTS: Table = TopicBurst.__table__  # type: ignore[assignment]

DF_STATE = "topic_docfreq"
KEEP_HOURLY = dt.timedelta(days=30)
TOPIC_KEYWORDS = 30  # keyword counts kept per topic
LABEL_WORDS = 4  # keywords in a label of last resort (no member says anything once its hooks go)
LABEL_TEXT_CHARS = 120  # of a member's text kept to cut its headline from
SINGLETON_MATCH_HOURS = 24  # pending one-post matters older than this are no longer offered for joining
COLD_START_DOCS = 1_000  # posts seen before the stored document frequencies are trusted for IDF
_IN_CHUNK = 500
# The per-post columns the stage sets (the pipeline's write stage can take them, see update_concerns).
POST_COLUMNS = ("topic_id", "category", "negativity", "is_local", "places")


@dataclass(frozen=True)
class PostView:
    """What the concern stage needs of a post (the pipeline builds these)."""

    id: int
    norm_text: str
    tokens: Sequence[str]
    published_at: dt.datetime | None = None
    group_id: int | None = None
    source_id: int | None = None
    story_id: int | None = None
    parent_id: int | None = None  # the post this one replies to or forwards (read from posts if None)
    text: PostText | None = None  # what ConcernText derived from norm_text (computed by the stage if None)


@dataclass
class ConcernStats:
    posts: int = 0
    local_posts: int = 0
    concern_posts: int = 0  # questions, complaints, clearly negative
    in_topics: int = 0
    pending: int = 0  # one-post matters waiting for a second post (after this batch)
    topics_new: int = 0
    topics_updated: int = 0
    hot_topic_ids: list[int] = field(default_factory=list)
    newly_hot_ids: list[int] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (wall clock)
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds per phase (robust on a busy host)

    def lap(self, name: str) -> None:
        """Charge the time since the last lap to ``name``."""
        t, c = time.perf_counter(), time.process_time()
        last, last_c = self.__dict__.setdefault("_t", (t, c))
        self.timings[name] = round(self.timings.get(name, 0.0) + t - last, 4)
        self.cpu_timings[name] = round(self.cpu_timings.get(name, 0.0) + c - last_c, 4)
        self.__dict__["_t"] = (t, c)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class PostText(NamedTuple):
    """What the stage derives from one post's normalised text alone (no database, no run state):
    computed by `ConcernText`, in the pipeline's worker processes for a large backlog (a tuple of
    plain values: it is pickled back to the main process, 100k of them per 100k posts)."""

    negativity: float
    concern: bool  # Mood.is_concern
    category: str
    places: list[str]
    local: bool
    keywords: list[str]  # place names whole, see ConcernText.with_places
    hashed: list[int]  # topics.feature_index of each keyword


class ConcernText:
    """The per-text part of the stage (segment, keywords, mood, category, places, hashed terms).

    Picklable and free of run state, so `nlp.pipeline` can run it where the text stage runs (a
    worker process) and hand the main process finished `PostText` values.
    """

    def __init__(self, taxonomy: Taxonomy, gazetteer: Gazetteer, stopwords: frozenset[str],
                 category_model: Any = None, segmenter: Any = None) -> None:
        self.taxonomy, self.gazetteer, self.stopwords = taxonomy, gazetteer, stopwords
        self.category_model = category_model
        self.segmenter = segmenter
        self._place_words = {name: [w for w, n in gazetteer.alias_to_name.items() if n == name]
                             for name in gazetteer.places}
        self._home = gazetteer.home()
        # Memo of "is this token a keyword" (tokens repeat endlessly; the test is a regex).
        self._seen: set[str] = set()
        self._ok: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_seen"], state["_ok"] = set(), set()  # a memo, rebuilt where it is used
        return state

    def share_segmenter(self, segmenter: Any) -> None:
        """Segment with ``segmenter`` (the rumor model's, which has just cut the same texts and
        remembers them) when it cuts as the stage's own default would."""
        from nlp.segment import Segmenter

        if segmenter is not None and segmenter == Segmenter():
            self.segmenter = segmenter

    def __call__(self, norms: Sequence[str], tokens: Sequence[Sequence[str]] | None = None) -> list[PostText]:
        """`PostText` of each normalised text (``tokens``: their words, segmented here if None)."""
        texts = [t or "" for t in norms]
        if tokens is None:
            if self.segmenter is None:
                from nlp.segment import Segmenter

                self.segmenter = Segmenter()
            tokens = self.segmenter.cut_many(texts)
        cats = self.categories(texts)
        out = []
        for text, cat, kws in zip(texts, cats, self.keywords_many(tokens), strict=True):
            places = self.gazetteer.find(text)
            # Place names join the keywords whole, however the segmenter cut them ("石桥" "村").
            kws = self.with_places(kws, places)
            m = mood(text)
            out.append(PostText(m.negativity, m.is_concern, cat, places, self.gazetteer.is_local(places), kws,
                                tp.feature_indices(kws)))
        return out

    def categories(self, texts: list[str]) -> list[str]:
        """Each text's category: the office's trained model where it is confident, the keyword rules otherwise.

        The model learned from the office's own labels, so where it is sure it knows what the office
        means by a category better than a fixed word list does (it weighs the whole text: "口罩涨到
        五块一个" is 物价 to the office although "口罩" is a 物资供应 keyword). Where its lead over the
        runner-up category is small (short or unusual texts, categories with few labels) the rules
        decide; categories the taxonomy no longer has are never taken from it.
        """
        from nlp.concerns.classifier import CONFIDENT_MARGIN

        cats = [self.taxonomy.classify(t).category for t in texts]
        if self.category_model is None:
            return cats
        allowed = set(self.taxonomy.categories)
        todo = [i for i, t in enumerate(texts) if t]
        guesses = self.category_model.predict_confident([texts[i] for i in todo], margin=CONFIDENT_MARGIN)
        for i, c in zip(todo, guesses, strict=True):
            if c is not None and c in allowed:
                cats[i] = c
        return cats

    def keywords_many(self, docs: Sequence[Sequence[str]]) -> list[list[str]]:
        """`topics.keywords` of each post: the regex test once per new distinct token of the batch."""
        seen = self._seen
        new = set(itertools.chain.from_iterable(docs)).difference(seen)
        if new:
            if len(seen) > 1 << 20:  # bound the memo (a long-running `yuqing run`)
                seen.clear()
                self._ok.clear()
            seen.update(new)
            self._ok.update(tp.keywords(new, self.stopwords))
        ok = self._ok
        return [[t for t in doc if t in ok] for doc in docs]

    def with_places(self, words: list[str], places: list[str]) -> list[str]:
        """Keywords with each mentioned place once, by its canonical name (no "东湾" next to "东湾村").

        The office's own area (`Gazetteer.home`, 青禾镇) is left out of the keywords (it stays
        among the post's places): shared by nearly every post, it glued unrelated notices
        (供暖, 森林防火, 运动会) into one topic while the document frequencies were still young.
        """
        if not places:
            return words
        names = [w for name in places for w in self._place_words.get(name, ())]
        return [w for w in words if not any(w in n for n in names)] + [p for p in places if p not in self._home]


class ConcernAnalyzer:
    """Loaded configuration of the stage (taxonomy, gazetteer, stopwords, thresholds, models)."""

    def __init__(self, settings: Settings | None = None, taxonomy: Taxonomy | None = None,
                 gazetteer: Gazetteer | None = None, stopwords: frozenset[str] | None = None) -> None:
        self.settings = settings or get_settings()
        self.taxonomy = taxonomy or load_taxonomy()
        self.gazetteer = gazetteer or load_gazetteer()
        if stopwords is None:
            try:
                from nlp.segment import load_stopwords

                stopwords = load_stopwords()
            except (ImportError, FileNotFoundError):  # the segmenter's list is optional here
                stopwords = frozenset()
        self.stopwords = stopwords
        self.burst_params = BurstParams.from_settings(self.settings)
        from nlp.concerns.classifier import load_for_taxonomy

        self.category_model = load_for_taxonomy(self.settings, self.taxonomy)
        self.text = ConcernText(self.taxonomy, self.gazetteer, stopwords, self.category_model)
        # Topic rows as this analyzer last wrote them (valid while the row's updated_at is unchanged):
        # a topic touched in batch after batch is not read and JSON-decoded again each time.
        self.topic_cache: dict[int, _TopicRow] = {}

    def keywords(self, tokens: Iterable[str]) -> list[str]:
        """`topics.keywords` of one post, memoised per token."""
        return self.text.keywords_many([list(tokens)])[0]

    def keywords_many(self, docs: Sequence[Sequence[str]]) -> list[list[str]]:
        return self.text.keywords_many(docs)

    def with_places(self, words: list[str], places: list[str]) -> list[str]:
        return self.text.with_places(words, places)


def _chunks(seq: Sequence[Any], n: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _load_docfreq(session: Session) -> tp.DocFreq:
    row = session.get(ConcernState, DF_STATE)
    if row is None:
        return tp.DocFreq()
    return tp.DocFreq.loads(row.value, float(row.meta.get("n_docs", 0)))


def _save_docfreq(session: Session, dfreq: tp.DocFreq) -> None:
    row = session.get(ConcernState, DF_STATE)
    if row is None:
        session.add(ConcernState(name=DF_STATE, value=dfreq.dumps(), meta={"n_docs": dfreq.n_docs}))
    else:
        row.value = dfreq.dumps()
        row.meta = {"n_docs": dfreq.n_docs}


def update_concerns(session: Session, posts: Sequence[PostView], *, now: dt.datetime,
                    analyzer: ConcernAnalyzer | None = None,
                    post_columns: dict[str, list[Any]] | None = None) -> ConcernStats:
    """Run the concern stage on one batch of analysed posts (see the module docstring).

    With ``post_columns`` (a dict), the per-post values of :data:`POST_COLUMNS` are put there,
    one list per column in the order of ``posts``, for the caller's own UPDATE of these posts
    (the pipeline's write stage) instead of a second UPDATE here.
    """
    if now.tzinfo is None:
        raise ValueError(f"now={now!r} is naive: pass an aware datetime (UTC)")
    # The stage allocates a few hundred thousand small dicts, lists and tuples per batch and
    # creates no reference cycles; the cyclic collector's passes over the run's whole heap
    # cost about a fifth of the stage (measured), so it waits until the stage is done.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _update_concerns(session, posts, now=now, analyzer=analyzer, post_columns=post_columns)
    finally:
        if gc_was_on:
            gc.enable()


def _update_concerns(session: Session, posts: Sequence[PostView], *, now: dt.datetime,
                     analyzer: ConcernAnalyzer | None, post_columns: dict[str, list[Any]] | None) -> ConcernStats:
    started = time.perf_counter()
    an = analyzer or ConcernAnalyzer()
    stats = ConcernStats(posts=len(posts))
    stats.lap("start")
    loaded: dict[int, _TopicRow] = {}
    new_rows: list[_TopicRow] = []
    if posts:
        order = sorted(range(len(posts)), key=lambda i: (posts[i].published_at or now, posts[i].id))
        columns = _process(session, an, [posts[i] for i in order], now, stats, loaded, new_rows)
        if post_columns is not None:
            back = np.argsort(np.asarray(order)).tolist()  # from time order back to the caller's order
            for name, values in columns.items():
                post_columns[name] = [values[i] for i in back]
        else:
            _write_posts(session, [posts[i].id for i in order], columns)
        stats.lap("write_posts_topics")
    _evaluate_bursts(session, an, now, loaded, stats, new_rows)
    stamp = utcnow()
    _update_topics(session, loaded.values(), stamp, an.topic_cache)
    stats.lap("bursts")
    _retire(session, an, now)
    stats.lap("retire")
    stats.timings.pop("start", None)
    stats.cpu_timings.pop("start", None)
    stats.seconds = round(time.perf_counter() - started, 4)
    return stats


@dataclass
class _Rules:
    """Per-post results of the rules (category, mood, places) and keywords, in batch order."""

    times: list[dt.datetime]
    hours: list[str]  # hour_key of each time
    negativity: list[float]
    concern: list[bool]  # questions, complaints, clearly negative (Mood.is_concern)
    cats: list[str]
    places: list[list[str]]
    local: list[bool]
    kws: list[list[str]]
    hashed: list[list[int]]
    strongest: list[set[str]] = field(default_factory=list)


def _strongest(kws: list[list[str]], kept: np.ndarray) -> list[set[str]]:
    """Each post's keywords whose term its vector kept (``kept``: per keyword, flattened in order)."""
    n = len(kws)
    if not kept.size:
        return [set() for _ in range(n)]
    lens = np.fromiter(map(len, kws), dtype=np.int64, count=n)
    rows = np.repeat(np.arange(n, dtype=np.int64), lens)
    words = list(itertools.compress(itertools.chain.from_iterable(kws), kept.tolist()))
    ends = np.cumsum(np.bincount(rows[kept], minlength=n)).tolist()
    out, start = [], 0
    for end in ends:
        out.append(set(words[start:end]))
        start = end
    return out


def _post_texts(an: ConcernAnalyzer, posts: list[PostView]) -> list[PostText]:
    """Each post's `PostText`: as the pipeline's workers computed it, or computed here."""
    todo = [i for i, p in enumerate(posts) if p.text is None]
    done = an.text([posts[i].norm_text for i in todo], [posts[i].tokens for i in todo]) if todo else []
    out: list[Any] = [p.text for p in posts]
    for i, t in zip(todo, done, strict=True):
        out[i] = t
    return out


def _apply_rules(an: ConcernAnalyzer, posts: list[PostView], now: dt.datetime) -> _Rules:
    times = [p.published_at.astimezone(dt.UTC) if p.published_at else now for p in posts]
    neg, concern, cats, places, local, kws, hashed = (list(c) for c in zip(*_post_texts(an, posts), strict=True))
    # The times are UTC already: hour_key without its conversion, once per hour (this runs for
    # every post, and isoformat of an aware datetime costs microseconds).
    keys: dict[tuple[int, int, int, int], str] = {}
    hours = []
    for t in times:
        h = (t.year, t.month, t.day, t.hour)
        key = keys.get(h)
        if key is None:
            key = keys[h] = t.isoformat()[:13]
        hours.append(key)
    return _Rules(times, hours, neg, concern, cats, places, local, kws, hashed)


def _process(session: Session, an: ConcernAnalyzer, posts: list[PostView], now: dt.datetime,
             stats: ConcernStats, loaded: dict[int, _TopicRow], new_rows: list[_TopicRow]) -> dict[str, list[Any]]:
    """Rules, clustering and topic folding of one time-ordered batch; returns the per-post columns."""
    r = _apply_rules(an, posts, now)
    stats.local_posts = sum(r.local)
    stats.concern_posts = sum(r.concern)
    stats.categories = dict(Counter(r.cats))
    stats.lap("rules")

    ids = [p.id for p in posts]
    previous = _take_out_previous(session, ids, loaded, an.topic_cache)
    pool = pend.load(session, tp.N_FEATURES).without(ids).since(now - dt.timedelta(hours=SINGLETON_MATCH_HOURS))
    stats.lap("pending")

    # IDF from the posts before this batch: a matter that bursts in this batch must not make
    # its own words look common. Until COLD_START_DOCS posts have been seen there is no such
    # history, and without IDF boilerplate ("关于", "各村", the town's name) ties every notice to
    # every other: the batch's own frequencies stand in.
    dfreq = _load_docfreq(session)
    fresh = [i for i, p in enumerate(posts) if p.id not in previous]
    hashed = r.hashed
    is_fresh = np.zeros(len(posts), dtype=bool)
    is_fresh[fresh] = True
    cold = dfreq.n_docs < COLD_START_DOCS
    if cold:
        own = tp.vectorize_batch(hashed, dfreq)
        dfreq.add_terms(own.terms[is_fresh[own.rows]], len(fresh))
    vec = tp.vectorize_batch(hashed, dfreq)
    X = vec.X
    if not cold:
        dfreq.add_terms(vec.terms[is_fresh[vec.rows]], len(fresh))
    # Each post's strongest terms (those kept in its vector): what it adds to its topic's keywords
    # and to the keyword rates, rather than every word of a long post.
    r.strongest = _strongest(r.kws, vec.kept)
    stats.lap("vectors")

    clusters, n_topics = _offered_clusters(session, an, now, pool)
    parents = _parent_links(session, posts, clusters, pool, n_topics)
    labels, _ = tp.assign(X, clusters, an.settings.topic_similarity, [len(k) for k in r.kws], parents=parents)
    rep_sims = tp.member_similarity(X, labels, clusters)
    stats.lap("cluster")

    members: dict[int, list[int]] = {}
    for pos, ci in enumerate(labels.tolist()):
        if ci >= 0:
            members.setdefault(ci, []).append(pos)
    first_new = n_topics + len(pool)
    # Positions below n_topics are topics: their keys are topic ids, never None.
    _load_topics(session, [k for ci in members if ci < n_topics and (k := cast(int, clusters.keys[ci])) not in loaded],
                 loaded, cache=an.topic_cache)
    topic_of: dict[int, _TopicRow] = {}  # cluster position -> its topic (None: still one post, pending)
    promoted: list[tuple[pend.PendingPost, _TopicRow]] = []
    singles: list[int] = []
    folded: list[tuple[_TopicRow, str | None]] = []  # each folded topic, the text to label it from
    for ci, mem in members.items():
        if ci < n_topics:
            topic = loaded[clusters.keys[ci]]  # type: ignore[index]
            folded.append((topic, _fold(topic, [_member(posts, r, m, rep_sims) for m in mem], an)))
        elif ci < first_new or len(mem) > 1:
            first = [pool.post(ci - n_topics)] if ci < first_new else []
            topic = _TopicRow.new()
            if first:
                promoted.append((first[0], topic))
                sim = _cosine_with_row(pool.vectors, ci - n_topics, clusters.means, ci)
                head = [_Member(first[0].id, first[0].time, hour_key(first[0].time), first[0].negativity, first[0].category, first[0].places,
                                first[0].local, first[0].keywords, sim, first[0].group_id, first[0].source_id)]
            else:
                head = []
            folded.append((topic, _fold(topic, head + [_member(posts, r, m, rep_sims) for m in mem], an)))
            new_rows.append(topic)
        else:
            singles.append(mem[0])
            continue
        topic_of[ci] = topic
    for topic, blob in zip(topic_of.values(), clusters.centroids(list(topic_of)), strict=True):
        topic.centroid = blob
    _label_topics(folded, dfreq)
    stats.topics_new = len(new_rows)
    stats.topics_updated = len(topic_of) - len(new_rows)
    stats.lap("fold")

    for topic in new_rows:
        topic.burst = _score(topic, an, now)
    _insert_topics(session, new_rows, utcnow(), an.topic_cache)
    stats.lap("insert_topics")

    pool = pool.keep(~np.isin(np.arange(len(pool)), [ci - n_topics for ci in members if n_topics <= ci < first_new]))
    pool = pool.extended([_pending(posts[i], r, i) for i in singles], X[singles])
    pend.save(session, pool)
    stats.pending = len(pool)
    stats.in_topics = sum(len(members[ci]) for ci in topic_of)
    stats.lap("pending")

    topic_ids = [topic_of[c].id if c >= 0 and c in topic_of else None for c in labels.tolist()]
    _write_promoted(session, promoted)
    # A story without a topic takes that of its first post in a topic (one row per story: the
    # later rows of a story could not match "topic_id IS NULL" any more).
    story_topic: dict[int, int] = {}
    for i, p in enumerate(posts):
        topic_id = topic_ids[i]
        if p.story_id is not None and topic_id is not None:
            story_topic.setdefault(p.story_id, topic_id)
    if story_topic:
        st, conn = _STORIES, session.connection()
        executemany(conn, update(st).where(st.c.id == bindparam("b_story"), st.c.topic_id.is_(None))
                    .values(topic_id=bindparam("b_topic"), updated_at=constant(conn, st.c.updated_at, utcnow())),
                    [{"b_story": sid, "b_topic": tid} for sid, tid in story_topic.items()])
    # Topics emptied by re-analysis (all their posts moved elsewhere) go.
    gone = [tid for tid, t in loaded.items() if (t.post_count or 0) <= 0]
    for chunk in _chunks(gone):
        session.connection().execute(delete(_TOPICS).where(_TOPICS.c.id.in_(chunk)))
    for tid in gone:
        del loaded[tid]
        an.topic_cache.pop(tid, None)
    stats.lap("write_posts_topics")

    keyword_rates.add(session, [r.strongest[i] for i in fresh], [r.times[i] for i in fresh],
                      [r.hours[i] for i in fresh])
    stats.lap("keywords")
    _save_docfreq(session, dfreq)
    stats.lap("docfreq")
    return {"topic_id": topic_ids, "category": r.cats, "negativity": r.negativity,
            "is_local": r.local, "places": r.places}


@dataclass(slots=True)
class _Member:
    """One post joining a topic, as the fold needs it."""

    id: int
    time: dt.datetime
    hour: str  # hour_key(time)
    negativity: float
    category: str
    places: list[str]
    local: bool
    keywords: Iterable[str]  # distinct
    similarity: float
    group_id: int | None
    source_id: int | None
    text: str = ""  # the start of its text: the label is cut from it (a headline)


def _member(posts: list[PostView], r: _Rules, i: int, sims: np.ndarray) -> _Member:
    p = posts[i]
    return _Member(p.id, r.times[i], r.hours[i], r.negativity[i], r.cats[i], r.places[i], r.local[i], r.strongest[i],
                   float(sims[i]), p.group_id, p.source_id, (p.norm_text or "")[:LABEL_TEXT_CHARS])


def _pending(p: PostView, r: _Rules, i: int) -> pend.PendingPost:
    return pend.PendingPost(p.id, r.times[i], r.negativity[i], r.cats[i], r.places[i], r.local[i],
                            p.group_id, p.source_id, p.story_id, sorted(r.strongest[i]))


def _cosine_with_row(A: sp.csr_matrix, i: int, B: sp.csr_matrix, j: int) -> float:
    """Cosine of row ``i`` of ``A`` with row ``j`` of ``B``, from the raw CSR arrays (row slicing
    a scipy matrix costs ~0.4 ms, more than the arithmetic)."""
    ai, av = A.indices[A.indptr[i]:A.indptr[i + 1]], A.data[A.indptr[i]:A.indptr[i + 1]]
    bi, bv = B.indices[B.indptr[j]:B.indptr[j + 1]], B.data[B.indptr[j]:B.indptr[j + 1]]
    norms = math.sqrt(float(np.dot(av, av)) * float(np.dot(bv, bv)))
    if norms == 0.0:
        return 0.0
    _, ia, ib = np.intersect1d(ai, bi, assume_unique=True, return_indices=True)
    return float(np.dot(av[ia].astype(np.float64), bv[ib])) / norms


def _offered_clusters(session: Session, an: ConcernAnalyzer, now: dt.datetime,
                      pool: pend.PendingPool) -> tuple[tp.ClusterSet, int]:
    """Active topics, then the pending posts, as clusters offered for joining; and the topic count.

    Positions ``[0, n_topics)`` are topics (keys: their ids), the next ``len(pool)`` pending posts
    (keys: None, weight 1), and clusters the batch founds are appended after them.
    """
    window_start = now - dt.timedelta(hours=an.settings.topic_window_hours)
    singleton_start = now - dt.timedelta(hours=SINGLETON_MATCH_HOURS)
    rows = session.execute(
        select(_TOPICS.c.id, _TOPICS.c.centroid, _TOPICS.c.post_count).where(
            _TOPICS.c.status == "active", _TOPICS.c.last_seen >= window_start,
            (_TOPICS.c.post_count >= 2) | (_TOPICS.c.last_seen >= singleton_start))
    ).all()
    rows = [r for r in rows if r.centroid]
    clusters = tp.ClusterSet.from_centroids([r.id for r in rows], [r.centroid for r in rows],
                                            [float(min(max(r.post_count, 1), tp.MAX_WEIGHT)) for r in rows])
    if len(pool):
        clusters.keys.extend([None] * len(pool))
        clusters.means = sp.vstack([clusters.means, pool.vectors.astype(np.float64)], format="csr")
        clusters.weights = np.concatenate([clusters.weights, np.ones(len(pool))])
    return clusters, len(rows)


class _TopicRow:
    """A topic as plain attributes: loaded with Core, folded in memory, written back with executemany."""

    COLUMNS = ("label", "keywords", "representative_post_id", "representative_score", "category", "places",
               "negativity", "first_seen", "last_seen", "post_count", "group_count", "source_count",
               "local_count", "hourly_counts", "hourly_negativity", "facets", "is_hot", "burst_score", "hot_since",
               "priority", "centroid", "status")

    id: int
    label: str
    keywords: list[Any]
    representative_post_id: int | None
    representative_score: float | None
    category: str | None
    places: list[Any]
    negativity: float | None
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    post_count: int
    group_count: int
    source_count: int
    local_count: int
    hourly_counts: dict[str, Any]
    hourly_negativity: dict[str, Any]
    facets: dict[str, Any]
    is_hot: bool
    burst_score: float | None
    hot_since: dt.datetime | None
    priority: float | None
    centroid: bytes | None
    status: str
    updated_at: dt.datetime | None
    burst: Any

    @classmethod
    def new(cls) -> _TopicRow:
        t = cls()
        t.__dict__.update(id=None, label="", keywords=[], representative_post_id=None, representative_score=None,
                          category=None, places=[], negativity=None, first_seen=None, last_seen=None, post_count=0,
                          group_count=0, source_count=0, local_count=0, hourly_counts={}, hourly_negativity={},
                          facets={}, is_hot=False, burst_score=None, hot_since=None, priority=None, centroid=None,
                          status="active", updated_at=None, burst=None)
        return t

    @classmethod
    def from_row(cls, row: Any) -> _TopicRow:
        t = cls()
        t.__dict__.update(row._mapping)
        t.burst = None
        return t

    def values(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in self.COLUMNS}

    def copy(self) -> _TopicRow:
        """A shallow copy (folding replaces the nested dicts and lists, it never edits them)."""
        t = _TopicRow()
        t.__dict__.update(self.__dict__)
        return t


def _load_topics(session: Session, ids: Sequence[int], into: dict[int, _TopicRow],
                 columns: Sequence[str] | None = None, cache: dict[int, _TopicRow] | None = None) -> None:
    """Topics by id as plain rows; with ``columns`` only those (rows only re-scored for bursts).

    Whole rows come from ``cache`` when the database still holds what was cached (same
    ``updated_at``: nothing else wrote them since, and the write was committed).
    """
    ids = list(ids)
    if columns is None and cache:
        known = [i for i in ids if i in cache]
        for chunk in _chunks(known):
            for tid, stamp in session.execute(select(_TOPICS.c.id, _TOPICS.c.updated_at).where(_TOPICS.c.id.in_(chunk))):
                if cache[tid].updated_at == stamp:
                    into[tid] = cache[tid].copy()
        ids = [i for i in ids if i not in into]
    columns = columns or (*_TopicRow.COLUMNS, "updated_at")
    cols = [_TOPICS.c.id, *(_TOPICS.c[c] for c in columns)]
    found: list[_TopicRow] = []
    for chunk in _chunks(list(ids)):
        found.extend(_TopicRow.from_row(row) for row in session.execute(select(*cols).where(_TOPICS.c.id.in_(chunk))))
    if "facets" in columns:
        _member_facets(session, [t for t in found if "groups" not in (t.facets or {})])
    into.update((t.id, t) for t in found)


def _insert_topics(session: Session, rows: list[_TopicRow], stamp: dt.datetime,
                   cache: dict[int, _TopicRow]) -> None:
    if not rows:
        return
    stmt = insert(_TOPICS).returning(_TOPICS.c.id, sort_by_parameter_order=True)
    ids = session.connection().execute(stmt, [{**t.values(), "updated_at": stamp} for t in rows]).scalars().all()
    for topic, tid in zip(rows, ids, strict=True):
        topic.id, topic.updated_at = tid, stamp
        cache[tid] = topic.copy()


def _update_statement(columns: Sequence[str]) -> Any:
    return update(_TOPICS).where(_TOPICS.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})


# What burst scoring reads and writes: hot topics that got no post in this batch are loaded and
# written back with these columns only (no JSON but the hourly counts).
_SCORE_READ = ("hourly_counts", "first_seen", "is_hot", "hot_since", "local_count", "post_count", "negativity")
_SCORE_WRITE = ("is_hot", "burst_score", "hot_since", "priority")
_UPDATE_TOPIC = _update_statement(_TopicRow.COLUMNS)
_UPDATE_SCORE = _update_statement(_SCORE_WRITE)


def _update_topics(session: Session, rows: Iterable[_TopicRow], stamp: dt.datetime,
                   cache: dict[int, _TopicRow]) -> None:
    """Loaded topics back in executemany UPDATEs: whole rows if folded or taken from, else the scores."""
    full, scored = [], []
    for t in rows:
        if "label" in t.__dict__:
            t.updated_at = stamp
            cache[t.id] = t.copy()
            full.append({"b_id": t.id, **{f"b_{c}": getattr(t, c) for c in _TopicRow.COLUMNS}})
        else:
            scored.append({"b_id": t.id, **{f"b_{c}": getattr(t, c) for c in _SCORE_WRITE}})
    conn = session.connection()
    if full:
        executemany(conn, _UPDATE_TOPIC.values(updated_at=constant(conn, _TOPICS.c.updated_at, stamp)), full)
    if scored:
        executemany(conn, _UPDATE_SCORE, scored)


def _write_posts(session: Session, ids: list[int], columns: dict[str, list[Any]]) -> None:
    rows = [{"b_id": pid, **{f"b_{c}": columns[c][i] for c in POST_COLUMNS}} for i, pid in enumerate(ids)]
    session.connection().execute(
        update(_POSTS).where(_POSTS.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in POST_COLUMNS}),
        rows)


def _write_promoted(session: Session, promoted: list[tuple[pend.PendingPost, _TopicRow]]) -> None:
    """Pending posts of earlier batches that now head a topic: point them (and their stories) at it."""
    if not promoted:
        return
    conn = session.connection()
    conn.execute(update(_POSTS).where(_POSTS.c.id == bindparam("b_id")).values(topic_id=bindparam("b_topic")),
                 [{"b_id": p.id, "b_topic": t.id} for p, t in promoted])
    stories = [{"b_story": p.story_id, "b_topic": t.id} for p, t in promoted if p.story_id is not None]
    if stories:
        conn.execute(update(_STORIES).where(_STORIES.c.id == bindparam("b_story"), _STORIES.c.topic_id.is_(None))
                     .values(topic_id=bindparam("b_topic")), stories)


def _parent_links(session: Session, posts: list[PostView], clusters: tp.ClusterSet, pool: pend.PendingPool,
                  n_topics: int) -> list[int]:
    """Per post: its parent's row in the batch, or ``-2 - cluster position`` of its topic, or -1."""
    parent_of = {p.id: p.parent_id for p in posts if p.parent_id is not None}
    missing = [p.id for p in posts if p.parent_id is None]
    for chunk in _chunks(missing):
        for pid, parent in session.execute(select(_POSTS.c.id, _POSTS.c.parent_id)
                                           .where(_POSTS.c.id.in_(chunk), _POSTS.c.parent_id.is_not(None))):
            if parent is not None:
                parent_of[pid] = parent
    if not parent_of:
        return [-1] * len(posts)
    row_of = {p.id: i for i, p in enumerate(posts)}
    position = {key: ci for ci, key in enumerate(clusters.keys[:n_topics])}
    # A parent waiting in the pending pool is a cluster too.
    parent_position = {int(pid): n_topics + j for j, pid in enumerate(pool.ids.tolist())}
    outside = sorted({pid for pid in parent_of.values() if pid not in row_of and pid not in parent_position})
    for chunk in _chunks(outside):
        for pid, tid in session.execute(select(_POSTS.c.id, _POSTS.c.topic_id)
                                        .where(_POSTS.c.id.in_(chunk), _POSTS.c.topic_id.is_not(None))):
            if tid in position:
                parent_position[pid] = position[tid]
    out = []
    for i, p in enumerate(posts):
        parent = parent_of.get(p.id)
        if parent is None:
            out.append(-1)
        elif parent in row_of:
            out.append(row_of[parent] if row_of[parent] < i else -1)
        elif parent in parent_position:
            out.append(-2 - parent_position[parent])
        else:
            out.append(-1)
    return out


def _take_out_previous(session: Session, ids: list[int], loaded: dict[int, _TopicRow],
                       cache: dict[int, _TopicRow]) -> set[int]:
    """Posts of this batch that were analysed before (re-analysis): take them out of their topics.

    The stage sets every post's category, so a category marks a post it has seen (in a topic,
    pending, or in neither); those are not counted again in keyword rates or document frequencies.
    """
    found: list[Any] = []
    p = _POSTS.c
    for chunk in _chunks(ids):
        found.extend(session.execute(
            select(p.id, p.topic_id, p.published_at, p.negativity, p.is_local, p.group_id, p.source_id)
            .where(p.id.in_(chunk), p.category.is_not(None))).all())
    if not found:
        return set()
    _load_topics(session, sorted({r.topic_id for r in found if r.topic_id is not None} - set(loaded)), loaded,
                 cache=cache)
    for r in found:
        t = loaded.get(r.topic_id) if r.topic_id is not None else None
        if t is None:
            continue
        t.post_count = max(0, t.post_count - 1)
        if r.is_local:
            t.local_count = max(0, t.local_count - 1)
        _count_members(t, [(r.group_id, r.source_id)], -1)
        if r.published_at is not None:
            key = hour_key(r.published_at)
            hourly = dict(t.hourly_counts)
            if hourly.get(key, 0) > 0:
                hourly[key] -= 1
                t.hourly_counts = hourly
                neg = dict(t.hourly_negativity)
                neg[key] = max(0.0, neg.get(key, 0.0) - (r.negativity or 0.0))
                t.hourly_negativity = neg
    return {r.id for r in found}


def _count_members(topic: _TopicRow, pairs: list[tuple[int | None, int | None]], sign: int) -> None:
    """Per-group and per-source post counts in the topic's facets, and the distinct counts from them.

    Kept as counts (not sets) so a post taken out again (re-analysis) is subtracted exactly, and
    no query over the topic's posts is needed.
    """
    facets = dict(topic.facets or {})
    for key, pos, attr in (("groups", 0, "group_count"), ("sources", 1, "source_count")):
        counts: dict[str, int] = dict(facets.get(key) or {})
        for pair in pairs:
            if pair[pos] is not None:
                k = str(pair[pos])
                counts[k] = counts.get(k, 0) + sign
                if counts[k] <= 0:
                    del counts[k]
        facets[key] = counts
        setattr(topic, attr, len(counts))
    topic.facets = facets


def _member_facets(session: Session, topics: list[_TopicRow]) -> None:
    """Group and source counts of topics written before the stage kept them in ``facets``."""
    by_id = {t.id: t for t in topics}
    for t in topics:
        t.facets = {**(t.facets or {}), "groups": {}, "sources": {}}
    p = _POSTS.c
    for chunk in _chunks(list(by_id)):
        for tid, group, source, n in session.execute(
                select(p.topic_id, p.group_id, p.source_id, func.count()).where(p.topic_id.in_(chunk))
                .group_by(p.topic_id, p.group_id, p.source_id)):
            f = by_id[tid].facets
            if group is not None:
                f["groups"][str(group)] = f["groups"].get(str(group), 0) + n
            if source is not None:
                f["sources"][str(source)] = f["sources"].get(str(source), 0) + n


def _fold(topic: _TopicRow, members: list[_Member], an: ConcernAnalyzer) -> str | None:
    """Fold a batch's member posts into a topic's counts, keywords and facets (plain dict work:
    this runs for every touched topic of every batch); returns the text to label the topic from
    when its representative changed, else None: the label stays (labels are made for all folded
    topics at once, `_label_topics`)."""
    n_old = topic.post_count or 0
    hourly = dict(topic.hourly_counts or {})
    neg_hourly = dict(topic.hourly_negativity or {})
    last_key = next(reversed(hourly), "") if hourly else ""
    in_order = True
    neg_sum = 0.0
    touched: set[str] = set()
    for m in members:
        key = m.hour
        if key not in hourly:
            in_order = in_order and key > last_key
            last_key = max(last_key, key)
            hourly[key] = 1
            neg_hourly[key] = m.negativity
        else:
            hourly[key] += 1
            neg_hourly[key] = neg_hourly.get(key, 0.0) + m.negativity
        touched.add(key)
        neg_sum += m.negativity
    for key in touched:
        neg_hourly[key] = round(neg_hourly[key], 4)
    first, last = min(m.time for m in members), max(m.time for m in members)
    cutoff = (last - KEEP_HOURLY).isoformat()[:13]  # hour_key: member times are UTC already
    # Keys stay in time order; old hours and hours emptied by re-analysis go.
    if not in_order or next(iter(hourly)) < cutoff or 0 in hourly.values():
        hourly = {k: v for k, v in sorted(hourly.items()) if k >= cutoff and v > 0}
    topic.hourly_counts = hourly
    topic.hourly_negativity = {k: neg_hourly[k] for k in hourly}
    topic.negativity = round(((topic.negativity or 0.0) * n_old + neg_sum) / (n_old + len(members)), 4)
    topic.post_count = n_old + len(members)
    topic.local_count = (topic.local_count or 0) + sum(m.local for m in members)
    topic.first_seen = min(topic.first_seen, first) if topic.first_seen else first
    topic.last_seen = max(topic.last_seen, last) if topic.last_seen else last
    if topic.status != "active":
        topic.status = "active"

    facets = dict(topic.facets or {})
    cat_counts: dict[str, int] = dict(facets.get("categories") or {})
    place_counts: dict[str, int] = dict(facets.get("places") or {})
    for m in members:
        cat_counts[m.category] = cat_counts.get(m.category, 0) + 1
        for p in m.places:
            place_counts[p] = place_counts.get(p, 0) + 1
    facets["categories"] = cat_counts
    facets["places"] = place_counts
    topic.facets = facets
    _count_members(topic, [(m.group_id, m.source_id) for m in members], +1)
    default = an.taxonomy.default
    specific = [(n, c) for c, n in cat_counts.items() if c != default]
    # A topic is about its most frequent specific category when that covers a fair share of it.
    if specific and max(specific)[0] >= 0.2 * sum(cat_counts.values()):
        topic.category = max(specific)[1]
    else:
        topic.category = default
    topic.places = heapq.nlargest(8, place_counts, key=place_counts.__getitem__)

    words: Counter[str] = Counter(dict(topic.keywords or []))
    words.update(itertools.chain.from_iterable(m.keywords for m in members))  # counted in C, same order
    topic.keywords = [[w, c] for w, c in words.most_common(TOPIC_KEYWORDS)]

    best = max(members, key=lambda m: m.similarity)
    if topic.representative_score is None or best.similarity >= topic.representative_score \
            or topic.representative_post_id is None or not topic.label:
        topic.representative_post_id = best.id
        topic.representative_score = round(best.similarity, 4)
        return _label_text(members)
    return None


def _label_text(members: list[_Member]) -> str:
    """The text a topic's label is cut from: its most central member that does not refute what the
    others say (the label says what people ask or complain about, not the official answer)."""
    for m in sorted(members, key=lambda m: -m.similarity)[:8]:
        if m.text and not refutation_cues(m.text, normalized=True):
            return m.text
    return max(members, key=lambda m: m.similarity).text


def _label_topics(folded: list[tuple[_TopicRow, str | None]], dfreq: tp.DocFreq) -> None:
    """Each folded topic whose representative changed is labelled by a headline cut from its
    central post ("东湾村药店口罩断货，什么时候补货？"), not a list of keywords; only when no post
    says anything once its hooks go is the label its heaviest keywords (count and IDF), whose IDF
    is looked up for all such topics at once. Topics whose representative stayed keep their label."""
    need_words: list[tuple[_TopicRow, str]] = []
    for topic, text in folded:
        if text is None:
            continue
        sentence = headline(text, normalized=True)  # members carry their norm_text
        if sentence:
            topic.label = sentence[:500]
        else:
            need_words.append((topic, text[:40]))
    _keyword_labels(need_words, dfreq)


def _keyword_labels(folded: list[tuple[_TopicRow, str]], dfreq: tp.DocFreq) -> None:
    """Each topic's label of last resort: its keywords with the most weight, or ``fallback``."""
    words = [w for topic, _ in folded for w, _ in topic.keywords]
    if not words:
        for topic, fallback in folded:
            topic.label = fallback or topic.label
        return
    counts = np.fromiter((c for topic, _ in folded for _, c in topic.keywords), dtype=np.float64, count=len(words))
    weight = np.log1p(counts) * dfreq.idf(np.array(tp.feature_indices(words), dtype=np.int64))
    # Each topic's LABEL_WORDS heaviest keywords (ties: in keyword order), for all topics in one sort:
    # by topic, then weight descending, then position.
    topic_of = np.repeat(np.arange(len(folded)), [len(topic.keywords) for topic, _ in folded])
    order = np.lexsort((np.arange(len(words)), -weight, topic_of))
    starts = np.searchsorted(topic_of[order], np.arange(len(folded)))
    rank = np.arange(len(order)) - np.repeat(starts, np.bincount(topic_of, minlength=len(folded)))
    chosen = order[rank < LABEL_WORDS].tolist()  # grouped by topic, heaviest first
    labels: list[list[str]] = [[] for _ in folded]
    owner = topic_of.tolist()
    for j in chosen:
        labels[owner[j]].append(words[j])
    for (topic, fallback), label_words in zip(folded, labels, strict=True):
        topic.label = "、".join(label_words)[:500] or fallback or topic.label


def _score(topic: _TopicRow, an: ConcernAnalyzer, now: dt.datetime) -> tuple[Any, bool]:
    """Burst-score one topic at ``now`` and set is_hot, burst_score, hot_since, priority on it."""
    b = burst(topic.hourly_counts or {}, now, an.burst_params, topic.first_seen)
    was_hot = bool(topic.is_hot)
    topic.is_hot = b.is_hot
    topic.burst_score = b.z
    newly = b.is_hot and not was_hot
    if newly:
        topic.hot_since = now
    elif not b.is_hot:
        topic.hot_since = None
    local_share = (topic.local_count or 0) / max(topic.post_count or 1, 1)
    topic.priority = round(max(b.z, 0.0) * (1.0 + an.settings.local_priority_boost * local_share)
                           * (1.0 + (topic.negativity or 0.0)), 4)
    return b, newly


def _evaluate_bursts(session: Session, an: ConcernAnalyzer, now: dt.datetime, loaded: dict[int, _TopicRow],
                     stats: ConcernStats, new_rows: list[_TopicRow]) -> None:
    """Score loaded and currently hot topics at ``now``; keep is_hot, hot_since, priority, history."""
    hot_ids = session.execute(select(_TOPICS.c.id).where(_TOPICS.c.is_hot.is_(True))).scalars().all()
    _load_topics(session, [i for i in hot_ids if i not in loaded], loaded, _SCORE_READ)
    hour = hour_floor(now)
    burst_rows = []
    scored = [(t, *_score(t, an, now)) for t in loaded.values()] + [(t, *t.burst) for t in new_rows]
    for topic, b, newly in scored:
        if newly:
            stats.newly_hot_ids.append(topic.id)
        if b.is_hot:
            stats.hot_topic_ids.append(topic.id)
            burst_rows.append({"topic_id": topic.id, "hour": hour, "burst_score": b.z,
                               "recent_count": b.recent, "expected": b.expected, "evaluated_at": now})
    if burst_rows:
        table = _BURSTS
        stmt = upsert_insert(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["topic_id", "hour"],
            set_={"burst_score": func.max(table.c.burst_score, stmt.excluded.burst_score)
                  if session.get_bind().dialect.name == "sqlite"
                  else func.greatest(table.c.burst_score, stmt.excluded.burst_score),
                  "recent_count": stmt.excluded.recent_count, "expected": stmt.excluded.expected,
                  "evaluated_at": stmt.excluded.evaluated_at})
        session.connection().execute(stmt, burst_rows)


def _retire(session: Session, an: ConcernAnalyzer, now: dt.datetime) -> None:
    """Topics quiet for longer than the window go dormant; old keyword counts are dropped."""
    cutoff = now - dt.timedelta(hours=an.settings.topic_window_hours)
    conn = session.connection()
    conn.execute(update(_TOPICS).where(_TOPICS.c.status == "active", _TOPICS.c.last_seen < cutoff,
                                       _TOPICS.c.is_hot.is_(False)).values(status="dormant"))
    keyword_rates.drop_before(session, now - keyword_rates.RETENTION)
