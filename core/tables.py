"""The whole product's schema, in one file (SQLAlchemy 2.0 typed mappings).

Data flows one way (crawler -> store -> nlp -> alerts -> api/digest) and so does this file:
collection tables first, then analysis, then decisions, then people and delivery.

Times are stored as UTC. SQLite has no time zones, so :class:`UTCDateTime` stores naive UTC
and hands back aware datetimes on both dialects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints: Alembic's SQLite batch mode needs names to alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a time zone (UTC or Asia/Shanghai)")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


#: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


def _pk() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


# --------------------------------------------------------------------------- collection


class Source(Base):
    """A configured place we collect from (a site, feed, API), or a chat import/bot route."""

    __tablename__ = "sources"
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # feed | html | json | custom | chat_export | bot | api
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_run_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SourceRun(Base):
    """One crawl or import run of one source, with what it did and what went wrong."""

    __tablename__ = "source_runs"
    id: Mapped[int] = _pk()
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | ok | partial | failed
    pages_fetched: Mapped[int] = mapped_column(Integer, default=0)
    items_new: Mapped[int] = mapped_column(Integer, default=0)
    items_updated: Mapped[int] = mapped_column(Integer, default=0)
    items_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    items_dropped: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(default=list)  # [{"url":..., "reason":...}]
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class FetchState(Base):
    """HTTP validators and content hash per fetched URL, for incremental crawling."""

    __tablename__ = "fetch_state"
    id: Mapped[int] = _pk()
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"), index=True)
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    last_fetched_at: Mapped[dt.datetime | None]


class ChatGroup(Base):
    """A chat group (WeChat/QQ/Telegram) or a public board treated as one."""

    __tablename__ = "chat_groups"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)
    id: Mapped[int] = _pk()
    platform: Mapped[str] = mapped_column(String(20))  # qq | wechat | telegram | web | other
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    member_count: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[Any]] = mapped_column(default=list)  # village, school, business, ...
    keep_names: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Post(Base):
    """A public post (channel 'web') or a chat message (channel 'chat'): one table, one pipeline.

    ``dedup_key`` is the stable identity used by core.ingest: source + external id, else the
    canonical URL, else the content hash. ``analyzed_at`` is NULL until nlp has processed the
    current text (an update resets it), which makes ``yuqing analyze`` incremental.
    """

    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_published_at", "published_at"),
        Index("ix_posts_analyzed_at", "analyzed_at"),
        Index("ix_posts_group_published", "group_id", "published_at"),
    )
    id: Mapped[int] = _pk()
    dedup_key: Mapped[str] = mapped_column(String(600), unique=True)
    channel: Mapped[str] = mapped_column(String(10))  # web | chat
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("chat_groups.id", ondelete="SET NULL"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"))
    parent_key: Mapped[str | None] = mapped_column(String(600))  # dedup_key of the thread/quoted post
    title: Mapped[str | None] = mapped_column(String(1000))
    author: Mapped[str | None] = mapped_column(String(255))  # a pseudonym for chat senders by default
    published_at: Mapped[dt.datetime | None]
    collected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    raw_text: Mapped[str] = mapped_column(Text)  # as collected, personal numbers masked
    norm_text: Mapped[str | None] = mapped_column(Text)  # normalised by nlp
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    is_forward: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    analyzed_at: Mapped[dt.datetime | None]
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"), index=True)
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"), index=True)
    category: Mapped[str | None] = mapped_column(String(50))
    negativity: Mapped[float | None] = mapped_column(Float)
    is_local: Mapped[bool | None] = mapped_column(Boolean)
    places: Mapped[list[Any]] = mapped_column(default=list)
    # What the post does in its matter (nlp.roles): claim | question | reaction | refutation |
    # notice | complaint | other; NULL until analysed.
    role: Mapped[str | None] = mapped_column(String(12))
    role_confidence: Mapped[float | None] = mapped_column(Float)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    # Text recognised in the post's pictures (nlp.images), masked like raw_text; analysed with it.
    image_text: Mapped[str | None] = mapped_column(Text)
    # jieba words of the searchable text, space-separated (core.textsearch; full-text indexed by core.search)
    search_tokens: Mapped[str | None] = mapped_column(Text)


class Image(Base):
    """One distinct picture, stored once on disk (``<data_dir>/images/<sha256[:2]>/<sha256>.<ext>``,
    EXIF stripped); a forwarded, recompressed, resized or lightly cropped copy is the same row
    (near-duplicate by pHash and dHash, see core.images). The OCR result lives here, so each
    distinct picture is read once.
    """

    __tablename__ = "images"
    id: Mapped[int] = _pk()
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the stored (EXIF-free) bytes
    phash: Mapped[str] = mapped_column(String(16), index=True)  # 64-bit perceptual hash, hex
    dhash: Mapped[str] = mapped_column(String(16))  # 64-bit difference hash, hex
    path: Mapped[str] = mapped_column(String(300))  # relative to <data_dir>/images
    mime: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    copies: Mapped[int] = mapped_column(Integer, default=1)  # how many times it arrived (any copy)
    ocr_status: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # pending|done|failed
    ocr_text: Mapped[str | None] = mapped_column(Text)  # masked like any text
    ocr_lines: Mapped[list[Any]] = mapped_column(default=list)  # [[box(4 points), text, confidence], ...]
    ocr_confidence: Mapped[float | None] = mapped_column(Float)
    ocr_at: Mapped[dt.datetime | None]
    ocr_error: Mapped[str | None] = mapped_column(String(500))
    # Document-like picture (a notice with a red header or a seal): rules over measured features.
    is_document: Mapped[bool | None] = mapped_column(Boolean)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)  # features, headline, issuer


class PostImage(Base):
    """A picture referenced by a post: queued by core.ingest (``status`` pending), fetched or read
    from an export folder (stored / failed / refused / missing), then linked to its :class:`Image`."""

    __tablename__ = "post_images"
    __table_args__ = (UniqueConstraint("post_id", "position"),)
    id: Mapped[int] = _pk()
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(String(2048))  # URL (http/https) or a local file path of an export
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(String(500))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    fetched_at: Mapped[dt.datetime | None]


# --------------------------------------------------------------------------- analysis


class ModelVersion(Base):
    """A trained classifier version; exactly one per name is 'active'."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(100), default="rumor")
    version: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="candidate")  # candidate | active | retired
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reference_distribution: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trained_at: Mapped[dt.datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    promoted_at: Mapped[dt.datetime | None]
    promoted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)  # e.g. the reason for a forced promotion
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PostScore(Base):
    """The rumor score of one post by one model version, with the terms that raised it."""

    __tablename__ = "post_scores"
    __table_args__ = (UniqueConstraint("post_id", "model_version_id"),)
    id: Mapped[int] = _pk()
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    # P(rumor) adjusted to the estimated rumor share of the post's channel (nlp.prevalence);
    # for a post the model abstains on (label -1), the channel's rumor share itself.
    rumor_probability: Mapped[float] = mapped_column(Float)
    # The model's own score (at its training data's rumor share): a new prevalence estimate
    # re-adjusts rumor_probability and label from it without scoring again. NULL on rows
    # written before it existed.
    raw_probability: Mapped[float | None] = mapped_column(Float)
    label: Mapped[int] = mapped_column(Integer)  # 1 rumor, 0 not, -1 无法判断 (the model abstains)
    explanation: Mapped[list[Any]] = mapped_column(default=list)  # [[term, weight], ...]
    scored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PrevalenceEstimate(Base):
    """One estimate of the rumor share of a channel (web, chat, or all) over a rolling window,
    from the model's unlabelled scores and any reviewed verdicts (nlp.prevalence_store), with
    the decision threshold it implies for the target precision."""

    __tablename__ = "prevalence_estimates"
    __table_args__ = (Index("ix_prevalence_channel_created", "channel", "created_at"),)
    id: Mapped[int] = _pk()
    channel: Mapped[str] = mapped_column(String(10))  # web | chat | all
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    estimate: Mapped[float] = mapped_column(Float)
    lower: Mapped[float] = mapped_column(Float)
    upper: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(20))  # em | em+labels | bbse | default
    n: Mapped[int] = mapped_column(Integer)  # scored posts in the window
    n_labels: Mapped[int] = mapped_column(Integer, default=0)  # reviewed verdicts among them
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    target_precision: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)  # adjusted P at which a post is called a rumor
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # the channel's calibration map applied before the estimate (nlp.channel_calibration): kind
    # heldout (the model's own) or labels (fitted on the channel's reviewed verdicts), a, b, counts
    calibration: Mapped[dict[str, Any] | None]


class AnalysisRun(Base):
    """One `yuqing analyze` run: counts, timings and the score distribution (for drift)."""

    __tablename__ = "analysis_runs"
    id: Mapped[int] = _pk()
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    posts_processed: Mapped[int] = mapped_column(Integer, default=0)
    score_histogram: Mapped[list[Any]] = mapped_column(default=list)
    mean_score: Mapped[float | None] = mapped_column(Float)
    high_share: Mapped[float | None] = mapped_column(Float)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Story(Base):
    """Near-duplicate posts (forwards, small edits) across groups and sites: one story."""

    __tablename__ = "stories"
    id: Mapped[int] = _pk()
    # No FK: posts already point at stories/topics, and a cycle would complicate every migration.
    representative_post_id: Mapped[int | None] = mapped_column(BigId)
    title: Mapped[str | None] = mapped_column(String(500))
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    group_count: Mapped[int] = mapped_column(Integer, default=0)
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    hourly_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"2026-11-28T14": n}
    max_rumor_probability: Mapped[float | None] = mapped_column(Float)
    debunk_id: Mapped[int | None] = mapped_column(ForeignKey("debunks.id", ondelete="SET NULL"))
    debunk_similarity: Mapped[float | None] = mapped_column(Float)
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)  # MinHash of the representative text
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Topic(Base):
    """A hot-concern topic tracked over time (today's continues yesterday's)."""

    __tablename__ = "topics"
    id: Mapped[int] = _pk()
    label: Mapped[str] = mapped_column(String(500))
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    # No FK: posts already point at stories/topics, and a cycle would complicate every migration.
    representative_post_id: Mapped[int | None] = mapped_column(BigId)
    category: Mapped[str | None] = mapped_column(String(50))
    places: Mapped[list[Any]] = mapped_column(default=list)
    negativity: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    group_count: Mapped[int] = mapped_column(Integer, default=0)
    hourly_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_hot: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    burst_score: Mapped[float | None] = mapped_column(Float)
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | dormant
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Added by nlp/concerns: distinct sources, local posts, priority and mood over time.
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    local_count: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[float | None] = mapped_column(Float)  # burst x locality x negativity, for sorting
    hourly_negativity: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"2026-11-28T14": sum}
    representative_score: Mapped[float | None] = mapped_column(Float)  # cosine of the representative post
    hot_since: Mapped[dt.datetime | None]  # when the current hot spell began (NULL when not hot)
    facets: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"categories": {c: n}, "places": {p: n}}

    def keyword_words(self, limit: int | None = None) -> list[str]:
        """The words of ``keywords``, strongest first (nlp stores ``[word, count]`` pairs)."""
        words = [k[0] if isinstance(k, (list, tuple)) and k else k for k in (self.keywords or [])]
        return [w for w in words if isinstance(w, str) and w][:limit]


class TopicBurst(Base):
    """One hour in which a topic was hot: the history behind "hot by day"."""

    __tablename__ = "topic_bursts"
    __table_args__ = (UniqueConstraint("topic_id", "hour"), Index("ix_topic_bursts_hour", "hour"))
    id: Mapped[int] = _pk()
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    hour: Mapped[dt.datetime]  # start of the UTC hour of the evaluation
    burst_score: Mapped[float] = mapped_column(Float)
    recent_count: Mapped[int] = mapped_column(Integer)
    expected: Mapped[float] = mapped_column(Float)
    evaluated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConcernState(Base):
    """Named state blobs of the concern stage (e.g. hashed document frequencies for TF-IDF)."""

    __tablename__ = "concern_state"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Debunk(Base):
    """A known, already-refuted rumor with its official refutation."""

    __tablename__ = "debunks"
    id: Mapped[int] = _pk()
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)  # hash of the normalised claim
    claim: Mapped[str] = mapped_column(Text)
    refutation: Mapped[str] = mapped_column(Text)
    publisher: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048))
    published_at: Mapped[dt.datetime | None]
    category: Mapped[str | None] = mapped_column(String(50))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # jieba words of the searchable text, space-separated (core.textsearch; full-text indexed by core.search)
    search_tokens: Mapped[str | None] = mapped_column(Text)


class DebunkMatch(Base):
    __tablename__ = "debunk_matches"
    __table_args__ = (UniqueConstraint("post_id", "debunk_id"),)
    id: Mapped[int] = _pk()
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    debunk_id: Mapped[int] = mapped_column(ForeignKey("debunks.id", ondelete="CASCADE"), index=True)
    similarity: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(20))  # minhash | tfidf
    matched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Incident(Base):
    """One matter (一件事), the unit staff work on: a rumor's claim with its copies (stories) and
    paraphrases, the questions and reactions it draws, and the refutations and notices about it;
    or one concern's complaints and questions. Built incrementally by nlp.incidents; staff can
    merge, split and move posts (``incident_constraints`` keeps what they decided)."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_last_seen", "status", "last_seen"),)
    id: Mapped[int] = _pk()
    kind: Mapped[str] = mapped_column(String(20), default="unknown")  # rumor | concern | notice | unknown
    title: Mapped[str | None] = mapped_column(String(500))  # a headline a person would write (~30 chars)
    representative_post_id: Mapped[int | None] = mapped_column(BigId)  # a claim (or complaint) that says it
    first_seen: Mapped[dt.datetime]
    last_seen: Mapped[dt.datetime]
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    group_count: Mapped[int] = mapped_column(Integer, default=0)
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    role_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"claim": 3, "question": 2, ...}
    hourly_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"2026-11-28T14": n}, UTC
    spread: Mapped[dict[str, Any]] = mapped_column(default=dict)  # per group/source: {"g:12": n, "s:3": n}
    max_rumor_probability: Mapped[float | None] = mapped_column(Float)  # over its claims
    risk: Mapped[float | None] = mapped_column(Float)  # rumor risk of the matter, 0..1
    risk_parts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # explained parts of `risk`
    debunk_id: Mapped[int | None] = mapped_column(ForeignKey("debunks.id", ondelete="SET NULL"))
    debunk_similarity: Mapped[float | None] = mapped_column(Float)
    category: Mapped[str | None] = mapped_column(String(50))
    places: Mapped[list[Any]] = mapped_column(default=list)
    anchors: Mapped[dict[str, Any]] = mapped_column(default=dict)  # numbers, amounts, named things
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary)  # content vector for grouping
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | dormant | merged
    merged_into_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IncidentConstraint(Base):
    """What staff decided about grouping, kept so the grouping follows it from then on:
    ``must_link`` (these two posts are one matter) or ``cannot_link`` (never one matter), from a
    merge, a split or a move."""

    __tablename__ = "incident_constraints"
    __table_args__ = (UniqueConstraint("kind", "post_id", "other_post_id"),)
    id: Mapped[int] = _pk()
    kind: Mapped[str] = mapped_column(String(12))  # must_link | cannot_link
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    other_post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(12))  # merge | split | move
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Tip(Base):
    """A resident's report or question (举报线索) from the tip page, the QQ bot, the 公众号 or a
    hotline export. The reporter is a keyed hash (core.tips.reporter_key); how to reach them is
    encrypted with the instance secret (``contact_sealed``) and only ever read to send a reply.
    The text also enters the pipeline as a post (``post_id``), so it joins or starts an incident."""

    __tablename__ = "tips"
    __table_args__ = (Index("ix_tips_received_at", "received_at"), Index("ix_tips_reporter", "reporter_key"))
    id: Mapped[int] = _pk()
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)  # channel + message id / form token
    channel: Mapped[str] = mapped_column(String(12))  # web | qq | wechat | hotline
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)  # personal numbers masked
    images: Mapped[list[Any]] = mapped_column(default=list)  # picture refs (URLs or stored files)
    reporter_key: Mapped[str] = mapped_column(String(64))  # HMAC(instance secret, channel:address), hex
    contact_sealed: Mapped[str | None] = mapped_column(Text)  # Fernet token of {"channel", "address"}
    wants_answer: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="acknowledged", index=True)
    # auto_answered | acknowledged | answered | abuse | closed
    debunk_id: Mapped[int | None] = mapped_column(ForeignKey("debunks.id", ondelete="SET NULL"))
    debunk_score: Mapped[float | None] = mapped_column(Float)
    debunk_method: Mapped[str | None] = mapped_column(String(20))
    # why a match in the score band was not answered automatically (nlp.reply_gate, Chinese)
    auto_reply_held: Mapped[str | None] = mapped_column(String(200))
    # insult | None: flagged by the abuse lexicon (alerts.tip_abuse); staff may clear it
    flag: Mapped[str | None] = mapped_column(String(20))
    flag_terms: Mapped[str | None] = mapped_column(String(200))  # the lexicon's words found, for staff
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"), index=True)
    first_reply: Mapped[str | None] = mapped_column(Text)  # what the resident got at once
    answer: Mapped[str | None] = mapped_column(Text)  # the staff answer, when one was sent
    answered_at: Mapped[dt.datetime | None]  # auto-answer or staff answer: for the time-to-answer
    response_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id", ondelete="SET NULL"))
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class TipBlock(Base):
    """A blocked reporter (by reporter key): their tips are kept out of the pipeline and unanswered."""

    __tablename__ = "tip_blocks"
    reporter_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- decisions


class Alert(Base):
    """What staff work from: one alert per story (new posts fold in), with its risk parts."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_status_severity", "status", "severity_rank", "updated_at"),
        Index("ix_alerts_story", "story_id"),
        Index("ix_alerts_rank_updated", "severity_rank", "updated_at"),
    )
    id: Mapped[int] = _pk()
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"))
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )  # one alert per incident (matter)
    kind: Mapped[str] = mapped_column(String(20))  # rumor | debunk_match | spread | concern | keyword | manual | notice
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(10))  # low | medium | high | urgent
    severity_rank: Mapped[int] = mapped_column(Integer)  # 0..3, for sorting
    risk_score: Mapped[float] = mapped_column(Float)
    score_parts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rules_fired: Mapped[list[Any]] = mapped_column(default=list)
    category: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(30), default="new")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]
    post_count_at_close: Mapped[int | None] = mapped_column(Integer)  # re-alert margin after dismissal
    suggested_response: Mapped[str | None] = mapped_column(Text)
    post_count: Mapped[int] = mapped_column(Integer, default=0)  # evidence posts, for the list and margins
    group_count: Mapped[int] = mapped_column(Integer, default=0)  # distinct groups/sources reached
    noted_post_count: Mapped[int] = mapped_column(Integer, default=0)  # post count at the last "rising" note
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # jieba words of the searchable text, space-separated (core.textsearch; full-text indexed by core.search)
    search_tokens: Mapped[str | None] = mapped_column(Text)


class AlertRun(Base):
    """One `yuqing alerts evaluate` run: the analysis watermark it reached and what it did."""

    __tablename__ = "alert_runs"
    id: Mapped[int] = _pk()
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    # Highest posts.analyzed_at / topics.updated_at seen; the next run starts a little before it.
    post_watermark: Mapped[dt.datetime | None]
    topic_watermark: Mapped[dt.datetime | None]
    incident_watermark: Mapped[dt.datetime | None]  # highest incidents.updated_at seen
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AlertPost(Base):
    """Evidence: the posts an alert stands on."""

    __tablename__ = "alert_posts"
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AlertEvent(Base):
    """Append-only history of an alert: who did what, when."""

    __tablename__ = "alert_events"
    id: Mapped[int] = _pk()
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))  # NULL: system
    action: Mapped[str] = mapped_column(String(30))  # created|folded|status|assigned|comment|responded|escalated
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str | None] = mapped_column(String(30))
    comment: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Response(Base):
    """What the office published in answer (refutation or reply), and its measured effect."""

    __tablename__ = "responses"
    id: Mapped[int] = _pk()
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    channels: Mapped[list[Any]] = mapped_column(default=list)
    url: Mapped[str | None] = mapped_column(String(2048))
    published_at: Mapped[dt.datetime]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    spread_before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spread_after: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Publication(Base):
    """An approved response sent out: drafted by one person, approved by another (or by one person
    where the office allows it), then sent to chat groups through the bot and drawn as a 辟谣 card.
    Nothing is sent before ``approved_at`` is set; approval also records the ``responses`` row."""

    __tablename__ = "publications"
    id: Mapped[int] = _pk()
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))  # a repeated draft of the same content is one draft
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft | approved | rejected
    claim: Mapped[str] = mapped_column(Text)  # the rumor as people tell it (on the card)
    text: Mapped[str] = mapped_column(Text)  # the official answer: the message sent and the card's body
    url: Mapped[str | None] = mapped_column(String(2048))  # the full refutation (the card's QR code)
    publisher: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[dt.datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)
    response_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id", ondelete="SET NULL"))


class PublicationTarget(Base):
    """One chat group a publication goes to, and what happened: an outbox row with a stable key.

    Sent at most once: a row is marked ``sending`` (committed) before the bot is called, so a crash
    mid-send leaves it ``unknown`` (staff check the group) instead of sending it twice."""

    __tablename__ = "publication_targets"
    __table_args__ = (Index("ix_publication_targets_due", "status", "next_attempt_at"),)
    id: Mapped[int] = _pk()
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)  # publication:<id>:group:<platform>:<number>
    group_id: Mapped[int | None] = mapped_column(ForeignKey("chat_groups.id", ondelete="SET NULL"))
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))  # the group number the bot sends to
    group_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="waiting")  # waiting|pending|sending|sent|failed|unknown|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(100))  # the bot's id of the sent message
    # Messages of this group's send confirmed so far: a WeCom group gets the text, then the card
    # picture; a retry goes on from here (never sends the text again).
    parts_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ResponseTemplate(Base):
    """An analyst's own wording of the response draft for one kind of matter (rumor | concern |
    notice) and category ("" = every category of that kind); alerts.drafts holds the defaults."""

    __tablename__ = "response_templates"
    __table_args__ = (UniqueConstraint("kind", "category"),)
    id: Mapped[int] = _pk()
    kind: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50), default="")
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Label(Base):
    """A human verdict on a text, for retraining (from reviews, manual labelling or imports)."""

    __tablename__ = "labels"
    id: Mapped[int] = _pk()
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[int] = mapped_column(Integer)  # 1 rumor, 0 not
    category: Mapped[str | None] = mapped_column(String(50))
    origin: Mapped[str] = mapped_column(String(20))  # review | manual | import
    role: Mapped[str | None] = mapped_column(String(12))  # the post's role (nlp.roles) where known
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None]  # last correction


class LabelEvent(Base):
    """Append-only history of labels: created, corrected, deleted, resolved (a conflict decided).

    Kept when the label itself is deleted, so an analyst can see who changed which verdict."""

    __tablename__ = "label_events"
    id: Mapped[int] = _pk()
    label_id: Mapped[int | None] = mapped_column(BigId, index=True)  # no FK: history outlives the label
    text_hash: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(12))  # created | corrected | deleted | resolved
    old_label: Mapped[int | None] = mapped_column(Integer)
    new_label: Mapped[int | None] = mapped_column(Integer)
    old_category: Mapped[str | None] = mapped_column(String(50))
    new_category: Mapped[str | None] = mapped_column(String(50))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelEvent(Base):
    """Append-only log of the model registry: trained, recalibrated, promoted, forced (with the
    reason), rolled back, deleted, and who did each. Notes on versions are never overwritten;
    this log is the history."""

    __tablename__ = "model_events"
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(100), default="rumor")
    version: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(20))  # registered | trained | recalibrated | promoted | forced | rolled_back | deleted
    previous_version: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- people and delivery


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = _pk()
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))  # admin | analyst | staff | viewer
    password_hash: Mapped[str | None] = mapped_column(String(300))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None]
    # Console sessions signed before this instant are void (set when the password changes).
    sessions_valid_from: Mapped[dt.datetime | None]
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class RateCounter(Base):
    """Rate limits that hold across processes and restarts, one row per key (core.throttle).

    Keys name their user: ``login:user:<name>`` / ``login:addr:<address>`` count recent failed
    console logins (``hits`` failures, the last at ``last_at``); ``tip:addr:<address>``,
    ``tip:reporter:<key>`` and ``send:<channel>:<account>`` are rate limits (GCRA: ``last_at`` is
    the theoretical arrival time of the next request, ``hits`` a version for compare-and-set).
    In the database, so a restart, a second worker or a second process does not reset them;
    rows that no longer limit anything are deleted as new keys come in, so the table stays small."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class EndedSession(Base):
    """A console session ended by 退出 before its signed cookie expired, kept by the SHA-256 of its
    CSRF token until it would have expired anyway. In the database, not in process memory, so a
    copied cookie stays dead after a restart and on every worker of a scaled-out console."""

    __tablename__ = "ended_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    ended_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ApiToken(Base):
    """A bearer token, stored as its SHA-256 only. ``kind='bot'`` tokens may only push messages."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = _pk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), default="user")  # user | bot
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    user: Mapped[User] = relationship(back_populates="tokens")


class Digest(Base):
    """A daily digest as built and sent (one per day per recipient list unless forced)."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("day", "recipients_key", "revision"),)
    id: Mapped[int] = _pk()
    day: Mapped[dt.date] = mapped_column(Date)
    recipients_key: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=0)  # bumped by --force
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)  # cid -> {"content_type":..., "b64":...}
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the figures behind the text
    status: Mapped[str] = mapped_column(String(20), default="built")  # built | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]  # with attempts, spaces out the retries
    message_id: Mapped[str | None] = mapped_column(String(300))  # the Message-ID the mail was sent with
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """Outbox: written in the same transaction as the change it reports, delivered later."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)
    id: Mapped[int] = _pk()
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | dingtalk | wecom | feishu | webhook
    target: Mapped[str] = mapped_column(String(1000))
    subject: Mapped[str | None] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class NotificationAttempt(Base):
    __tablename__ = "notification_attempts"
    id: Mapped[int] = _pk()
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)


metadata = Base.metadata

import core.textsearch  # noqa: E402,F401  (fills search_tokens on every ORM flush)
