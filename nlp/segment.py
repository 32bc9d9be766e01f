"""Chinese word segmentation with our domain dictionary.

`Segmenter` is picklable (it stores dictionary paths, options and the few dictionary lines a
model must carry itself, such as an office's place names) and builds its tokenizer lazily on
first use, so it can live inside a saved sklearn model and be sent to
worker processes. It uses rjieba (jieba-rs, ~19x faster, 99% token agreement, a runtime
dependency). jieba is optional (``pip install 'yuqing[jieba]'``): the segmenter falls back to it
only where rjieba cannot be installed, and the benchmarks compare against it. Neither library's
global default instance is touched: rjieba gets its own ``rjieba.Jieba()``, jieba its own
``jieba.Tokenizer``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nlp.normalize import PLACEHOLDER_RE

__all__ = [
    "DICT_DIR",
    "DOMAIN_DICT",
    "STOPWORDS",
    "Segmenter",
    "load_stopwords",
    "parse_user_dict",
    "read_user_dict",
]

log = logging.getLogger(__name__)

DICT_DIR = Path(__file__).resolve().parent / "dicts"
DOMAIN_DICT = DICT_DIR / "domain.txt"
STOPWORDS = DICT_DIR / "stopwords.txt"


def read_user_dict(path: str | os.PathLike[str]) -> list[tuple[str, int | None, str | None]]:
    """Entries of a jieba user dictionary (``word [freq] [tag]`` per line, ``#`` comments).

    Our own parser because rjieba has no ``load_userdict`` and jieba's would add comment
    lines as words.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"user dictionary {p} does not exist: pass an existing file (word [freq] [tag] per line)"
        )
    return parse_user_dict(p.read_text(encoding="utf-8-sig").splitlines(), origin=str(p))


def parse_user_dict(lines: Iterable[str], origin: str = "user dictionary lines"
                    ) -> list[tuple[str, int | None, str | None]]:
    """Entries of jieba user-dictionary lines (``word [freq] [tag]``; blank and ``#`` lines skipped)."""
    entries: list[tuple[str, int | None, str | None]] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        word, freq, tag = parts[0], None, None
        if len(parts) >= 2:
            if parts[1].isdigit():
                freq = int(parts[1])
                tag = parts[2] if len(parts) >= 3 else None
            else:
                tag = parts[1]
        if len(parts) > 3:
            log.warning("%s line %d: extra fields ignored: %r", origin, lineno, raw)
        entries.append((word, freq, tag))
    return entries


def load_stopwords(path: str | os.PathLike[str] = STOPWORDS) -> frozenset[str]:
    """One stopword per line, ``#`` comments."""
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def _default_cache_dir() -> str:
    return os.environ.get("YUQING_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "yuqing-cache")


# Tokenizers built in this process, shared by segmenters that cut alike (the rumor model's and the
# claim matcher's, in `yuqing analyze` and in each of its workers): an rjieba instance holds 17-56 MB
# and takes 0.1-0.2 CPU-seconds to build. Segmenters only read their tokenizer once built.
_SHARED: dict[tuple[Any, ...], tuple[Any, str | None, frozenset[str] | None]] = {}
_SHARED_LOCK = threading.Lock()


class Segmenter:
    """Word segmenter: ``cut(text) -> list[str]``.

    Parameters
    ----------
    extra_dicts:
        Further user dictionaries (e.g. local place names), applied after ``nlp/dicts/domain.txt``.
    extra_entries:
        User-dictionary lines kept inside the segmenter itself (``"石桥村 3000 ns"``), applied
        last. A model trained on an office's place names carries them this way, so it cuts
        text the same wherever it is loaded, whatever becomes of the file they came from.
    backend:
        ``"auto"`` (rjieba if importable, else jieba), ``"rjieba"`` or ``"jieba"`` (the optional
        extra ``yuqing[jieba]``; for comparisons).
    hmm:
        Let the HMM glue unknown words (names, new slang).
    drop_stopwords:
        Remove words listed in ``stopwords`` (default ``nlp/dicts/stopwords.txt``).
    cache_dir:
        Where jieba keeps its prefix-dictionary cache (default ``$YUQING_CACHE_DIR`` or a
        temp folder). Unused by rjieba.

    Placeholder tokens from `nlp.normalize` (``<URL>``, ``<AT>`` ...) always come out as one
    token; whitespace never comes out.
    """

    def __init__(
        self,
        extra_dicts: Sequence[str | os.PathLike[str]] = (),
        *,
        extra_entries: Sequence[str] = (),
        backend: str = "auto",
        hmm: bool = True,
        drop_stopwords: bool = False,
        stopwords: str | os.PathLike[str] | None = None,
        use_domain_dict: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if backend not in {"auto", "rjieba", "jieba"}:
            raise ValueError(f"Segmenter backend {backend!r} is unknown: use 'auto', 'rjieba' or 'jieba'")
        self.extra_dicts = tuple(str(p) for p in extra_dicts)
        self.extra_entries = tuple(extra_entries)
        self.backend = backend
        self.hmm = hmm
        self.drop_stopwords = drop_stopwords
        self.stopwords = None if stopwords is None else str(stopwords)
        self.use_domain_dict = use_domain_dict
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self._tok: Any = None
        self._stop: frozenset[str] | None = None
        self._backend_used: str | None = None
        self._lock = threading.Lock()
        self._recent: dict[str, list[str]] | None = None  # see remember_recent
        self._recent_limit = 0

    # -- pickling: keep only the parameters; the tokenizer is rebuilt on first use
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tok"] = None
        state["_stop"] = None  # rebuilt with the tokenizer; None keeps skops' type list short
        state["_backend_used"] = None
        state.pop("_lock", None)
        state.pop("_recent", None)
        state.pop("_recent_limit", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # models saved before extra_entries existed have none
        self.extra_entries = tuple(state.get("extra_entries", ()))
        self._lock = threading.Lock()
        self._recent, self._recent_limit = None, 0

    def remember_recent(self, limit: int) -> None:
        """Keep the words of up to ``limit`` recent texts, so that two users of this segmenter
        cutting the same texts in turn (the rumor model's features, then the concern stage, on
        one batch) segment each text once. The lists returned are then shared: do not mutate them.
        """
        self._recent, self._recent_limit = ({} if limit > 0 else None), limit

    def __repr__(self) -> str:
        return (
            f"Segmenter(extra_dicts={self.extra_dicts!r}, extra_entries={len(self.extra_entries)} lines, "
            f"backend={self.backend!r}, hmm={self.hmm}, "
            f"drop_stopwords={self.drop_stopwords})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segmenter) and self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash((self.extra_dicts, self.extra_entries, self.backend, self.hmm, self.drop_stopwords,
                     self.stopwords))

    # -- building
    def _dict_paths(self) -> list[Path]:
        paths = [DOMAIN_DICT] if self.use_domain_dict else []
        return paths + [Path(p) for p in self.extra_dicts]

    @property
    def backend_used(self) -> str:
        """The library actually in use ("rjieba" or "jieba"); builds the tokenizer."""
        self._ensure()
        assert self._backend_used is not None
        return self._backend_used

    def _ensure(self) -> Any:
        tok = self._tok
        if tok is not None:
            return tok
        with self._lock:
            if self._tok is None:
                key = self._share_key()
                with _SHARED_LOCK:
                    built = _SHARED.get(key)
                    if built is None:
                        built = _SHARED[key] = (self._build(), self._backend_used, self._stop)
                self._tok, self._backend_used, self._stop = built
        return self._tok

    def _share_key(self) -> tuple[Any, ...]:
        """What makes two segmenters cut alike: their settings and their dictionary files as
        they are now (an edited dictionary builds a new tokenizer)."""
        files: list[tuple[str, int | None, int | None]] = []
        for path in self._dict_paths():
            try:
                st = path.stat()
                files.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                files.append((str(path), None, None))  # _build reports it
        return (tuple(files), self.extra_entries, self.backend, self.hmm, self.drop_stopwords, self.stopwords,
                self.cache_dir)

    def _build(self) -> Any:
        entries = [e for p in self._dict_paths() for e in read_user_dict(p)]
        entries += parse_user_dict(self.extra_entries, origin="Segmenter.extra_entries")
        if self.drop_stopwords:
            self._stop = load_stopwords(self.stopwords or STOPWORDS)
        backend = self.backend
        if backend in {"auto", "rjieba"}:
            try:
                import rjieba
            except ImportError as err:
                if backend == "rjieba":
                    raise ImportError(f"Segmenter(backend='rjieba') needs rjieba: pip install rjieba ({err})") from err
                backend = "jieba"
            else:
                tok = rjieba.Jieba()  # independent instance; module-level add_word would be global
                for word, freq, tag in entries:
                    tok.add_word(word, freq, tag)
                self._backend_used = "rjieba"
                return tok
        return self._build_jieba(entries)

    def _build_jieba(self, entries: list[tuple[str, int | None, str | None]]) -> Any:
        try:
            import jieba
        except ImportError as err:
            raise ImportError(
                "Chinese word segmentation needs rjieba (a runtime dependency: pip install rjieba), "
                "or jieba where rjieba has no wheel (pip install 'yuqing[jieba]')"
                + ("" if self.backend == "auto" else f"; Segmenter(backend={self.backend!r}) asked for jieba")
            ) from err

        jieba.setLogLevel(logging.WARNING)
        cache_dir = Path(self.cache_dir or _default_cache_dir())
        cache_dir.mkdir(parents=True, exist_ok=True)
        tok = jieba.Tokenizer()
        tok.tmp_dir = str(cache_dir)  # jieba names the cache file after the dictionary's hash
        for word, freq, tag in entries:
            tok.add_word(word, freq, tag)
        self._backend_used = "jieba"
        return tok

    # -- cutting
    def _cut_plain(self, tok: Any, text: str) -> list[str]:
        rj = self._backend_used == "rjieba"
        words = tok.cut(text, self.hmm) if rj else tok.lcut(text, HMM=self.hmm)
        return [w for w in words if w.strip()]

    def cut(self, text: str) -> list[str]:
        """Words of one (normalised) text; placeholders stay whole."""
        recent = self._recent
        if recent is None:
            return self._cut(text)
        out = recent.get(text)
        if out is None:
            if len(recent) >= self._recent_limit:
                recent.clear()
            out = recent[text] = self._cut(text)
        return out

    def _cut(self, text: str) -> list[str]:
        tok = self._ensure()
        if "<" in text and PLACEHOLDER_RE.search(text):
            out: list[str] = []
            pos = 0
            for m in PLACEHOLDER_RE.finditer(text):
                if m.start() > pos:
                    out.extend(self._cut_plain(tok, text[pos : m.start()]))
                out.append(m.group(0))
                pos = m.end()
            if pos < len(text):
                out.extend(self._cut_plain(tok, text[pos:]))
        else:
            out = self._cut_plain(tok, text)
        if self.drop_stopwords:
            stop = self._stop or frozenset()
            out = [w for w in out if w not in stop]
        return out

    def cut_many(self, texts: Iterable[str]) -> list[list[str]]:
        """`cut` for each text."""
        return [self.cut(t) for t in texts]

    __call__ = cut
