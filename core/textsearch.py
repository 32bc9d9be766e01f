"""Words for full-text search: the jieba tokens stored with each searchable row, and a query's.

Search was substring only, so "水库污染" found nothing in "水库被污染". Each searchable row now
carries ``search_tokens``: its text segmented by jieba and joined by spaces, which SQLite's FTS5
(unicode61) and PostgreSQL's ``to_tsvector('simple', ...)`` both split back into the same words.
A query is segmented the same way and must match every word (core.search builds the SQL).

Documents are cut in jieba's search mode (long words and their dictionary sub-words: 自来水 gives
自来, 自来水), a query in the precise mode, so a query word is found inside a longer document word
as well. The segmenter is rjieba's (jieba-rs, ~19x faster) with jieba's own dictionary, an instance
of our own: core must not import nlp, and a search index only needs documents and queries cut
alike, not nlp's domain dictionary.

The tokens are filled on every ORM flush (``before_flush`` below) and by the bulk writers that
bypass the ORM (core.ingest for posts, nlp.debunks' update); core.search backfills rows left empty.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

__all__ = ["SEARCH_FIELDS", "document_tokens", "query_tokens", "row_tokens"]

# The text columns each searchable table's tokens are made of.
SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "alerts": ("title", "summary"),
    "posts": ("title", "raw_text", "image_text"),  # image_text: words read in its pictures
    "debunks": ("claim", "refutation", "publisher", "category"),
}

# A token must hold a letter, digit or CJK character: punctuation and spaces are not words.
_WORDLIKE = re.compile(r"[0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# One-character function words dropped from a query that has other words: "水库被污染" must
# find "水库污染" too. Kept in documents (a query of just "被" still matches).
_QUERY_FILLERS = frozenset("的了被是在和与及把将让给也都就吗呢啊吧呀有又还说")
_MAX_QUERY_TOKENS = 16

_lock = threading.Lock()
_tokenizer: Any = None


def _cutter() -> Any:
    """rjieba's own instance (jieba's if rjieba is missing), built once on first use."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                try:
                    import rjieba

                    _tokenizer = rjieba.Jieba()
                except ImportError:  # pragma: no cover - rjieba is a dependency; jieba the fallback
                    import jieba

                    _tokenizer = jieba.Tokenizer()
    return _tokenizer


# A number masked by core.privacy (130****1100): nobody searches for it, and its digit fragments,
# once the stars are cut away, would sit side by side in the token column like a new number.
_MASKED = re.compile(r"[0-9A-Za-z]*\*{2,}[0-9A-Za-z]*")


def _clean(text: str) -> str:
    # NFKC folds full-width letters and digits (ＱＱ -> QQ); control characters split words.
    text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", text))
    return _MASKED.sub(" ", text).lower()


def _words(tokens: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for token in tokens:
        token = token.strip()
        if token and _WORDLIKE.search(token):
            seen.setdefault(token, None)
    return list(seen)


def document_tokens(*texts: str | None) -> str:
    """The search words of a row's texts, space-separated (each word once)."""
    cut = _cutter()
    words: list[str] = []
    for text in texts:
        if text:
            words.extend(cut.cut_for_search(_clean(text), True))
    return " ".join(_words(words))


def row_tokens(table: str, values: Mapping[str, Any]) -> str:
    """``document_tokens`` of a row given as a mapping of its columns (bulk writers)."""
    return document_tokens(*(values.get(name) for name in SEARCH_FIELDS[table]))


def query_tokens(query: str) -> list[str]:
    """The words a query must all match; empty when it has none (only punctuation, say)."""
    words = _words(_cutter().cut(_clean(query)[:200], True))
    content = [w for w in words if w not in _QUERY_FILLERS]
    return (content or words)[:_MAX_QUERY_TOKENS]


@event.listens_for(Session, "before_flush")
def _fill_search_tokens(session: Session, _context: Any, _instances: Any) -> None:
    """New and changed searchable rows get their tokens before they are written."""
    for obj in (*session.new, *session.dirty):
        fields = SEARCH_FIELDS.get(getattr(obj, "__tablename__", ""))
        if fields is None:
            continue
        state = obj._sa_instance_state
        if state.key is not None and not any(state.attrs[f].history.has_changes() for f in fields):
            continue  # a persistent row whose text did not change
        tokens = document_tokens(*(getattr(obj, f) for f in fields))
        if getattr(obj, "search_tokens", None) != tokens:
            obj.search_tokens = tokens
