"""Near-duplicate text machinery shared by debunk matching and story grouping.

* :func:`match_key` reduces a normalised post to the words that identify its content: forward
  prefixes ("转发：", "【转】", "紧急扩散！"), share-pressure tails ("不转不是中国人"), placeholders,
  punctuation and spaces go, so a forwarded or lightly edited copy gets (nearly) the same key.
* :func:`shingle_batch` hashes the character n-grams of a whole batch of keys in a few numpy
  passes (no per-gram Python), giving everything else: MinHash signatures (datasketch's
  ``affine32`` scheme, so a signature can be handed to ``datasketch.MinHash`` unchanged) and
  sparse hashed n-gram count matrices for TF-IDF cosine.
* :class:`BandedIndex` is a MinHash LSH index (banding, with datasketch's own choice of bands
  and rows for a threshold). It is ours rather than ``datasketch.MinHashLSH`` for speed: on this
  machine building a ``MinHash`` object plus one ``MinHashLSH.query`` costs about 37 µs per post
  and an insert 60 µs, while computing the band keys of a whole batch with numpy and looking
  them up in dicts costs about 3 µs; at 100k posts that is 4-7 s against under 0.5 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = [
    "NUM_PERM",
    "BandedIndex",
    "ShingleBatch",
    "jaccard_estimate",
    "match_key",
    "pack_signature",
    "place_marks",
    "places_conflict",
    "shingle_batch",
    "to_datasketch",
    "unpack_signature",
]

NUM_PERM = 64
SEED = 20261128
N_FEATURES = 1 << 20  # hashed n-gram columns for TF-IDF
_SIG_VERSION = 1

# ----------------------------------------------------------------------------- match keys

# Leading forward markers, applied repeatedly: "【转】紧急扩散！转发：..." loses all three.
_PREFIX_RE = re.compile(
    r"^\s*(?:"
    r"【[^】]{0,10}】|\[(?:转|转发|转载|转帖)\]|\((?:转|转发|转载)\)"
    r"|(?:转发|转载|转帖|转自[^:：!！,，\s]{0,20}|转|紧急扩散|紧急转发|紧急通知|紧急提醒|扩散|速转|急转|求扩散"
    r"|重要通知|重要提醒|通知|提醒|急|紧急|重要|注意|大家注意|震惊|突发|刚刚|最新消息|最新)"
    r"\s*[:：!！,，。.、~\s]+"
    r")"
)
# Trailing calls to share, applied repeatedly.
_SUFFIX_RE = re.compile(
    r"(?:不转不是中国人|是中国人就转|转发扩散|请转发|请扩散|扩散周知|互相转告|相互转告|请转告|速转|转起来|大家转告"
    r"|转给身边的人|告诉身边的人|转发积德|看到请转|看完请转|求扩散|求转发|扩散|转发)"
    r"[\s!！。.~,，]*$"
)
_PLACEHOLDER_RE = re.compile(r"<[A-Z_]{2,14}>")
_WEIBO_CHAIN_RE = re.compile(r"//\s*<AT>\s*:?")
# Keep letters, digits and CJK; everything else (punctuation, symbols, spaces) goes.
_NON_WORD_RE = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


# Bands and rows for a threshold: datasketch's private ``lsh._optimal_param`` (MIT licence),
# owned here because a private function may change or go in any release of datasketch.
def _false_positive_probability(threshold: float, bands: int, rows: int) -> float:
    from scipy.integrate import quad  # here, not at import: the console starts without it

    area, _ = quad(lambda s: 1 - (1 - s ** float(rows)) ** float(bands), 0.0, threshold)
    return float(area)


def _false_negative_probability(threshold: float, bands: int, rows: int) -> float:
    from scipy.integrate import quad

    area, _ = quad(lambda s: 1 - (1 - (1 - s ** float(rows)) ** float(bands)), threshold, 1.0)
    return float(area)


def _optimal_param(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising the weighted false positive and
    false negative areas of the LSH S-curve around ``threshold``."""
    best, best_error = (0, 0), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = (fp_weight * _false_positive_probability(threshold, bands, rows)
                     + fn_weight * _false_negative_probability(threshold, bands, rows))
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def match_key(norm_text: str | None) -> str:
    """The content of a normalised post for matching: no forward decoration, punctuation or spaces."""
    if not norm_text:
        return ""
    text = _PLACEHOLDER_RE.sub(" ", _WEIBO_CHAIN_RE.sub(" ", norm_text)).strip()
    for _ in range(6):
        stripped = _PREFIX_RE.sub("", text, count=1)
        stripped = _SUFFIX_RE.sub("", stripped, count=1)
        if stripped == text:
            break
        text = stripped
    return _NON_WORD_RE.sub("", text.lower())


# Administrative suffixes: "东湾村", "青禾镇", "青禾县", "城关区" ... The two characters before one
# of these plus the suffix are a place mark. Two texts that each name a place the other does not
# are about different places: "东湾村封村了" and "柳树村封村了" share most bigrams but are two stories.
_PLACE_RE = re.compile(r"(?=(..[村镇乡县区市]))")
_EMPTY: frozenset[str] = frozenset()
# Everyday words that end in a suffix but name no place: without them "我刚去超市" and
# "米面都被抢光了，超市" made "去超市" / "了超市" two places, and two copies of one rumor conflicted.
# ("新区", "新村" stay: they end real place names.)
_NOT_PLACES = frozenset({
    "超市", "城市", "菜市", "股市", "门市", "夜市", "集市", "早市", "上市", "黑市",
    "楼市", "车市", "花市", "鱼市", "都市", "闹市", "开市", "休市", "罢市", "街市",
    "小区", "社区", "景区", "城区", "郊区", "园区", "校区", "专区", "疫区", "地区",
    "山区", "市区", "辖区", "灾区", "病区", "营区", "误区", "学区",
    "农村", "乡村", "山村", "渔村",
    "城镇", "乡镇", "小镇", "古镇", "重镇", "集镇", "坐镇",
    "城乡", "家乡", "老乡", "故乡", "下乡", "回乡", "思乡", "异乡", "他乡", "同乡",
    "区县", "市县", "郡县",
})


def place_marks(key: str) -> frozenset[str]:
    """Place-like trigrams (two characters + an administrative suffix) of a match key, except
    where the last character and the suffix make an everyday word (超市, 小区, 农村)."""
    if not key:
        return _EMPTY
    return frozenset(m for m in _PLACE_RE.findall(key) if m[1:] not in _NOT_PLACES)


def places_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """True when each side names a place the other does not."""
    return bool(a - b) and bool(b - a)


# ----------------------------------------------------------------------------- shingling

_M = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93], dtype=np.uint64
)


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it to every input hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _permutations(num_perm: int) -> np.ndarray:
    """datasketch 2's affine32 permutations (``MinHash(num_perm, seed=SEED).permutations``), so our
    signatures are datasketch MinHashes: drawn here the way datasketch draws them, because
    importing datasketch pulls in scipy.stats (about a CPU-second in each analysis worker, 3-4 s
    on a first run). tests/nlp/test_similarity.py checks them against datasketch's own."""
    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd: a bijection
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


_PERMS: dict[int, np.ndarray] = {}  # filled on first use


@dataclass
class ShingleBatch:
    """Hashed character n-grams of a batch of keys.

    ``doc[i]`` is the document of gram ``i``; ``hashes[i]`` its 64-bit hash; ``sizes[d]`` the
    number of grams of document ``d`` (0 for an empty key).
    """

    n_docs: int
    k: int
    doc: np.ndarray
    hashes: np.ndarray
    sizes: np.ndarray

    def signatures(self, num_perm: int = NUM_PERM) -> np.ndarray:
        """MinHash signatures, shape (n_docs, num_perm) uint32; empty documents get all 0xFFFFFFFF."""
        perms = _PERMS.get(num_perm)
        if perms is None:
            perms = _PERMS[num_perm] = _permutations(num_perm)
        a, b = perms[0].astype(np.uint32), perms[1].astype(np.uint32)
        out = np.full((self.n_docs, num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
        if not len(self.hashes):
            return out
        hv = _fmix32((self.hashes >> np.uint64(32)).astype(np.uint32))
        nonempty = np.flatnonzero(self.sizes)
        starts = np.concatenate(([0], np.cumsum(self.sizes[nonempty])[:-1])).astype(np.int64)
        # (perms x grams) blocks reduced along the grams axis: contiguous, ~5x faster than the
        # (grams x perms) layout; chunked by documents so a block stays around 16 MB.
        step = max(1, 4_000_000 // num_perm)
        lo = 0
        while lo < len(nonempty):
            g0 = int(starts[lo])
            hi = int(np.searchsorted(starts, g0 + step, side="left"))
            hi = max(hi, lo + 1)
            g1 = int(starts[hi]) if hi < len(nonempty) else len(hv)
            block = np.multiply.outer(a, hv[g0:g1])  # uint32 wraps: datasketch's affine32 scheme
            block += b[:, None]
            out[nonempty[lo:hi]] = np.minimum.reduceat(block, starts[lo:hi] - g0, axis=1).T
            lo = hi
        return out

    def counts(self, n_features: int = N_FEATURES) -> sp.csr_matrix:
        """Hashed n-gram count matrix (n_docs x n_features)."""
        cols = (self.hashes & np.uint64(n_features - 1)).astype(np.int64)
        data = np.ones(len(cols), dtype=np.float64)
        m = sp.csr_matrix((data, (self.doc, cols)), shape=(self.n_docs, n_features))
        m.sum_duplicates()
        return m

    def doc_hashes(self, d: int) -> np.ndarray:
        """The distinct gram hashes of one document (sorted)."""
        start = int(self.sizes[:d].sum())
        return np.unique(self.hashes[start : start + int(self.sizes[d])])


def shingle_batch(keys: Sequence[str], k: int = 2) -> ShingleBatch:
    """Character k-grams of every key, hashed (keys shorter than k are one gram)."""
    n = len(keys)
    padded = [key if len(key) >= k or not key else key + "\x00" * (k - len(key)) for key in keys]
    lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=n)
    sizes = np.where(lengths >= k, lengths - k + 1, 0)
    if not sizes.sum():
        empty = np.zeros(0, dtype=np.uint64)
        return ShingleBatch(n, k, np.zeros(0, dtype=np.int64), empty, sizes)
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc_of_char = np.repeat(np.arange(n, dtype=np.int64), lengths)
    last = len(codes) - k + 1
    h = np.full(last, np.uint64((k * 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    for j in range(k):
        h += codes[j : j + last] * _M[j % len(_M)]
    valid = doc_of_char[:last] == doc_of_char[k - 1 : k - 1 + last]
    return ShingleBatch(n, k, doc_of_char[:last][valid], _mix64(h[valid]), sizes)


def ngram_counts(
    keys: Sequence[str], ks: Iterable[int] = (2, 3), n_features: int = N_FEATURES
) -> sp.csr_matrix:
    """Hashed character n-gram counts for several n (summed): the input of TF-IDF cosine."""
    total: sp.csr_matrix | None = None
    for k in ks:
        m = shingle_batch(keys, k).counts(n_features)
        total = m if total is None else total + m
    assert total is not None
    return total


# ----------------------------------------------------------------------------- signatures


def pack_signature(sig: np.ndarray) -> bytes:
    """Bytes for ``stories.signature``: a version byte, then the uint32 hash values (little endian)."""
    return bytes([_SIG_VERSION]) + np.asarray(sig, dtype="<u4").tobytes()


def unpack_signature(blob: bytes | None, num_perm: int = NUM_PERM) -> np.ndarray | None:
    """Inverse of :func:`pack_signature`; None for a missing or foreign signature."""
    if not blob or blob[0] != _SIG_VERSION or len(blob) != 1 + 4 * num_perm:
        return None
    return np.frombuffer(blob[1:], dtype="<u4").astype(np.uint32)


def to_datasketch(sig: np.ndarray) -> MinHash:
    """A datasketch MinHash with these hash values (for analysts' own LSH experiments)."""
    from datasketch import MinHash

    num_perm = len(sig)
    return MinHash(
        num_perm=num_perm,
        seed=SEED,
        hashvalues=sig,
        scheme="affine32",
        permutations=_PERMS.get(num_perm, _permutations(num_perm)),
    )


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


# ----------------------------------------------------------------------------- LSH


class BandedIndex:
    """MinHash LSH by banding: ``insert`` ids with signatures, ``query`` candidates above a threshold.

    Bands and rows come from datasketch's ``_optimal_param`` for a candidate threshold set
    below the verification threshold (default 0.2 lower): with 64 permutations, banding tuned
    for 0.5 misses a pair of true Jaccard 0.6 one time in seven; tuned for 0.3 (21 bands of 3
    rows) one time in 170. Candidates are then verified against the stored signatures, so
    extra candidates and band-key collisions cost time, never correctness.
    """

    def __init__(
        self, threshold: float = 0.5, num_perm: int = NUM_PERM, candidate_threshold: float | None = None
    ) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.candidate_threshold = (
            max(0.1, threshold - 0.1) if candidate_threshold is None else candidate_threshold
        )
        self.bands, self.rows = _optimal_param(self.candidate_threshold, num_perm, 0.5, 0.5)
        rng = np.random.RandomState(SEED)
        self._mult = rng.randint(1, 2**62, size=self.rows, dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self._salt = rng.randint(1, 2**62, size=self.bands, dtype=np.int64).astype(np.uint64)
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self.max_bucket = 32
        # Signatures live in one growing matrix so candidates are verified in one numpy step.
        self._matrix = np.zeros((64, num_perm), dtype=np.uint32)
        self._row: dict[int, int] = {}  # key -> row of the matrix
        self._keys: list[int | None] = []  # row -> key (None once removed)

    def __len__(self) -> int:
        return len(self._row)

    def empty_like(self) -> BandedIndex:
        """An empty index with the same banding and thresholds (small to pickle: for worker
        processes that compute band keys and in-batch pairs)."""
        twin = BandedIndex(self.threshold, self.num_perm, self.candidate_threshold)
        twin.max_bucket = self.max_bucket
        return twin

    def __contains__(self, key: int) -> bool:
        return key in self._row

    def signature(self, key: int) -> np.ndarray | None:
        row = self._row.get(key)
        return None if row is None else self._matrix[row]

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """Band keys, shape (n, bands) uint64."""
        sigs = np.atleast_2d(sigs)
        used = sigs[:, : self.bands * self.rows].astype(np.uint64).reshape(len(sigs), self.bands, self.rows)
        return _mix64((used * self._mult[None, None, :]).sum(axis=2, dtype=np.uint64) + self._salt[None, :])

    def insert(self, key: int, sig: np.ndarray, band_keys: np.ndarray | None = None) -> None:
        if key in self._row:
            return
        row = len(self._keys)
        if row == len(self._matrix):
            self._matrix = np.vstack([self._matrix, np.zeros_like(self._matrix)])
        self._matrix[row] = sig
        self._row[key] = row
        self._keys.append(key)
        keys = self.band_keys(sig)[0] if band_keys is None else band_keys
        for bucket, bk in zip(self._buckets, keys.tolist(), strict=True):
            members = bucket.get(bk)
            if members is None:
                bucket[bk] = [row]
            else:
                members.append(row)

    def insert_many(self, keys: Sequence[int], sigs: np.ndarray, band_keys: np.ndarray) -> None:
        """`insert` for many keys at once: one copy into the matrix, one pass per band (the
        buckets end up exactly as with one `insert` per key, in order)."""
        fresh: list[int] = []
        seen: set[int] = set()
        for pos, key in enumerate(keys):
            if key not in self._row and key not in seen:
                seen.add(key)
                fresh.append(pos)
        if not fresh:
            return
        start = len(self._keys)
        stop = start + len(fresh)
        if stop > len(self._matrix):
            size = len(self._matrix)
            while size < stop:
                size *= 2
            grown = np.zeros((size, self.num_perm), dtype=self._matrix.dtype)
            grown[:start] = self._matrix[:start]
            self._matrix = grown
        picked = np.asarray(fresh, dtype=np.int64)
        self._matrix[start:stop] = sigs[picked]
        for row, pos in enumerate(fresh, start):
            self._row[keys[pos]] = row
            self._keys.append(keys[pos])
        rows = range(start, stop)
        for bucket, column in zip(self._buckets, band_keys[picked].T.tolist(), strict=True):
            for row, bk in zip(rows, column, strict=True):
                members = bucket.get(bk)
                if members is None:
                    bucket[bk] = [row]
                else:
                    members.append(row)

    def remove(self, key: int) -> None:
        row = self._row.pop(key, None)
        if row is None:
            return
        self._keys[row] = None
        for bucket, bk in zip(self._buckets, self.band_keys(self._matrix[row])[0].tolist(), strict=True):
            members = bucket.get(bk)
            if members and row in members:
                members.remove(row)
                if not members:
                    del bucket[bk]

    def _candidate_rows(self, band_keys: np.ndarray) -> list[int]:
        rows: list[int] = []
        for bucket, bk in zip(self._buckets, band_keys.tolist(), strict=True):
            members = bucket.get(bk)
            if members:
                rows.extend(members)
        return rows

    def query_many(
        self, sigs: np.ndarray, band_keys: np.ndarray | None = None, threshold: float | None = None
    ) -> list[list[tuple[int, float]]]:
        """For each signature, the indexed keys at or above the threshold, most similar first.

        One pass of dict lookups per band over the whole batch, then one vectorised comparison
        of all candidate pairs: about 10x faster than calling :meth:`best` per signature. A
        band bucket shared by very many keys (template text) contributes only its newest
        ``max_bucket`` members.
        """
        n = len(sigs)
        out: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        if not n or not self._row:
            return out
        band_keys = self.band_keys(sigs) if band_keys is None else band_keys
        posts: list[int] = []
        rows: list[int] = []
        cap = self.max_bucket
        for b, bucket in enumerate(self._buckets):
            for i, members in enumerate(map(bucket.get, band_keys[:, b].tolist())):
                if members:
                    if len(members) > cap:
                        members = members[-cap:]
                    posts.extend([i] * len(members))
                    rows.extend(members)
        if not posts:
            return out
        limit = self.threshold if threshold is None else threshold
        pair = np.unique(
            np.asarray(posts, dtype=np.int64) * len(self._keys) + np.asarray(rows, dtype=np.int64)
        )
        p_idx, r_idx = np.divmod(pair, len(self._keys))
        sims = np.empty(len(pair))
        step = 200_000
        for lo in range(0, len(pair), step):
            hi = lo + step
            sims[lo:hi] = np.count_nonzero(self._matrix[r_idx[lo:hi]] == sigs[p_idx[lo:hi]], axis=1)
        sims /= self.num_perm
        keep = sims >= limit
        p_idx, r_idx, sims = p_idx[keep], r_idx[keep], sims[keep]
        for j in np.lexsort((r_idx, -sims, p_idx)).tolist():
            key = self._keys[int(r_idx[j])]
            if key is not None:
                out[int(p_idx[j])].append((key, float(sims[j])))
        return out

    def batch_pairs(
        self, sigs: np.ndarray, band_keys: np.ndarray | None = None, threshold: float | None = None
    ) -> list[list[tuple[int, float]]]:
        """Within one batch: for each signature j, the earlier positions i < j at or above the
        threshold, most similar first (ties: earliest). Same banding as the index, no index needed."""
        n = len(sigs)
        out: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        if n < 2:
            return out
        band_keys = self.band_keys(sigs) if band_keys is None else band_keys
        firsts: list[int] = []
        seconds: list[int] = []
        cap = self.max_bucket
        for b in range(self.bands):
            col = band_keys[:, b]
            order = np.argsort(col, kind="stable")
            sorted_keys = col[order]
            starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
            ends = np.concatenate((starts[1:], [n]))
            for lo, hi in zip(
                starts[ends - starts > 1].tolist(), ends[ends - starts > 1].tolist(), strict=True
            ):
                members = order[lo:hi].tolist()  # ascending positions (stable sort)
                for x, j in enumerate(members):
                    earlier = members[max(0, x - cap) : x]
                    firsts.extend(earlier)
                    seconds.extend([j] * len(earlier))
        if not firsts:
            return out
        pair = np.unique(np.asarray(seconds, dtype=np.int64) * n + np.asarray(firsts, dtype=np.int64))
        j_idx, i_idx = np.divmod(pair, n)
        sims = np.count_nonzero(sigs[i_idx] == sigs[j_idx], axis=1) / self.num_perm
        keep = sims >= (self.threshold if threshold is None else threshold)
        j_idx, i_idx, sims = j_idx[keep], i_idx[keep], sims[keep]
        for k in np.lexsort((i_idx, -sims, j_idx)).tolist():
            out[int(j_idx[k])].append((int(i_idx[k]), float(sims[k])))
        return out

    def candidates(self, band_keys: np.ndarray) -> set[int]:
        return {k for r in self._candidate_rows(band_keys) if (k := self._keys[r]) is not None}

    def best(
        self,
        sig: np.ndarray,
        band_keys: np.ndarray | None = None,
        threshold: float | None = None,
        accept: Callable[[int], bool] | None = None,
    ) -> tuple[int, float] | None:
        """The most similar indexed key at or above the threshold (and ``accept``-ed), with its Jaccard."""
        rows = self._candidate_rows(self.band_keys(sig)[0] if band_keys is None else band_keys)
        if not rows:
            return None
        limit = self.threshold if threshold is None else threshold
        cand = np.unique(np.asarray(rows, dtype=np.int64))
        sims = np.count_nonzero(self._matrix[cand] == sig, axis=1) / self.num_perm
        good = np.flatnonzero(sims >= limit)
        if not len(good):
            return None
        # Most similar first; ties go to the oldest row (the earliest story).
        for j in good[np.lexsort((cand[good], -sims[good]))]:
            key = self._keys[int(cand[j])]
            if key is not None and (accept is None or accept(key)):
                return key, float(sims[j])
        return None
