"""The concern stage of `yuqing analyze`: categories, places, mood, topics and bursts.

`update_concerns` takes a batch of posts that the pipeline has normalised and segmented and
writes back, in a few set-based statements:

* on each post: ``category``, ``negativity``, ``is_local``, ``places``, ``topic_id``;
* topics: new ones, and for touched ones counts, hourly volume and mood, label, keywords,
  representative post, category, places, distinct groups/sources, centroid;
* keyword counts per hour (keyword bursts), hashed document frequencies (TF-IDF);
* bursts: every touched or currently hot topic is scored against its own baseline at ``now``;
  hot hours are recorded in ``topic_bursts``.

Re-running a batch is safe: a post that already belongs to a topic is first taken out of it
(its keywords are not counted twice), then assigned again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.settings import Settings, get_settings
from core.tables import ConcernState, KeywordCount, Post, Story, Topic, TopicBurst
from nlp.concerns import topics as tp
from nlp.concerns.bursts import HOUR, BurstParams, burst, hour_floor, hour_key
from nlp.concerns.mood import mood
from nlp.concerns.places import Gazetteer, load_gazetteer
from nlp.concerns.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

_POSTS: Table = Post.__table__  # type: ignore[assignment]
_STORIES: Table = Story.__table__  # type: ignore[assignment]
_KEYWORDS: Table = KeywordCount.__table__  # type: ignore[assignment]
_BURSTS: Table = TopicBurst.__table__  # type: ignore[assignment]

DF_STATE = "topic_docfreq"
KEEP_HOURLY = dt.timedelta(days=30)
KEYWORD_RETENTION = dt.timedelta(days=8)
TOPIC_KEYWORDS = 30  # keyword counts kept per topic
LABEL_WORDS = 4
SINGLETON_MATCH_HOURS = 24  # one-post topics older than this are no longer offered for joining
_IN_CHUNK = 500


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


@dataclass
class ConcernStats:
    posts: int = 0
    local_posts: int = 0
    concern_posts: int = 0  # questions, complaints, clearly negative
    in_topics: int = 0
    topics_new: int = 0
    topics_updated: int = 0
    hot_topic_ids: list[int] = field(default_factory=list)
    newly_hot_ids: list[int] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def lap(self, name: str) -> None:
        """Charge the time since the last lap to ``name``."""
        t = time.perf_counter()
        last = self.__dict__.setdefault("_t", t)
        self.timings[name] = round(self.timings.get(name, 0.0) + t - last, 4)
        self.__dict__["_t"] = t

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}



class ConcernAnalyzer:
    """Loaded configuration of the stage (taxonomy, gazetteer, stopwords, thresholds)."""

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
        self.category_model: Any = None
        if self.settings.concern_category_model is not None:
            from nlp.concerns.classifier import load

            self.category_model = load(self.settings.concern_category_model)


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


def _upsert(session: Session, table: Any) -> Any:
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def update_concerns(session: Session, posts: Sequence[PostView], *, now: dt.datetime,
                    analyzer: ConcernAnalyzer | None = None) -> ConcernStats:
    """Run the concern stage on one batch of analysed posts (see the module docstring)."""
    started = time.perf_counter()
    if now.tzinfo is None:
        raise ValueError(f"now={now!r} is naive: pass an aware datetime (UTC)")
    an = analyzer or ConcernAnalyzer()
    stats = ConcernStats(posts=len(posts))
    stats.lap("start")
    touched: dict[int, Topic] = {}
    if posts:
        drafts = _process(session, an, sorted(posts, key=lambda p: (p.published_at or now, p.id)), now, stats,
                          touched)
    else:
        drafts = []
    _evaluate_bursts(session, an, now, touched, stats, drafts)
    stats.lap("bursts")
    _retire(session, an, now)
    session.flush()
    stats.lap("retire")
    stats.timings.pop("start", None)
    stats.seconds = round(time.perf_counter() - started, 4)
    return stats


def _process(session: Session, an: ConcernAnalyzer, posts: list[PostView], now: dt.datetime,
             stats: ConcernStats, touched: dict[int, Topic]) -> list[_Draft]:
    times = [p.published_at.astimezone(dt.UTC) if p.published_at else now for p in posts]
    moods = [mood(p.norm_text or "") for p in posts]
    cats = [an.taxonomy.classify(p.norm_text or "").category for p in posts]
    if an.category_model is not None:
        # The learned model decides where the rules found nothing.
        todo = [i for i, c in enumerate(cats) if c == an.taxonomy.default and posts[i].norm_text]
        for i, c in zip(todo, an.category_model.predict_confident([posts[i].norm_text for i in todo]),
                        strict=True):
            if c is not None:
                cats[i] = c
    places = [an.gazetteer.find(p.norm_text or "") for p in posts]
    local = [an.gazetteer.is_local(pl) for pl in places]
    # Place names join the keywords whole, however the segmenter cut them ("石桥" "村").
    kws = [_with_places(tp.keywords(p.tokens, an.stopwords), pl, an.gazetteer)
           for p, pl in zip(posts, places, strict=True)]
    stats.local_posts = sum(local)
    stats.concern_posts = sum(m.is_concern for m in moods)
    stats.categories = dict(Counter(cats))
    stats.lap("rules")

    ids = [p.id for p in posts]
    previous = _take_out_previous(session, ids, touched)

    # IDF from the posts before this batch: a matter that bursts in this batch must not make
    # its own words look common.
    dfreq = _load_docfreq(session)
    fresh = [i for i, p in enumerate(posts) if p.id not in previous]
    X = tp.vectorize(kws, dfreq)
    dfreq.add([[tp.feature_index(w) for w in kws[i]] for i in fresh])
    stats.lap("vectors")

    # Active topics offered for joining.
    window_start = now - dt.timedelta(hours=an.settings.topic_window_hours)
    singleton_start = now - dt.timedelta(hours=SINGLETON_MATCH_HOURS)
    rows = session.execute(
        select(Topic.id, Topic.centroid, Topic.post_count).where(
            Topic.status == "active", Topic.last_seen >= window_start,
            (Topic.post_count >= 2) | (Topic.last_seen >= singleton_start))
    ).all()
    rows = [r for r in rows if r.centroid]
    clusters = tp.ClusterSet.from_centroids([r.id for r in rows], [r.centroid for r in rows],
                                            [float(min(max(r.post_count, 1), tp.MAX_WEIGHT)) for r in rows])
    parents = _parent_links(session, posts, clusters)
    labels, _ = tp.assign(X, clusters, an.settings.topic_similarity, [len(k) for k in kws], parents=parents)
    rep_sims = tp.member_similarity(X, labels, clusters)
    stats.lap("cluster")
    members: dict[int, list[int]] = {}
    for pos in np.flatnonzero(labels >= 0):
        members.setdefault(int(labels[pos]), []).append(int(pos))

    # Topics: new ones are folded in memory and inserted in one statement; touched ones are loaded.
    new_topics: dict[int, _Draft] = {ci: _Draft(min(times[m] for m in mem))
                                     for ci, mem in members.items() if clusters.keys[ci] is None}
    stats.topics_new = len(new_topics)
    old_ids = [k for ci in members if (k := clusters.keys[ci]) is not None and k not in touched]
    for chunk in _chunks(old_ids):
        for t in session.scalars(select(Topic).where(Topic.id.in_(chunk))):
            touched[t.id] = t
    topic_of: dict[int, Any] = {}
    for ci in members:
        key = clusters.keys[ci]
        topic_of[ci] = new_topics[ci] if key is None else touched[key]

    for ci, topic in topic_of.items():
        mem = members[ci]
        _fold(topic, clusters.centroid(ci), [posts[m] for m in mem], [times[m] for m in mem],
              [moods[m].negativity for m in mem], [cats[m] for m in mem],
              [places[m] for m in mem], [local[m] for m in mem], [kws[m] for m in mem],
              rep_sims[mem], dfreq, an)
    stats.lap("fold")
    drafts = list(new_topics.items())
    for ci, draft in drafts:
        mem = members[ci]  # all of a new topic's posts are in this batch: count exactly here
        draft.group_count = len({posts[m].group_id for m in mem if posts[m].group_id is not None})
        draft.source_count = len({posts[m].source_id for m in mem if posts[m].source_id is not None})
        draft.burst = _score(draft, an, now)
    if drafts:
        new_ids = session.scalars(insert(Topic).returning(Topic.id, sort_by_parameter_order=True),
                                  [d.row() for _, d in drafts]).all()
        for (_, draft), tid in zip(drafts, new_ids, strict=True):
            draft.id = tid
    stats.topics_updated = len(topic_of) - len(new_topics)
    stats.lap("insert_topics")
    stats.in_topics = int((labels >= 0).sum())

    # Posts.
    post_rows = [
        {"b_id": p.id, "b_topic": topic_of[int(labels[i])].id if labels[i] >= 0 else None, "b_cat": cats[i],
         "b_neg": moods[i].negativity, "b_local": local[i], "b_places": places[i]}
        for i, p in enumerate(posts)
    ]
    session.flush()
    session.connection().execute(
        update(_POSTS).where(_POSTS.c.id == bindparam("b_id")).values(
            topic_id=bindparam("b_topic"), category=bindparam("b_cat"), negativity=bindparam("b_neg"),
            is_local=bindparam("b_local"), places=bindparam("b_places")),
        post_rows,
    )
    story_rows = [{"b_story": p.story_id, "b_topic": topic_of[int(labels[i])].id}
                  for i, p in enumerate(posts) if p.story_id is not None and labels[i] >= 0]
    if story_rows:
        st = _STORIES
        session.connection().execute(
            update(st).where(st.c.id == bindparam("b_story"), st.c.topic_id.is_(None))
            .values(topic_id=bindparam("b_topic")), story_rows)
    # Topics emptied by re-analysis (all their posts moved elsewhere) go.
    for tid in [tid for tid, t in touched.items() if (t.post_count or 0) <= 0]:
        session.delete(touched.pop(tid))
    session.flush()
    _count_distinct(session, list(touched.values()))
    stats.lap("write_posts_topics")
    # Keyword rates: each post's strongest terms (those in its vector), not every word of a long post.
    strongest = []
    for i in fresh:
        kept = set(X.indices[X.indptr[i]:X.indptr[i + 1]].tolist())
        strongest.append([w for w in set(kws[i]) if tp.feature_index(w) in kept])
    _count_keywords(session, strongest, [times[i] for i in fresh])
    stats.lap("keywords")
    _save_docfreq(session, dfreq)
    stats.lap("docfreq")
    return [d for _, d in drafts]


class _Draft:
    """A topic born in this run: folded in memory like a Topic, then inserted with the others."""

    COLUMNS = ("label", "keywords", "representative_post_id", "representative_score", "category", "places",
               "negativity", "first_seen", "last_seen", "post_count", "group_count", "source_count",
               "local_count", "hourly_counts", "hourly_negativity", "facets", "is_hot", "burst_score", "hot_since",
               "priority", "centroid", "status")

    def __init__(self, first: dt.datetime) -> None:
        self.id: int | None = None
        self.label = ""
        self.keywords: list[Any] = []
        self.category: str | None = None
        self.places: list[Any] = []
        self.representative_post_id: int | None = None
        self.representative_score: float | None = None
        self.negativity: float | None = None
        self.first_seen = self.last_seen = first
        self.post_count = self.group_count = self.source_count = self.local_count = 0
        self.hourly_counts: dict[str, Any] = {}
        self.hourly_negativity: dict[str, Any] = {}
        self.facets: dict[str, Any] = {}
        self.is_hot = False
        self.burst_score: float | None = None
        self.hot_since: dt.datetime | None = None
        self.priority: float | None = None
        self.centroid: bytes | None = None
        self.status = "active"
        self.burst: Any = None

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in self.COLUMNS}


def _parent_links(session: Session, posts: list[PostView], clusters: tp.ClusterSet) -> list[int]:
    """Per post: its parent's row in the batch, or ``-2 - cluster position`` of its topic, or -1."""
    parent_of = {p.id: p.parent_id for p in posts if p.parent_id is not None}
    missing = [p.id for p in posts if p.parent_id is None]
    for chunk in _chunks(missing):
        for pid, parent in session.execute(select(Post.id, Post.parent_id)
                                           .where(Post.id.in_(chunk), Post.parent_id.is_not(None))):
            if parent is not None:
                parent_of[pid] = parent
    if not parent_of:
        return [-1] * len(posts)
    row_of = {p.id: i for i, p in enumerate(posts)}
    outside = sorted({pid for pid in parent_of.values() if pid not in row_of})
    topic_of: dict[int, int] = {}
    for chunk in _chunks(outside):
        for pid, tid in session.execute(select(Post.id, Post.topic_id)
                                        .where(Post.id.in_(chunk), Post.topic_id.is_not(None))):
            if tid is not None:
                topic_of[pid] = tid
    position = {key: ci for ci, key in enumerate(clusters.keys) if key is not None}
    out = []
    for i, p in enumerate(posts):
        parent = parent_of.get(p.id)
        if parent is None:
            out.append(-1)
        elif parent in row_of:
            out.append(row_of[parent] if row_of[parent] < i else -1)
        elif topic_of.get(parent) in position:
            out.append(-2 - position[topic_of[parent]])
        else:
            out.append(-1)
    return out


def _with_places(words: list[str], places: list[str], gazetteer: Gazetteer) -> list[str]:
    """Keywords with each mentioned place once, by its canonical name (no "东湾" next to "东湾村")."""
    if not places:
        return words
    names = [w for w, name in gazetteer.alias_to_name.items() if name in places]
    return [w for w in words if not any(w in n for n in names)] + places


def _take_out_previous(session: Session, ids: list[int], touched: dict[int, Topic]) -> set[int]:
    """Posts of this batch that were already in a topic: remove them from it (re-analysis)."""
    found: list[Any] = []
    for chunk in _chunks(ids):
        found.extend(session.execute(
            select(Post.id, Post.topic_id, Post.published_at, Post.negativity, Post.is_local)
            .where(Post.id.in_(chunk), Post.topic_id.is_not(None))).all())
    if not found:
        return set()
    topic_ids = sorted({r.topic_id for r in found})
    for chunk in _chunks(topic_ids):
        for t in session.scalars(select(Topic).where(Topic.id.in_(chunk))):
            touched[t.id] = t
    for r in found:
        old = touched.get(r.topic_id)
        if old is None:
            continue
        t = old
        t.post_count = max(0, t.post_count - 1)
        if r.is_local:
            t.local_count = max(0, t.local_count - 1)
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


def _fold(topic: Any, centroid: bytes, posts: list[PostView], times: list[dt.datetime], negs: list[float],
          cats: list[str], places: list[list[str]], local: list[bool], kws: list[list[str]], sims: np.ndarray,
          dfreq: tp.DocFreq, an: ConcernAnalyzer) -> None:
    """Fold a batch's member posts into a topic's counts, label and facets."""
    n_old = topic.post_count or 0
    hourly = dict(topic.hourly_counts or {})
    neg_hourly = dict(topic.hourly_negativity or {})
    for t, neg in zip(times, negs, strict=True):
        key = hour_key(t)
        hourly[key] = hourly.get(key, 0) + 1
        neg_hourly[key] = round(neg_hourly.get(key, 0.0) + neg, 4)
    cutoff = hour_key(max(times) - KEEP_HOURLY)
    topic.hourly_counts = {k: v for k, v in sorted(hourly.items()) if k >= cutoff and v > 0}
    topic.hourly_negativity = {k: v for k, v in sorted(neg_hourly.items()) if k in topic.hourly_counts}
    topic.negativity = round(((topic.negativity or 0.0) * n_old + sum(negs)) / (n_old + len(negs)), 4)
    topic.post_count = n_old + len(posts)
    topic.local_count = (topic.local_count or 0) + sum(local)
    topic.first_seen = min(topic.first_seen, min(times)) if topic.first_seen else min(times)
    topic.last_seen = max(topic.last_seen, max(times)) if topic.last_seen else max(times)
    if topic.status != "active":
        topic.status = "active"

    facets = dict(topic.facets or {})
    cat_counts: Counter[str] = Counter(facets.get("categories", {}))
    cat_counts.update(cats)
    place_counts: Counter[str] = Counter(facets.get("places", {}))
    for pl in places:
        place_counts.update(pl)
    facets["categories"] = dict(cat_counts)
    facets["places"] = dict(place_counts)
    topic.facets = facets
    default = an.taxonomy.default
    specific = [(n, c) for c, n in cat_counts.items() if c != default]
    # A topic is about its most frequent specific category when that covers a fair share of it.
    if specific and max(specific)[0] >= 0.2 * sum(cat_counts.values()):
        topic.category = max(specific)[1]
    else:
        topic.category = default
    topic.places = [p for p, _ in place_counts.most_common(8)]

    words = Counter({w: c for w, c in (topic.keywords or [])})
    for k in kws:
        words.update(set(k))
    top = words.most_common(TOPIC_KEYWORDS)
    topic.keywords = [[w, c] for w, c in top]
    if top:
        idf = dfreq.idf(np.array([tp.feature_index(w) for w, _ in top]))
        scored = sorted(zip(top, idf, strict=True), key=lambda x: -math.log1p(x[0][1]) * x[1])
        label_words = [w for (w, _), _ in scored[:LABEL_WORDS]]
    else:
        label_words = []

    topic.centroid = centroid
    best = int(np.argmax(sims)) if len(sims) else 0
    if len(sims) and (topic.representative_score is None or sims[best] >= topic.representative_score
                      or topic.representative_post_id is None):
        topic.representative_post_id = posts[best].id
        topic.representative_score = round(float(sims[best]), 4)
    topic.label = "、".join(label_words)[:500] or (posts[best].norm_text[:40] if posts else "")


def _count_distinct(session: Session, topics: list[Topic]) -> None:
    ids = [t.id for t in topics]
    by_id = {t.id: t for t in topics}
    for chunk in _chunks(ids):
        for tid, groups, sources in session.execute(
            select(Post.topic_id, func.count(func.distinct(Post.group_id)),
                   func.count(func.distinct(Post.source_id)))
            .where(Post.topic_id.in_(chunk)).group_by(Post.topic_id)
        ):
            if tid is not None:
                by_id[tid].group_count = int(groups)
                by_id[tid].source_count = int(sources)


def _count_keywords(session: Session, kws: list[list[str]], times: list[dt.datetime]) -> None:
    counts: Counter[tuple[str, dt.datetime]] = Counter()
    for words, t in zip(kws, times, strict=True):
        h = hour_floor(t)
        for w in set(words):
            counts[(w[:100], h)] += 1
    if not counts:
        return
    table = _KEYWORDS
    stmt = _upsert(session, table)
    stmt = stmt.on_conflict_do_update(index_elements=["keyword", "hour"],
                                      set_={"count": table.c.count + stmt.excluded.count})
    rows = [{"keyword": w, "hour": h, "count": c} for (w, h), c in counts.items()]
    for i in range(0, len(rows), 5000):
        session.connection().execute(stmt, rows[i : i + 5000])


def _score(topic: Any, an: ConcernAnalyzer, now: dt.datetime) -> tuple[Any, bool]:
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


def _evaluate_bursts(session: Session, an: ConcernAnalyzer, now: dt.datetime, touched: dict[int, Topic],
                     stats: ConcernStats, drafts: list[_Draft]) -> None:
    """Score touched and currently hot topics at ``now``; keep is_hot, hot_since, priority, history."""
    hot_ids = session.scalars(select(Topic.id).where(Topic.is_hot.is_(True))).all()
    missing = [i for i in hot_ids if i not in touched]
    for chunk in _chunks(missing):
        for t in session.scalars(select(Topic).where(Topic.id.in_(chunk))):
            touched[t.id] = t
    hour = hour_floor(now)
    burst_rows = []
    scored = [(t, *_score(t, an, now)) for t in touched.values()] + [(d, *d.burst) for d in drafts]
    for topic, b, newly in scored:
        if newly:
            stats.newly_hot_ids.append(topic.id)
        if b.is_hot:
            stats.hot_topic_ids.append(topic.id)
            burst_rows.append({"topic_id": topic.id, "hour": hour, "burst_score": b.z,
                               "recent_count": b.recent, "expected": b.expected, "evaluated_at": now})
    session.flush()
    if burst_rows:
        table = _BURSTS
        stmt = _upsert(session, table)
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
    session.execute(update(Topic).where(Topic.status == "active", Topic.last_seen < cutoff,
                                        Topic.is_hot.is_(False)).values(status="dormant"))
    session.execute(_KEYWORDS.delete().where(KeywordCount.hour < now - KEYWORD_RETENTION))


def hot_keywords(session: Session, *, now: dt.datetime, params: BurstParams | None = None,
                 limit: int = 20) -> list[dict[str, Any]]:
    """Keywords whose recent hourly rate rose significantly over their own baseline."""
    params = params or BurstParams.from_settings(get_settings())
    window_start = hour_floor(now) - (params.window_hours - 1) * HOUR
    base_start = window_start - params.baseline_hours * HOUR
    kc = _KEYWORDS
    recent_sum = func.sum(kc.c.count).filter(kc.c.hour >= window_start)
    candidates = session.execute(
        select(kc.c.keyword).where(kc.c.hour >= window_start, kc.c.hour <= now)
        .group_by(kc.c.keyword).having(func.sum(kc.c.count) >= params.min_posts)
        .order_by(recent_sum.desc()).limit(2000)
    ).scalars().all()
    data_start = session.scalar(select(func.min(kc.c.hour)))
    if data_start is not None and data_start.tzinfo is None:
        data_start = data_start.replace(tzinfo=dt.UTC)
    out: list[dict[str, Any]] = []
    for chunk in _chunks(list(candidates)):
        series: dict[str, dict[str, int]] = {}
        for kw, h, c in session.execute(select(kc.c.keyword, kc.c.hour, kc.c.count).where(
                kc.c.keyword.in_(chunk), kc.c.hour >= base_start, kc.c.hour <= now)):
            series.setdefault(kw, {})[hour_key(h if h.tzinfo else h.replace(tzinfo=dt.UTC))] = c
        for kw, hourly in series.items():
            # Every keyword is counted, so hours without it are true zeros since our data began.
            b = burst(hourly, now, params, first_seen=data_start)
            if b.is_hot:
                out.append({"keyword": kw, "recent": b.recent, "expected": b.expected, "z": b.z})
    out.sort(key=lambda d: -float(d["z"]))
    return out[:limit]
