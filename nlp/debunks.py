"""The debunk library (known rumors with their official refutations) and matching posts against it.

Service functions take the session as a keyword-only argument and run in the caller's
transaction. Every write is idempotent: a debunk's identity is ``Debunk.dedup_key``, the
SHA-256 of the claim's match key (normalised, forward decoration and punctuation removed),
so importing the same file twice, or the same claim with other punctuation, changes nothing.

Matching (:class:`DebunkMatcher`) combines two signals on the same character n-grams:

* MinHash LSH on bigrams finds near-duplicates of a claim (forwards, small edits): method
  ``minhash``, similarity = estimated Jaccard;
* TF-IDF cosine on hashed bigrams (IDF from the library) finds posts that quote the claim
  inside a longer text or paraphrase it: method ``tfidf``, similarity = cosine. Because a
  long post that quotes a short claim has a low cosine, the best TF-IDF candidate also passes
  when most of the claim's bigrams occur in the post: method ``containment``, similarity = the
  share of the claim's bigrams found in the post.
* The claim matcher (:mod:`nlp.claims`) catches reworded and shortened retellings the two
  above miss ("84岁钟南山院士再度出征" / "84岁钟南山院士再次出征北京"): the few claims nearest by
  TF-IDF are scored for P(same claim), which must reach the matcher's operating point (chosen
  for precision >= 0.95): method ``paraphrase``, similarity = that probability.

:func:`match_open_incidents` matches new or edited debunks against the claims of the open
incidents at once, so a refutation reaches the matter staff are working on without waiting
for those posts to be analysed again; :func:`unlink_open_incidents` takes back what a debunk
matched there when its claim is edited or it is withdrawn.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from core import search
from core.db import upsert_insert
from core.encoding import decode_text
from core.errors import Conflict, InvalidInput, NotFound
from core.tables import Debunk, DebunkMatch, Incident, Post, utcnow
from core.textsearch import row_tokens
from nlp.anchors import Anchors, anchors_conflict, default_extractor, named_place_marks
from nlp.claims import ClaimDoc, ClaimMatcher, ClaimModelMissing, counts_conflict, load_claim_matcher, opposed
from nlp.normalize import normalize
from nlp.scoring import numpy_twin
from nlp.similarity import (
    N_FEATURES,
    BandedIndex,
    ShingleBatch,
    match_key,
    place_marks,
    places_conflict,
    shingle_batch,
)

__all__ = [
    "DEMO_DEBUNKS",
    "DebunkHit",
    "DebunkIn",
    "DebunkMatcher",
    "DebunkUpdate",
    "ImportResult",
    "claim_key",
    "create_debunk",
    "delete_debunk",
    "get_debunk",
    "import_debunks",
    "insert_new_debunks",
    "list_debunks",
    "match_open_incidents",
    "read_debunk_file",
    "unlink_open_incidents",
    "update_debunk",
    "upsert_debunks",
    "validate_debunk_rows",
    "write_matches",
]

log = logging.getLogger(__name__)

#: The sample library of the demo (fictional refutations about 青禾镇).
DEMO_DEBUNKS = Path(__file__).resolve().parent / "demo" / "debunks.yaml"
FIELDS = ("claim", "refutation", "publisher", "url", "published_at", "category", "tags")
_CHUNK = 500


# ----------------------------------------------------------------------------- schemas


def _taxonomy_category(value: str | None) -> str | None:
    """A debunk's category is one of the concern taxonomy's (nlp/concerns/taxonomy.yaml), so the
    library, alerts and hot concerns file a matter under the same word."""
    if value is None:
        return None
    from nlp.concerns.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    allowed = list(dict.fromkeys([*taxonomy.categories, taxonomy.default]))  # the default may be listed
    if value not in allowed:
        raise ValueError(f"类别“{value}”不在分类表中，可选：{'、'.join(allowed)}"
                         f"（分类表 {taxonomy.source or 'nlp/concerns/taxonomy.yaml'}，可在其中增加类别）")
    return value


#: Only web links: a javascript: or data: URL in a debunk would run in the console when clicked.
WEB_URL = r"^https?://[^\s<>\"]+$"


class DebunkIn(BaseModel):
    """One debunk as imported or created: the rumor's claim and the official refutation."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    claim: str = Field(min_length=2, max_length=5000, description="谣言内容（原话或概括）")
    refutation: str = Field(min_length=2, max_length=20000, description="官方辟谣内容")
    publisher: str | None = Field(None, max_length=200, description="发布机构，如 青禾镇人民政府")
    url: str | None = Field(None, max_length=2048, pattern=WEB_URL, description="辟谣原文链接（http/https）")
    published_at: dt.datetime | None = None
    category: str | None = Field(None, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value: Any) -> Any:
        if value is None or value == "":
            return []
        if isinstance(value, str):  # CSV: "封城;青禾镇" or "封城,青禾镇"
            return [
                t.strip()
                for t in value.replace("，", ",").replace(";", ",").replace("；", ",").split(",")
                if t.strip()
            ]
        return value

    @field_validator("publisher", "url", "category", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("category", mode="after")
    @classmethod
    def _known_category(cls, value: str | None) -> str | None:
        return _taxonomy_category(value)

    @field_validator("published_at", mode="before")
    @classmethod
    def _blank_date(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
        return value

    @field_validator("published_at", mode="after")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            from zoneinfo import ZoneInfo

            from core.settings import get_settings

            value = value.replace(tzinfo=ZoneInfo(get_settings().timezone))
        return value

    @field_validator("claim", mode="after")
    @classmethod
    def _has_content(cls, value: str) -> str:
        if len(match_key(normalize(value))) < 2:
            raise ValueError("谣言内容至少要有两个汉字、字母或数字")
        return value


class DebunkUpdate(BaseModel):
    """A partial update: only the fields given change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    claim: str | None = Field(None, min_length=2, max_length=5000)
    refutation: str | None = Field(None, min_length=2, max_length=20000)
    publisher: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2048, pattern=WEB_URL)
    published_at: dt.datetime | None = None
    category: str | None = Field(None, max_length=50)
    tags: list[str] | None = Field(None, max_length=50)
    active: bool | None = None

    @field_validator("category", mode="after")
    @classmethod
    def _known_category(cls, value: str | None) -> str | None:
        return _taxonomy_category(value)


def claim_key(claim: str) -> str:
    """``Debunk.dedup_key``: SHA-256 of the claim's match key."""
    return hashlib.sha256(match_key(normalize(claim)).encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- reading files


@dataclass
class ImportResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    ids: list[int] = field(default_factory=list)


def read_debunk_file(
    path: str | Path, *, data: bytes | None = None, fmt: str | None = None
) -> list[dict[str, Any]]:
    """Rows of a debunk file: CSV with a header row, or YAML (a list, or ``{debunks: [...]}``).

    ``data`` lets the API pass an upload's bytes; ``path`` then only names it.
    """
    p = Path(path)
    kind = (fmt or p.suffix.lstrip(".")).lower()
    if data is None:
        if not p.is_file():
            raise InvalidInput(f"辟谣库文件不存在：{p}。请检查路径。")
        data = p.read_bytes()
    try:
        text = decode_text(data)
    except UnicodeDecodeError as err:
        raise InvalidInput(f"辟谣库文件 {p.name} 的编码无法识别：请另存为 UTF-8 或 GBK 后再导入。") from err
    if kind == "csv":
        try:
            return _csv_rows(text, p.name)
        except csv.Error as err:  # a stray carriage return or quote: the file's fault, not ours
            raise InvalidInput(f"CSV 文件 {p.name} 格式错误：{err}。请用表格软件另存为 CSV 后再导入。") from err
    if kind in {"yaml", "yml"}:
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InvalidInput(f"YAML 文件 {p.name} 格式错误：{err}") from err
        if isinstance(loaded, Mapping):
            loaded = loaded.get("debunks")
        if not isinstance(loaded, list) or not all(isinstance(r, Mapping) for r in loaded):
            raise InvalidInput(
                f"YAML 文件 {p.name} 应是辟谣条目的列表（或 debunks: 下的列表），每条含 claim 和 refutation。"
            )
        return [dict(r) for r in loaded]
    raise InvalidInput(f"不支持的辟谣库文件类型 '{p.suffix or kind}'：请用 .csv 或 .yaml/.yml。")


def _csv_rows(text: str, name: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("claim", "refutation") if c not in header]
    if missing:
        raise InvalidInput(
            f"CSV 文件 {name} 缺少列 {', '.join(missing)}；需要的列：{', '.join(FIELDS)}"
            f"（现有列：{', '.join(header) or '无'}）。"
        )
    return [{(k or "").strip(): v for k, v in row.items()} for row in reader]


def validate_debunk_rows(
    rows: Sequence[Mapping[str, Any] | DebunkIn],
) -> tuple[list[tuple[int, DebunkIn]], list[tuple[int, str]]]:
    """Rows as the import reads them: (row number, DebunkIn) of the good ones, (row number, reason in
    Chinese) of the refused ones."""
    good: list[tuple[int, DebunkIn]] = []
    bad: list[tuple[int, str]] = []
    for number, row in enumerate(rows, 1):
        if isinstance(row, DebunkIn):
            good.append((number, row))
            continue
        try:
            good.append((number, DebunkIn.model_validate(row)))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "?"
            bad.append((number, f"第 {number} 条：字段 {where} 无效：{first['msg']}"))
    return good, bad


# ----------------------------------------------------------------------------- writing


def _values(item: DebunkIn) -> dict[str, Any]:
    return {
        "claim": item.claim,
        "refutation": item.refutation,
        "publisher": item.publisher,
        "url": item.url,
        "published_at": item.published_at,
        "category": item.category,
        "tags": list(item.tags),
    }


def _same(row: Any, values: Mapping[str, Any]) -> bool:
    return all(getattr(row, k) == v for k, v in values.items())


def insert_new_debunks(session: Session, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert debunk rows whose claim is not in the library; the claim keys this call inserted.
    Another import may add the same claim between our look-up and the insert: its row stays, and
    the key is not ours (RETURNING says which rows were written; rowcount cannot, psycopg gives -1
    for an executemany)."""
    if not rows:
        return set()
    stmt = (upsert_insert(session, Debunk.__table__).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(Debunk.__table__.c.dedup_key))
    return set(session.scalars(stmt, list(rows)).all())


def upsert_debunks(
    session: Session, items: Sequence[Mapping[str, Any] | DebunkIn], *, created_by: int | None = None
) -> ImportResult:
    """Insert new debunks and update changed ones, keyed by the claim's hash. Set-based."""
    good, rejected = validate_debunk_rows(items)
    result = ImportResult(rejected=rejected)
    batch: dict[str, dict[str, Any]] = {}
    for _, item in good:  # the last row for a claim wins
        batch[claim_key(item.claim)] = _values(item)
    if not batch:
        return result
    existing: dict[str, Any] = {}
    keys = list(batch)
    for start in range(0, len(keys), _CHUNK):
        for row in session.scalars(select(Debunk).where(Debunk.dedup_key.in_(keys[start : start + _CHUNK]))):
            existing[row.dedup_key] = row
    now = utcnow()
    fresh = [
        {"dedup_key": k, **v, "active": True, "created_by": created_by, "created_at": now, "updated_at": now,
         "search_tokens": row_tokens("debunks", v)}
        for k, v in batch.items()
        if k not in existing
    ]
    changed = [(existing[k], v) for k, v in batch.items() if k in existing and not _same(existing[k], v)]
    fresh_keys = insert_new_debunks(session, fresh)
    for row, values in changed:
        session.execute(update(Debunk).where(Debunk.id == row.id).values(
            **values, updated_at=now, search_tokens=row_tokens("debunks", values)))
    result.new = len(fresh_keys)
    result.updated = len(changed)
    result.unchanged = len(batch) - len(fresh_keys) - len(changed)
    touched: list[int] = [row.id for row, _ in changed]
    for start in range(0, len(keys), _CHUNK):
        for row_id, key in session.execute(
            select(Debunk.id, Debunk.dedup_key).where(Debunk.dedup_key.in_(keys[start : start + _CHUNK]))
        ):
            result.ids.append(row_id)
            if key in fresh_keys:
                touched.append(row_id)
    session.expire_all()
    # New and changed debunks reach the open incidents at once (unchanged ones already have).
    match_open_incidents(session, touched)
    return result


def import_debunks(
    session: Session,
    path: str | Path,
    *,
    data: bytes | None = None,
    fmt: str | None = None,
    created_by: int | None = None,
) -> ImportResult:
    """Import a CSV or YAML debunk file (idempotent); bad rows are reported, good rows kept."""
    return upsert_debunks(session, read_debunk_file(path, data=data, fmt=fmt), created_by=created_by)


def create_debunk(session: Session, item: DebunkIn, *, created_by: int | None = None) -> Debunk:
    """Add one debunk; the same claim again is a conflict (use update instead)."""
    key = claim_key(item.claim)
    found = session.scalar(select(Debunk).where(Debunk.dedup_key == key))
    if found is not None:
        raise Conflict(f"辟谣库中已有相同的谣言（编号 {found.id}）：请修改那一条，不要重复添加。")
    row = Debunk(dedup_key=key, created_by=created_by, active=True, **_values(item))
    session.add(row)
    session.flush()
    match_open_incidents(session, [row.id])
    return row


def get_debunk(session: Session, debunk_id: int) -> Debunk:
    row = session.get(Debunk, debunk_id)
    if row is None:
        raise NotFound(f"辟谣条目 {debunk_id} 不存在。")
    return row


def update_debunk(session: Session, debunk_id: int, changes: DebunkUpdate) -> Debunk:
    row = get_debunk(session, debunk_id)
    values = changes.model_dump(exclude_unset=True)
    for name in ("claim", "refutation"):
        if name in values and values[name] is None:
            raise InvalidInput(f"字段 {name} 不能为空。")
    if "claim" in values:
        DebunkIn(claim=values["claim"], refutation=values.get("refutation") or row.refutation)
        key = claim_key(values["claim"])
        other = session.scalar(select(Debunk.id).where(Debunk.dedup_key == key, Debunk.id != row.id))
        if other is not None:
            raise Conflict(f"辟谣库中已有相同的谣言（编号 {other}）。")
        row.dedup_key = key
    if "published_at" in values and values["published_at"] is not None:
        values["published_at"] = DebunkIn._aware(values["published_at"])
    for name, value in values.items():
        if name == "tags" and value is None:
            value = []
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.flush()
    if "claim" in values or values.get("active") is False:
        unlink_open_incidents(session, row.id)
    if row.active:
        match_open_incidents(session, [row.id])
    return row


def delete_debunk(session: Session, debunk_id: int) -> None:
    """Remove a debunk and its matches (stories keep their history but lose the link)."""
    get_debunk(session, debunk_id)
    session.execute(delete(Debunk).where(Debunk.id == debunk_id))


def list_debunks(
    session: Session, *, q: str | None = None, active: bool | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[Debunk], int]:
    """Newest first; ``q`` searches claim, refutation, publisher and category."""
    stmt = select(Debunk)
    if q:
        like = f"%{q.strip()}%"
        words = search.matches("debunks", Debunk.id, q.strip(), session.get_bind().dialect.name)
        stmt = stmt.where(
            or_(
                Debunk.claim.ilike(like),
                Debunk.refutation.ilike(like),
                Debunk.publisher.ilike(like),
                Debunk.category.ilike(like),
                *([words] if words is not None else []),  # every word of the query, apart
            )
        )
    if active is not None:
        stmt = stmt.where(Debunk.active.is_(active))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    when = func.coalesce(Debunk.published_at, Debunk.created_at)  # by date, as the console lists them
    rows = session.scalars(stmt.order_by(when.desc(), Debunk.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), int(total)


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class DebunkHit:
    debunk_id: int
    similarity: float
    method: str  # minhash | tfidf | containment | paraphrase
    #: The claim matcher's P(same claim) of the post and this debunk's claim where matching
    #: computed it (the veto, the paraphrase path), so a caller needing it scores nothing again.
    claim_score: float | None = field(default=None, compare=False)


#: A hit this similar is a near copy of the debunk's claim (MinHash Jaccard on shingles).
NEAR_COPY = 0.8
#: The claim matcher's score below which its rules have ruled a pair out (a different count,
#: place or predicate scores about 0); a near copy is vetoed only then.
RULED_OUT = 0.05


class DebunkMatcher:
    """Matches post keys against the active debunks; picklable (plain arrays), so workers can use it.

    Thresholds were chosen on the weibo_ced benchmark (bench/bench_matching.py).
    """

    def __init__(
        self,
        ids: Sequence[int],
        claims: Sequence[str],
        *,
        minhash_threshold: float = 0.5,
        cosine_threshold: float = 0.5,
        containment_threshold: float = 0.7,
        containment_min_cosine: float = 0.2,
        min_claim_chars: int = 4,
        place_parents: Mapping[str, frozenset[str]] | None = None,
        claim_matcher: ClaimMatcher | str | None = "auto",
        paraphrase_candidates: int = 6,
        paraphrase_min_cosine: float = 0.12,
        paraphrase_threshold: float | None = None,
        veto_below: float = 0.65,
    ) -> None:
        self.minhash_threshold = minhash_threshold
        # place mark -> the marks of the places it lies in (石桥村 -> 青禾镇, 青禾县): a debunk about
        # the town covers a post about one of its villages, not the other way round
        self.place_parents = dict(place_parents or {})
        self.cosine_threshold = cosine_threshold
        self.containment_threshold = containment_threshold
        self.containment_min_cosine = containment_min_cosine
        self.min_claim_chars = min_claim_chars
        # The paraphrase path: "auto" loads the shipped claim matcher (none shipped: no path).
        # Only the paraphrase_candidates claims nearest by TF-IDF, with a cosine >= paraphrase_min_cosine,
        # are scored. 6 and 0.12 (were 3 and 0.15; matcher 2026.12.2): recall 0.88 -> 0.92 on the
        # hand-written tune part and 0.67 -> 0.72 on mined restatements of training events (folds 4-6),
        # precision unchanged (0.99, 0.97); a reworded retelling often shares few bigrams with its
        # claim. The cosine floor sets the cost (every post above it is segmented and scored): on the
        # analyze bench's posts (10 demo debunks) the stage runs at about 0.7x the old setting's
        # speed, both with memoised hashing (which made the stage 1.3-1.6x faster); 0.08 gained a
        # little more recall (0.94 / 0.73) at about half the speed of 0.12.
        self.claim_matcher = _claim_matcher(claim_matcher)
        self.paraphrase_candidates = paraphrase_candidates
        # A near-duplicate hit (minhash, tfidf, containment) the claim matcher scores below this
        # is another claim in the same words ("...门口抢小孩" / "...门口乱停乱放"): dropped, and
        # the post goes on to the paraphrase path. 0.65 on the tune part of
        # bench/data/reworded_claims.yaml (matcher 2026.12.2) drops all 15 wrong hits (the highest
        # scores 0.62) and none of 13 right ones (the lowest 0.78); 0.4 dropped 13 of the 15.
        self.veto_below = veto_below
        self._pos_of: dict[int, int] = {}
        # (matched claim, other claim) -> whether the claim matcher reads them as one rumor
        self._same_rumor: dict[tuple[int, int], bool] = {}
        self.paraphrase_min_cosine = paraphrase_min_cosine
        self.paraphrase_threshold = (
            paraphrase_threshold
            if paraphrase_threshold is not None or self.claim_matcher is None
            else self.claim_matcher.threshold
        )
        norms = [normalize(c) for c in claims]
        keys = [match_key(n) for n in norms]
        keep = [i for i, k in enumerate(keys) if len(k) >= min_claim_chars]
        self._claim_docs: list[ClaimDoc] = (
            [self.claim_matcher.doc(norms[i]) for i in keep] if self.claim_matcher is not None else []
        )
        self.ids = np.array([ids[i] for i in keep], dtype=np.int64)
        self.keys = [keys[i] for i in keep]
        self.index = BandedIndex(minhash_threshold)
        self._claim_grams: list[np.ndarray] = []
        self._places = [place_marks(k) for k in self.keys]
        self._named_places = [named_place_marks(k) for k in self.keys]
        self._claim_anchors: list[Anchors] = [default_extractor().extract(norms[i]) for i in keep]
        if not self.keys:
            self._matrix = sp.csr_matrix((0, N_FEATURES))
            self._idf = np.ones(N_FEATURES)
            return
        shingles = shingle_batch(self.keys)
        sigs = shingles.signatures()
        band_keys = self.index.band_keys(sigs)
        for pos in range(len(self.keys)):
            self.index.insert(pos, sigs[pos], band_keys[pos])
        self._claim_grams = [shingles.doc_hashes(pos) for pos in range(len(self.keys))]
        counts = shingles.counts()
        df = np.bincount(counts.indices, minlength=N_FEATURES)
        n = len(self.keys)
        self._idf = np.log((1.0 + n) / (1.0 + df)) + 1.0  # sklearn's smooth idf
        self._matrix = self._tfidf(counts).T.tocsr()

    def portable(self) -> DebunkMatcher:
        """This matcher for the analysis workers: the claim matcher's scikit-learn model swapped
        for its numpy twin (nlp.scoring.numpy_twin: ScaledLogistic or BoostedTrees, the same
        probabilities), so unpickling it imports no scikit-learn. Itself when there is no such twin."""
        cm = self.claim_matcher
        twin = numpy_twin(cm.model) if cm is not None else None
        if cm is None or twin is None:
            return self
        out = copy.copy(self)
        out.claim_matcher = copy.copy(cm)
        out.claim_matcher.model = twin
        return out

    @classmethod
    def from_session(cls, session: Session, **kwargs: Any) -> DebunkMatcher:
        """The matcher of the active debunks, with the place hierarchy of the office's gazetteer."""
        rows = session.execute(
            select(Debunk.id, Debunk.claim).where(Debunk.active.is_(True)).order_by(Debunk.id)
        ).all()
        kwargs.setdefault("place_parents", gazetteer_place_parents())
        return cls([r.id for r in rows], [r.claim for r in rows], **kwargs)

    def _post_places(self, key: str, marks: frozenset[str] | None = None) -> frozenset[str]:
        """The places a post names, with the places they lie in."""
        places = place_marks(key) if marks is None else marks
        if not self.place_parents or not places:
            return places
        return places.union(*(self.place_parents.get(p, ()) for p in places))

    def __len__(self) -> int:
        return len(self.keys)

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        # On the CSR arrays directly: scipy's elementwise product, row sum and diagonal product
        # cost about 3 ms for one tip's row, more than the product with 5,000 claims that follows.
        m = sp.csr_matrix(counts, dtype=np.float64, copy=True)
        m.data = (1.0 + np.log(m.data)) * self._idf[m.indices]  # sublinear tf
        row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        norms = np.sqrt(np.bincount(row_of, weights=m.data * m.data, minlength=m.shape[0]))
        norms[norms == 0] = 1.0
        m.data *= (1.0 / norms)[row_of]
        return m

    def match(
        self, keys: Sequence[str], signatures: np.ndarray | None = None, shingles: ShingleBatch | None = None
    ) -> list[DebunkHit | None]:
        """The best debunk for each post key, or None.

        ``signatures`` / ``shingles`` may be passed when the caller already has them (the
        pipeline computes them once per batch for stories and debunks alike).
        """
        out: list[DebunkHit | None] = [None] * len(keys)
        if not self.keys or not keys:
            return out
        shingles = shingle_batch(keys) if shingles is None else shingles
        sigs = shingles.signatures() if signatures is None else signatures
        near = self.index.query_many(sigs)
        cos = (self._tfidf(shingles.counts()) @ self._matrix).toarray()  # (posts x claims)
        best_claim = cos.argmax(axis=1)
        best_cos = cos[np.arange(len(keys)), best_claim]
        offsets = np.concatenate(([0], np.cumsum(shingles.sizes)))
        todo = np.flatnonzero(best_cos >= min(self.cosine_threshold, self.containment_min_cosine)).tolist()
        todo = sorted(set(todo) | {i for i, hits in enumerate(near) if hits})
        docs: dict[str, ClaimDoc] = {}  # the claim matcher's documents of the posts, built once
        for i in todo:
            key = keys[i]
            if not key:
                continue
            places = self._post_places(key)
            memo: dict[str, Anchors] = {}
            hit = next(
                (
                    (pos, sim) for pos, sim in near[i]
                    if not places_conflict(places, self._places[pos]) and not self._anchors_conflict(key, pos, memo)
                    and not self._says_otherwise(key, pos, docs)
                ),
                None,
            )
            if hit is not None:
                out[i] = DebunkHit(int(self.ids[hit[0]]), round(hit[1], 4), "minhash")
                continue
            claim_pos = int(best_claim[i])
            c = float(best_cos[i])
            if (
                places_conflict(places, self._places[claim_pos]) or self._anchors_conflict(key, claim_pos, memo)
                or self._says_otherwise(key, claim_pos, docs)
            ):
                continue
            if c >= self.cosine_threshold:
                out[i] = DebunkHit(int(self.ids[claim_pos]), round(c, 4), "tfidf")
            elif c >= self.containment_min_cosine:
                claim = self._claim_grams[claim_pos]
                post = shingles.hashes[offsets[i] : offsets[i + 1]]
                contained = float(np.isin(claim, post).mean()) if len(claim) else 0.0
                if contained >= self.containment_threshold:
                    out[i] = DebunkHit(int(self.ids[claim_pos]), round(contained, 4), "containment")
        if self.claim_matcher is not None:
            self._veto(keys, out, docs)
            self._paraphrases(keys, cos, out, docs)
        return out

    def rival_score(self, key: str, debunk_id: int) -> float:
        """The claim matcher's best score of the post ``key`` against the debunks other than
        ``debunk_id`` among the ``paraphrase_candidates`` nearest by TF-IDF, leaving out those
        whose claim it reads as ``debunk_id``'s own (one rumor debunked twice is no rival).
        The automatic tip reply (nlp.reply_gate) wants the matched debunk to win by a margin:
        a tip two debunks fit nearly as well is for a person to answer. 0.0 without a claim
        matcher or another candidate."""
        cm = self.claim_matcher
        if cm is None or len(self.keys) < 2 or not key:
            return 0.0
        pos_of = self._pos_of
        if len(pos_of) != len(self.ids):
            pos_of = self._pos_of = {int(d): p for p, d in enumerate(self.ids.tolist())}
        own = pos_of.get(int(debunk_id))
        cos = (self._tfidf(shingle_batch([key]).counts()) @ self._matrix).toarray()[0]
        k = min(self.paraphrase_candidates + 1, len(cos))
        near = [p for p in np.argsort(-cos, kind="stable")[:k].tolist() if p != own][: self.paraphrase_candidates]
        if not near:
            return 0.0
        # one call: the tip against each candidate, and the matched claim against each (same
        # rumor?) unless an earlier tip asked that already (claim pairs do not change until the
        # library does, and then the matcher is built again)
        others = [self._claim_docs[p] for p in near]
        same_of = self.__dict__.setdefault("_same_rumor", {})  # a matcher pickled before it had one
        unknown = [p for p in near if (own, p) not in same_of] if own is not None else []
        left = [cm.doc(key)] * len(near) + [self._claim_docs[own]] * len(unknown)  # type: ignore[index]
        scores = cm.score_docs(left, others + [self._claim_docs[p] for p in unknown])
        if len(same_of) > 100_000:  # bounded: a long-running server sees many pairs
            same_of.clear()
        for p, sc in zip(unknown, scores[len(near) :].tolist(), strict=True):
            same_of[(own, p)] = sc >= cm.threshold
        rivals = [float(s) for p, s in zip(near, scores[: len(near)].tolist(), strict=True)
                  if own is None or not same_of.get((own, p), False)]
        return max(rivals, default=0.0)

    def _doc(self, key: str, docs: dict[str, ClaimDoc]) -> ClaimDoc:
        assert self.claim_matcher is not None
        doc = docs.get(key)
        if doc is None:
            doc = docs[key] = self.claim_matcher.doc(key)
        return doc

    def _veto(self, keys: Sequence[str], out: list[DebunkHit | None], docs: dict[str, ClaimDoc]) -> None:
        """Drops the near-duplicate hits the claim matcher scores below ``veto_below``; a near
        copy (similarity NEAR_COPY or more: the same words, a hook or a particle apart) only when
        the matcher's rules rule it out (another count, place or predicate: a score of about 0).
        The learned part reads such a copy worse than its surface says: matcher 2026.12.2 gives
        "紧急通知！青禾镇自来水被污染了…赶紧去买桶装水！" 0.54 against the library's "…快去买桶装水"."""
        assert self.claim_matcher is not None
        todo = [i for i, hit in enumerate(out) if hit is not None]
        if not todo or self.veto_below <= 0:
            return
        pos_of = self._pos_of
        if len(pos_of) != len(self.ids):
            pos_of = self._pos_of = {int(d): p for p, d in enumerate(self.ids.tolist())}
        left = [self._doc(keys[i], docs) for i in todo]
        right = [self._claim_docs[pos_of[out[i].debunk_id]] for i in todo]  # type: ignore[union-attr]
        scores = self.claim_matcher.score_docs(left, right)
        for i, p in zip(todo, scores.tolist(), strict=True):
            near_copy = out[i].similarity >= NEAR_COPY  # type: ignore[union-attr]
            if p < (RULED_OUT if near_copy else self.veto_below):
                out[i] = None
            else:
                out[i] = dc_replace(out[i], claim_score=float(p))  # type: ignore[type-var]

    def _anchors_conflict(self, key: str, pos: int, memo: dict[str, Anchors]) -> bool:
        """Another amount, named thing or place than the claim's: "每户补偿50万" is not the
        "每户补偿20万" rumor however many characters they share."""
        extractor = default_extractor()
        if len(self._claim_anchors) != len(self.keys):
            self._claim_anchors = [extractor.extract(k) for k in self.keys]
        claim = self._claim_anchors[pos]
        if not claim:
            return False
        post = memo.get(key)
        if post is None:
            post = memo[key] = extractor.extract(key, key)
        return anchors_conflict(post, claim, extractor.parents)

    def _says_otherwise(self, key: str, pos: int, docs: dict[str, ClaimDoc]) -> bool:
        """The claim matcher's rules on a near-duplicate: the opposite change ("涨价" / "降价"),
        roles swapped ("老师把学生" / "学生把老师"), another count ("10桌" / "20桌"). Such a post
        shares most characters with the claim and states another one."""
        if self.claim_matcher is None:
            return False
        doc = self._doc(key, docs)
        claim = self._claim_docs[pos]
        return opposed(doc, claim) or counts_conflict(doc, claim)

    def _paraphrases(
        self, keys: Sequence[str], cos: np.ndarray, out: list[DebunkHit | None], docs: dict[str, ClaimDoc] | None = None
    ) -> None:
        """The paraphrase path for posts still unmatched: the claims nearest by TF-IDF, scored
        by the claim matcher (which keeps different villages, amounts and things apart)."""
        assert self.claim_matcher is not None
        todo = [
            i for i, hit in enumerate(out)
            if hit is None and len(keys[i]) >= self.min_claim_chars and cos[i].max() >= self.paraphrase_min_cosine
        ]
        if not todo:
            return
        k = min(self.paraphrase_candidates, cos.shape[1])
        left: list[ClaimDoc] = []
        right: list[ClaimDoc] = []
        owner: list[tuple[int, int]] = []
        if len(self._named_places) != len(self.keys):
            self._named_places = [named_place_marks(k) for k in self.keys]
        for i in todo:
            row = cos[i]
            near = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            doc = self._doc(keys[i], {} if docs is None else docs)
            # Place marks that name a place ("封镇" is an action): a village debunk never
            # covers another village or the whole town; the town's covers its villages.
            places = self._post_places(keys[i], named_place_marks(keys[i]))
            for pos in near.tolist():
                if row[pos] < self.paraphrase_min_cosine or places_conflict(places, self._named_places[pos]):
                    continue
                left.append(doc)
                right.append(self._claim_docs[pos])
                owner.append((i, pos))
        if not owner:
            return
        scores = self.claim_matcher.score_docs(left, right)
        limit = self.paraphrase_threshold if self.paraphrase_threshold is not None else 1.0
        for (i, pos), p in zip(owner, scores.tolist(), strict=True):
            best = out[i]
            if p >= limit and (best is None or p > best.similarity):
                out[i] = DebunkHit(int(self.ids[pos]), round(float(p), 4), "paraphrase", float(p))


def _claim_matcher(spec: ClaimMatcher | str | None) -> ClaimMatcher | None:
    if spec != "auto":
        return spec if isinstance(spec, ClaimMatcher) else None
    try:
        return load_claim_matcher()
    except ClaimModelMissing as err:
        log.warning("debunk matching without the paraphrase path: %s", err)
        return None


def gazetteer_place_parents() -> dict[str, frozenset[str]]:
    """Place mark -> marks of its ancestors, from the office's gazetteer (places.yaml); empty,
    with a warning, when the gazetteer cannot be read (matching then treats places as unrelated)."""
    # Imported here: the nlp.concerns package loads the whole concern stage, which the API's
    # debunk routes (they import this module) never need.
    from nlp.concerns.errors import ConcernConfigError
    from nlp.concerns.places import load_gazetteer

    try:
        gaz = load_gazetteer()
    except ConcernConfigError as err:
        log.warning("debunk matching without the place hierarchy: %s", err)
        return {}
    out: dict[str, frozenset[str]] = {}
    for word, name in gaz.alias_to_name.items():
        above = frozenset(m for up in gaz.ancestors(name) for m in place_marks(match_key(up)))
        key = match_key(word)
        for mark in place_marks(key):
            if above and key.endswith(mark):  # the name's own suffix, not "东湾村委会"'s village
                out[mark] = out.get(mark, frozenset()) | above
    return out


# ----------------------------------------------------------------------------- open incidents

#: Roles whose posts state an incident's claim (a question or a refutation about it does not).
CLAIM_ROLES = ("claim",)


def match_open_incidents(
    session: Session, debunk_ids: Sequence[int], *, matcher: DebunkMatcher | None = None, chunk: int = 2000
) -> int:
    """Match these debunks against the claim posts (role 'claim' or not yet known) of the
    active incidents; write ``debunk_matches`` rows and point each incident at its best
    debunk (``debunk_id``, ``debunk_similarity``, ``updated_at`` bumped so the alert evaluation
    folds the refutation into the open alert). Idempotent. Returns the number of incidents
    changed. Inactive or unknown debunks are skipped."""
    ids = sorted({int(i) for i in debunk_ids})
    if not ids:
        return 0
    rows = session.execute(
        select(Debunk.id, Debunk.claim).where(Debunk.id.in_(ids), Debunk.active.is_(True)).order_by(Debunk.id)
    ).all()
    if not rows:
        return 0
    if matcher is None:
        matcher = DebunkMatcher([r.id for r in rows], [r.claim for r in rows], place_parents=gazetteer_place_parents())
    if not len(matcher):
        return 0
    stmt = (
        select(Post.id, Post.norm_text, Post.raw_text, Post.incident_id)
        .join(Incident, Incident.id == Post.incident_id)
        .where(Incident.status == "active", or_(Post.role.in_(CLAIM_ROLES), Post.role.is_(None)))
        .order_by(Post.id)
    )
    best: dict[int, DebunkHit] = {}
    last_id = 0
    while True:
        batch = session.execute(stmt.where(Post.id > last_id).limit(chunk)).all()
        if not batch:
            break
        last_id = batch[-1].id
        keys = [match_key(r.norm_text if r.norm_text is not None else normalize(r.raw_text)) for r in batch]
        hits = matcher.match(keys)
        found = [(r, h) for r, h in zip(batch, hits, strict=True) if h is not None]
        write_matches(session, [(r.id, h) for r, h in found])
        for r, h in found:
            cur = best.get(r.incident_id)
            if cur is None or h.similarity > cur.similarity:
                best[r.incident_id] = h
    changed = _point_incidents(session, best)
    # Matters none of whose posts matched alone: compared with the debunks as a whole.
    from nlp.incident_debunks import link_incidents  # it imports this module: import late

    return changed + link_incidents(session, debunk_ids=ids, parents=matcher.place_parents)


def unlink_open_incidents(session: Session, debunk_id: int) -> int:
    """Forget what a debunk matched in the open matters, because its claim changed or it was
    withdrawn: its matches on the posts of active incidents go, and each incident that pointed
    at it points at its next best active debunk (or none), with ``updated_at`` bumped so the
    alert page and the next evaluation read the change. Closed matters keep their history.
    Returns the number of incidents changed."""
    open_posts = select(Post.id).join(Incident, Incident.id == Post.incident_id).where(Incident.status == "active")
    session.execute(delete(DebunkMatch).where(DebunkMatch.debunk_id == debunk_id, DebunkMatch.post_id.in_(open_posts)))
    incidents = session.scalars(
        select(Incident).where(Incident.debunk_id == debunk_id, Incident.status == "active")
    ).all()
    now = utcnow()
    for incident in incidents:
        nxt = session.execute(
            select(DebunkMatch.debunk_id, func.max(DebunkMatch.similarity).label("similarity"))
            .join(Post, Post.id == DebunkMatch.post_id)
            .join(Debunk, Debunk.id == DebunkMatch.debunk_id)
            .where(Post.incident_id == incident.id, Debunk.active.is_(True), DebunkMatch.debunk_id != debunk_id)
            .group_by(DebunkMatch.debunk_id)
            .order_by(func.max(DebunkMatch.similarity).desc(), DebunkMatch.debunk_id)
            .limit(1)
        ).first()
        incident.debunk_id = nxt.debunk_id if nxt else None
        incident.debunk_similarity = float(nxt.similarity) if nxt else None
        incident.updated_at = now
    session.flush()
    return len(incidents)


def write_matches(session: Session, found: Sequence[tuple[int, DebunkHit]]) -> None:
    """Upsert ``debunk_matches`` rows of (post id, hit): a post matched again keeps one row."""
    if not found:
        return
    values = [
        {"post_id": pid, "debunk_id": h.debunk_id, "similarity": h.similarity, "method": h.method,
         "matched_at": utcnow()}
        for pid, h in found
    ]
    table = DebunkMatch.__table__
    stmt = upsert_insert(session, table)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["post_id", "debunk_id"],
            set_={"similarity": stmt.excluded.similarity, "method": stmt.excluded.method,
                  "matched_at": stmt.excluded.matched_at},
        ),
        values,
    )


def _point_incidents(session: Session, best: Mapping[int, DebunkHit]) -> int:
    """Point each incident at its best debunk, unless it already has one at least as close."""
    changed = 0
    now = utcnow()
    for incident in session.scalars(select(Incident).where(Incident.id.in_(list(best)))):
        hit = best[incident.id]
        same = incident.debunk_id == hit.debunk_id
        if not same and incident.debunk_id is not None and (incident.debunk_similarity or 0.0) >= hit.similarity:
            continue
        if same and incident.debunk_similarity is not None and incident.debunk_similarity >= hit.similarity:
            continue
        incident.debunk_id = hit.debunk_id
        incident.debunk_similarity = hit.similarity
        incident.updated_at = now
        changed += 1
    session.flush()
    return changed
