"""Incremental topic detection: single-pass clustering of hashed TF-IDF vectors.

Each post becomes a short vector: its keywords (segmented tokens, no stopwords, at least two
characters), weighted by 1 + log(tf) times an IDF from hashed document frequencies that persist
across runs (`DocFreq`), cut to its strongest ``TOP_TERMS`` terms and L2-normalised. No strings
are needed to compare vectors, so topic centroids are stored as hashed sparse vectors
(``topics.centroid``).

Posts are taken in time order. A post joins the topic whose centroid is most similar (cosine of
the post with the topic's sum of member vectors) if that similarity reaches the threshold, else
it starts a topic. The stored centroid is the mean member vector with a capped weight (the
number of members, at most ``MAX_WEIGHT``), so a topic follows its matter as it drifts and old
posts fade: together with dropping topics quiet for ``topic_window_hours`` this is the sliding
window. Topics persist: tomorrow's posts on the same matter join today's topic.

To stay fast, a batch is handled in chunks: one sparse product gives each post's similarity to
the existing centroids, another its similarity to the earlier posts of the chunk; the exact
cosine with a growing cluster then follows from sums of those numbers (no vector is rebuilt
per post).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.utils import murmurhash3_32

N_FEATURES = 1 << 20
TOP_TERMS = 12  # strongest terms kept per post
CENTROID_TERMS = 64  # strongest terms kept per stored centroid
MAX_WEIGHT = 200.0  # a centroid never outweighs this many new posts
MIN_KEYWORDS_TO_START = 2  # a post with fewer keywords may join a topic but not start one
CHUNK = 2000

# Words too general to tell concerns apart (on top of the segmenter's stopwords).
GENERAL_WORDS = frozenset(
    """什么 时候 今天 明天 昨天 现在 大家 知道 听说 有人 还是 已经 可以 怎么 这么
    那么 然后 因为 所以 但是 如果 就是 不是 没有 一下 一些 一直 真的 自己 我们
    你们 他们 这里 那里 哪里 还有 而且 或者 其实 只是 可能 应该 需要 开始 一样
    这样 那样 东西 事情 问题 情况 消息 朋友 群里 转发 微博 回复 谢谢 请问 有没有
    是不是 能不能 会不会 要不要 为什么 怎么办 多少 一个 两个 几个 这个 那个 哈哈
    哈哈哈 呵呵 好的 收到 还要 多久 村里 镇里 到底 时间 一点 一下子 地方 这边
    那边 今年 去年 刚才 刚刚 马上 赶紧""".split()  # noqa: SIM905
)
_WORD_RE = re.compile(r"[\u4e00-\u9fff]{2,}|[A-Za-z][A-Za-z0-9]{1,}")


def keywords(tokens: Iterable[str], stopwords: frozenset[str] = frozenset()) -> list[str]:
    """The tokens worth clustering on: words of two or more characters, no stop/general words."""
    return [t for t in tokens if _WORD_RE.fullmatch(t) and t not in GENERAL_WORDS and t not in stopwords]


def feature_index(word: str) -> int:
    return murmurhash3_32(word, seed=0, positive=True) % N_FEATURES


class DocFreq:
    """Hashed document frequencies, kept across runs (serialised into ``concern_state``)."""

    def __init__(self, df: np.ndarray | None = None, n_docs: float = 0.0) -> None:
        self.df = df if df is not None else np.zeros(N_FEATURES, dtype=np.float32)
        self.n_docs = float(n_docs)

    def add(self, docs: Sequence[Sequence[int]]) -> None:
        idx = np.fromiter((i for d in docs for i in set(d)), dtype=np.int64)
        if idx.size:
            np.add.at(self.df, idx, 1.0)
        self.n_docs += len(docs)

    def idf(self, idx: np.ndarray) -> np.ndarray:
        return np.log((1.0 + self.n_docs) / (1.0 + self.df[idx])) + 1.0

    def dumps(self) -> bytes:
        nz = np.flatnonzero(self.df).astype(np.int32)
        payload = nz.tobytes() + self.df[nz].astype(np.float32).tobytes()
        return zlib.compress(len(nz).to_bytes(4, "little") + payload, 3)

    @classmethod
    def loads(cls, blob: bytes, n_docs: float) -> DocFreq:
        raw = zlib.decompress(blob)
        n = int.from_bytes(raw[:4], "little")
        idx = np.frombuffer(raw[4 : 4 + 4 * n], dtype=np.int32)
        val = np.frombuffer(raw[4 + 4 * n : 4 + 8 * n], dtype=np.float32)
        df = np.zeros(N_FEATURES, dtype=np.float32)
        df[idx] = val
        return cls(df, n_docs)


def vectorize(docs: Sequence[Sequence[str]], dfreq: DocFreq, top_terms: int = TOP_TERMS) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows of keyword lists, each cut to its ``top_terms`` strongest terms."""
    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for words in docs:
        if not words:
            indptr.append(indptr[-1])
            continue
        counts: dict[int, int] = {}
        for w in words:
            h = feature_index(w)
            counts[h] = counts.get(h, 0) + 1
        idx = np.fromiter(counts, dtype=np.int64, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        val = tf * dfreq.idf(idx)
        if len(idx) > top_terms:
            keep = np.argpartition(-val, top_terms)[:top_terms]
            idx, val = idx[keep], val[keep]
        val = val / np.sqrt(np.dot(val, val))
        order = np.argsort(idx)
        indices.append(idx[order])
        values.append(val[order])
        indptr.append(indptr[-1] + len(idx))
    ind = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    dat = np.concatenate(values) if values else np.zeros(0)
    return sp.csr_matrix((dat, ind, np.asarray(indptr)), shape=(len(docs), N_FEATURES))


def encode_centroid(vec: sp.csr_matrix | np.ndarray, keep: int = CENTROID_TERMS) -> bytes:
    """A sparse mean vector as bytes: its ``keep`` strongest (index, value) pairs."""
    row = sp.csr_matrix(vec)
    idx, val = row.indices.astype(np.int32), row.data.astype(np.float32)
    if len(idx) > keep:
        top = np.argpartition(-np.abs(val), keep)[:keep]
        idx, val = idx[top], val[top]
    order = np.argsort(idx)
    return idx[order].tobytes() + val[order].tobytes()


def decode_centroid(blob: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    if not blob:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
    n = len(blob) // 8
    return np.frombuffer(blob[: 4 * n], dtype=np.int32), np.frombuffer(blob[4 * n :], dtype=np.float32)


@dataclass
class Cluster:
    """A topic as the clusterer sees it: the mean member vector and its weight."""

    key: int | None  # topic id, None for a topic born in this run
    mean: sp.csr_matrix  # 1 x N_FEATURES
    weight: float
    members: list[int] = field(default_factory=list)  # positions in the batch



def assign(
    X: sp.csr_matrix,
    clusters: list[Cluster],
    threshold: float,
    n_keywords: Sequence[int] | None = None,
    chunk: int = CHUNK,
    max_weight: float = MAX_WEIGHT,
    parents: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Single-pass clustering of the time-ordered rows of ``X`` into ``clusters`` (grown in place).

    ``parents`` (optional, per row) links replies and forwards to what they answer: the row
    index of the parent within ``X`` (it must come earlier) as a value >= 0, or the position of
    the parent's cluster in ``clusters`` encoded as ``-2 - position``, or -1 for none. A reply
    whose text matches no topic (short comments: "转发微博", "真的假的") joins its parent's topic.

    Returns each row's cluster position in ``clusters`` (-1: empty vector or too few keywords
    to start a topic, and no parent) and its cosine with that cluster when it joined (1.0 for
    founders, 0.0 for replies that joined through their parent).
    """
    n = X.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    sims = np.zeros(n)
    par = np.asarray(parents if parents is not None else np.full(n, -1), dtype=np.int64)
    # Work in the columns actually used (a few thousand, not 2^20): scipy's sparse sums and
    # products cost time in proportion to the number of columns.
    cols = np.unique(np.concatenate([X.indices.astype(np.int64)]
                                    + [c.mean.indices.astype(np.int64) for c in clusters]))
    m = max(len(cols), 1)
    Xc = _to_cols(X, cols, m)
    for c in clusters:
        c.mean = _to_cols(c.mean, cols, m)
    try:
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            _assign_chunk(Xc[lo:hi], lo, clusters, threshold, labels, sims, n_keywords, max_weight, par)
    finally:
        for c in clusters:
            mean = c.mean.tocsr()
            c.mean = sp.csr_matrix((mean.data, cols[mean.indices], mean.indptr), shape=(1, N_FEATURES))
    return labels, sims


def _to_cols(M: sp.csr_matrix, cols: np.ndarray, m: int) -> sp.csr_matrix:
    M = sp.csr_matrix(M)
    if M.shape[1] == m:  # already compact (a cluster born in this call)
        return M
    return sp.csr_matrix((M.data, np.searchsorted(cols, M.indices), M.indptr), shape=(M.shape[0], m))


def _parent_cluster(i: int, offset: int, par: np.ndarray, labels: np.ndarray, local: np.ndarray) -> int:
    p = int(par[offset + i])
    if p <= -2:
        return -2 - p
    if p < 0 or p >= offset + i:
        return -1
    return int(labels[p]) if p < offset else int(local[p - offset])


def _assign_chunk(Xc: sp.csr_matrix, offset: int, clusters: list[Cluster], threshold: float,
                  labels: np.ndarray, sims: np.ndarray, n_keywords: Sequence[int] | None,
                  max_weight: float, par: np.ndarray) -> None:
    k0 = len(clusters)
    C = sp.vstack([c.mean for c in clusters], format="csr") if clusters else sp.csr_matrix((0, Xc.shape[1]))
    weights = np.array([c.weight for c in clusters], dtype=np.float64)
    P = (Xc @ C.T).tocsr() if k0 else sp.csr_matrix((Xc.shape[0], 0))
    S = sp.tril(Xc @ Xc.T, k=-1, format="csr")
    # Squared norms of weight * mean: ||w m||^2.
    cnorm2 = [w * w * float(np.dot(c.mean.data, c.mean.data)) for w, c in zip(weights, clusters, strict=True)]
    local = np.full(Xc.shape[0], -1, dtype=np.int64)
    row_nnz = np.diff(Xc.indptr)
    Pp, Pi, Pd = P.indptr, P.indices, P.data
    Sp, Si, Sd = S.indptr, S.indices, S.data
    for i in range(Xc.shape[0]):
        if row_nnz[i] == 0:
            # No words to compare: only a reply can join (its parent's topic); the centroid is unchanged.
            local[i] = _parent_cluster(i, offset, par, labels, local)
            continue
        acc: dict[int, float] = {}
        for t in range(Pp[i], Pp[i + 1]):
            k = int(Pi[t])
            acc[k] = weights[k] * Pd[t]
        for t in range(Sp[i], Sp[i + 1]):
            c = int(local[Si[t]])
            if c >= 0:
                acc[c] = acc.get(c, 0.0) + Sd[t]
        best, best_sim = -1, 0.0
        for c, dot in acc.items():
            norm2 = cnorm2[c]
            if norm2 <= 0:
                continue
            sim = dot / math.sqrt(norm2)
            if sim > best_sim:
                best, best_sim = c, sim
        parent = -1 if best >= 0 and best_sim >= threshold else _parent_cluster(i, offset, par, labels, local)
        if best >= 0 and best_sim >= threshold:
            local[i] = best
            cnorm2[best] += 2.0 * acc[best] + 1.0
            sims[offset + i] = min(best_sim, 1.0)
        elif parent >= 0:
            local[i] = parent
            cnorm2[parent] += 2.0 * acc.get(parent, 0.0) + 1.0
        elif n_keywords is None or n_keywords[offset + i] >= MIN_KEYWORDS_TO_START:
            local[i] = len(cnorm2)
            cnorm2.append(1.0)
            clusters.append(Cluster(None, sp.csr_matrix((1, Xc.shape[1])), 0.0))
            sims[offset + i] = 1.0
    # Fold the chunk's members into the clusters' means.
    labels[offset : offset + Xc.shape[0]] = local
    for j in np.flatnonzero(local >= 0):
        clusters[int(local[j])].members.append(offset + int(j))
    valid = np.flatnonzero(local >= 0)
    if not valid.size:
        return
    indicator = sp.csr_matrix((np.ones(valid.size), (local[valid], valid)),
                              shape=(len(clusters), Xc.shape[0]))
    sums = (indicator @ Xc).tocsr()
    sizes = np.bincount(local[valid], minlength=len(clusters))
    for c in np.unique(local[valid]):
        member_sum = sums[int(c)]
        cl = clusters[int(c)]
        m = int(sizes[c])
        total = cl.weight + m
        cl.mean = ((cl.mean * cl.weight + member_sum) / total).tocsr()
        cl.mean.eliminate_zeros()
        if cl.mean.nnz > CENTROID_TERMS * 4:  # keep the mean sparse as it grows
            idx, val = decode_centroid(encode_centroid(cl.mean, CENTROID_TERMS * 2))
            cl.mean = sp.csr_matrix((val.astype(np.float64), idx, [0, len(idx)]), shape=(1, Xc.shape[1]))
        cl.weight = min(total, max_weight)


def centroid_matrix(blob: bytes | None) -> sp.csr_matrix:
    idx, val = decode_centroid(blob)
    return sp.csr_matrix((val.astype(np.float64), idx.astype(np.int64), [0, len(idx)]), shape=(1, N_FEATURES))


def similarity_to(X: sp.csr_matrix, mean: sp.csr_matrix) -> np.ndarray:
    """Cosine of each row of ``X`` with one mean vector (by index lookup, no wide sparse ops)."""
    mean = sp.csr_matrix(mean)
    mean.sort_indices()
    idx, val = mean.indices, mean.data
    norm = math.sqrt(float(np.dot(val, val)))
    X = sp.csr_matrix(X)
    if norm == 0 or not len(idx) or not X.nnz:
        return np.zeros(X.shape[0])
    pos = np.minimum(np.searchsorted(idx, X.indices), len(idx) - 1)
    contrib = np.where(idx[pos] == X.indices, X.data * val[pos], 0.0)
    row = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    return np.bincount(row, weights=contrib, minlength=X.shape[0]) / norm
