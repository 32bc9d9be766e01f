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

Single pass is greedy: a short post that comes before the words its matter is known by starts
a topic of its own. So at the end of each run, small topics born in it get a second look and
are folded into a bigger topic whose mean they now match (``MERGE_SIMILARITY``; a lower value
gains recall and loses precision, see bench/results/topics.md). Topics of earlier runs are
never merged away, so no stored post moves.

To stay fast, a batch is handled in chunks: one sparse product gives each post's similarity to
the existing centroids, another its similarity to the earlier posts of the chunk; the exact
cosine with a growing cluster then follows from sums of those numbers (no vector is rebuilt
per post).
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

import numpy as np
import scipy.sparse as sp

N_FEATURES = 1 << 20
TOP_TERMS = 12  # strongest terms kept per post
CENTROID_TERMS = 64  # strongest terms kept per stored centroid
MAX_WEIGHT = 200.0  # a centroid never outweighs this many new posts
MIN_KEYWORDS_TO_START = 2  # a post with fewer keywords may join a topic but not start one
CHUNK = 2000
MERGE_SIMILARITY = 0.1  # a topic born in a run joins a bigger one whose mean is at least this similar
MERGE_MAX_POSTS = 5  # only fragments are merged: a topic born in a run with more posts is a matter of its own

# Words too general to tell concerns apart (on top of the segmenter's stopwords).
GENERAL_WORDS = frozenset(
    """什么 时候 今天 明天 昨天 现在 大家 知道 听说 有人 还是 已经 可以 怎么 这么
    那么 然后 因为 所以 但是 如果 就是 不是 没有 一下 一些 一直 真的 自己 我们
    你们 他们 这里 那里 哪里 还有 而且 或者 其实 只是 可能 应该 需要 开始 一样
    这样 那样 东西 事情 问题 情况 消息 朋友 群里 转发 微博 回复 谢谢 请问 有没有
    是不是 能不能 会不会 要不要 为什么 怎么办 多少 一个 两个 几个 这个 那个 哈哈
    哈哈哈 呵呵 好的 收到 还要 多久 村里 镇里 到底 时间 一点 一下子 地方 这边
    那边 今年 去年 刚才 刚刚 马上 赶紧
    关于 通知 通告 公告 说明 近日 即日起 各村 所有 任何 一起 发布 信息 为准 相关 有关
    进行 目前 表示 提前 居民 群众 广大群众 工作 部门
    下周 上周 本周 这周 下个月 明日 今晚 今早 今日 昨日 最近 近期""".split()  # noqa: SIM905
)
# The last two lines: the boilerplate of official notices ("关于…的通知", "各村…", "以…发布的信息
# 为准"), which tied unrelated notices (供暖, 封城辟谣) into one topic; and relative times, which
# say when, not what ("下周" made half of a topic's label "封城、下周").
_WORD_RE = re.compile(r"[\u4e00-\u9fff]{2,}|[A-Za-z][A-Za-z0-9]{1,}")


def keywords(tokens: Iterable[str], stopwords: frozenset[str] = frozenset()) -> list[str]:
    """The tokens worth clustering on: words of two or more characters, no stop/general words."""
    return [t for t in tokens if _WORD_RE.fullmatch(t) and t not in GENERAL_WORDS and t not in stopwords]


_FEATURE_INDEX: dict[str, int] = {}  # words repeat endlessly; one murmurhash call costs ~1 µs


def feature_index(word: str) -> int:
    i = _FEATURE_INDEX.get(word)
    if i is None:
        if len(_FEATURE_INDEX) >= 1 << 20:  # bound the memo (a long-running `yuqing run`)
            _FEATURE_INDEX.clear()
        # imported here: scikit-learn is a third of the console's start on a first run
        from sklearn.utils import murmurhash3_32

        i = _FEATURE_INDEX[word] = murmurhash3_32(word, seed=0, positive=True) % N_FEATURES
    return i


class DocFreq:
    """Hashed document frequencies, kept across runs (serialised into ``concern_state``)."""

    def __init__(self, df: np.ndarray | None = None, n_docs: float = 0.0) -> None:
        self.df = df if df is not None else np.zeros(N_FEATURES, dtype=np.float32)
        self.n_docs = float(n_docs)

    def add(self, docs: Sequence[Sequence[int]]) -> None:
        idx = np.fromiter(itertools.chain.from_iterable(map(set, docs)), dtype=np.int64)
        if idx.size:
            # Counts added at once (exact: whole numbers far below float32's 2^24).
            used, counts = np.unique(idx, return_counts=True)
            self.df[used] += counts.astype(np.float32)
        self.n_docs += len(docs)

    def add_terms(self, terms: np.ndarray, n_docs: int) -> None:
        """Count ``n_docs`` documents whose distinct terms, all together, are ``terms``."""
        if terms.size:
            self.df += np.bincount(terms, minlength=N_FEATURES).astype(np.float32)
        self.n_docs += n_docs

    def idf(self, idx: np.ndarray) -> np.ndarray:
        return np.log((1.0 + self.n_docs) / (1.0 + self.df[idx])) + 1.0

    def dumps(self) -> bytes:
        nz = np.flatnonzero(self.df).astype(np.int32)
        payload = nz.tobytes() + self.df[nz].astype(np.float32).tobytes()
        return zlib.compress(len(nz).to_bytes(4, "little") + payload, 1)  # written every batch: the fast level

    @classmethod
    def loads(cls, blob: bytes, n_docs: float) -> DocFreq:
        raw = zlib.decompress(blob)
        n = int.from_bytes(raw[:4], "little")
        idx = np.frombuffer(raw[4 : 4 + 4 * n], dtype=np.int32)
        val = np.frombuffer(raw[4 + 4 * n : 4 + 8 * n], dtype=np.float32)
        df = np.zeros(N_FEATURES, dtype=np.float32)
        df[idx] = val
        return cls(df, n_docs)


def feature_indices(words: Sequence[str]) -> list[int]:
    """`feature_index` of each word (the memo read inline: this runs for every token of a batch)."""
    out = list(map(_FEATURE_INDEX.get, words))
    if None in out:
        out = [feature_index(w) if i is None else i for w, i in zip(words, out, strict=True)]
    return cast(list[int], out)  # no None left


def vectorize(docs: Sequence[Sequence[str]], dfreq: DocFreq, top_terms: int = TOP_TERMS) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows of keyword lists, each cut to its ``top_terms`` strongest terms."""
    return vectorize_hashed([feature_indices(words) for words in docs], dfreq, top_terms)


def vectorize_hashed(docs: Sequence[Sequence[int]], dfreq: DocFreq, top_terms: int = TOP_TERMS) -> sp.csr_matrix:
    """`vectorize` of already hashed keyword lists (``feature_index`` of each word), in whole-batch
    numpy steps: count (row, term) pairs, weight, keep each row's strongest terms, normalise."""
    return vectorize_batch(docs, dfreq, top_terms).X


class BatchVectors(NamedTuple):
    X: sp.csr_matrix  # `vectorize_hashed` of the docs
    kept: np.ndarray  # per word of the docs (flattened in order): did its row keep its term
    rows: np.ndarray  # the distinct (doc, term) pairs of the docs: doc positions ...
    terms: np.ndarray  # ... and terms (what document frequencies count)


def vectorize_batch(docs: Sequence[Sequence[int]], dfreq: DocFreq, top_terms: int = TOP_TERMS) -> BatchVectors:
    """`vectorize_hashed`, with what the concern stage needs besides the vectors (`BatchVectors`)."""
    n = len(docs)
    lens = np.fromiter(map(len, docs), dtype=np.int64, count=n)
    flat = np.fromiter(itertools.chain.from_iterable(docs), dtype=np.int64, count=int(lens.sum()))
    pairs, inverse, tf = np.unique(np.repeat(np.arange(n, dtype=np.int64), lens) * N_FEATURES + flat,
                                   return_inverse=True, return_counts=True)
    rows, idx = pairs // N_FEATURES, pairs % N_FEATURES
    all_rows, all_idx = rows, idx
    val = (1.0 + np.log(tf)) * dfreq.idf(idx)
    # Rank the terms within each row by weight (rows stay sorted) and keep the first top_terms.
    order = np.lexsort((-val, rows))
    ranked_rows = rows[order]
    rank = np.arange(len(order)) - np.searchsorted(ranked_rows, ranked_rows, side="left")
    keep = np.sort(order[rank < top_terms])  # back to (row, index) order
    kept = np.zeros(len(pairs), dtype=bool)
    kept[keep] = True
    rows, idx, val = rows[keep], idx[keep], val[keep]
    norms = np.sqrt(np.bincount(rows, weights=val * val, minlength=n))
    val = val / norms[rows] if len(val) else val
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return BatchVectors(sp.csr_matrix((val, idx, indptr), shape=(n, N_FEATURES)), kept[inverse.ravel()],
                        all_rows, all_idx)


def encode_centroid(vec: sp.csr_matrix | np.ndarray, keep: int = CENTROID_TERMS) -> bytes:
    """A sparse mean vector as bytes: its ``keep`` strongest (index, value) pairs."""
    row = sp.csr_matrix(vec)
    return encode_arrays(row.indices, row.data, keep)


def encode_arrays(indices: np.ndarray, data: np.ndarray, keep: int = CENTROID_TERMS) -> bytes:
    idx, val = np.asarray(indices).astype(np.int32), np.asarray(data).astype(np.float32)
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
class ClusterSet:
    """Topics as the clusterer sees them: one row per topic in ``means`` (the mean member
    vector, K x N_FEATURES), its weight, and its topic id (None for a topic born in this run)."""

    keys: list[int | None]
    means: sp.csr_matrix
    weights: np.ndarray

    @classmethod
    def from_centroids(cls, keys: Sequence[int | None], blobs: Sequence[bytes | None],
                       weights: Sequence[float]) -> ClusterSet:
        indptr = [0]
        idx_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        for blob in blobs:
            idx, val = decode_centroid(blob)
            idx_parts.append(idx.astype(np.int64))
            val_parts.append(val.astype(np.float64))
            indptr.append(indptr[-1] + len(idx))
        ind = np.concatenate(idx_parts) if idx_parts else np.zeros(0, dtype=np.int64)
        dat = np.concatenate(val_parts) if val_parts else np.zeros(0)
        means = sp.csr_matrix((dat, ind, np.asarray(indptr)), shape=(len(keys), N_FEATURES))
        return cls(list(keys), means, np.asarray(weights, dtype=np.float64))

    @classmethod
    def empty(cls) -> ClusterSet:
        return cls([], sp.csr_matrix((0, N_FEATURES)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.keys)

    def centroid(self, k: int) -> bytes:
        """Row ``k`` encoded for ``topics.centroid``."""
        a, b = self.means.indptr[k], self.means.indptr[k + 1]
        return encode_arrays(self.means.indices[a:b], self.means.data[a:b])

    def centroids(self, rows: Sequence[int], keep: int = CENTROID_TERMS) -> list[bytes]:
        """`centroid` of each of ``rows``, the top-``keep`` cut done for all rows in one sort."""
        if not len(rows):
            return []
        M = sp.csr_matrix(self.means)[np.asarray(rows, dtype=np.int64)]
        owner = np.repeat(np.arange(len(rows)), np.diff(M.indptr))
        # strongest first within each row; ties: lower column first (argpartition picks arbitrarily
        # among ties at the cut, so the cut is where the two may differ; both keep ``keep`` terms)
        order = np.lexsort((M.indices, -np.abs(M.data), owner))
        starts = np.repeat(M.indptr[:-1], np.diff(M.indptr))
        top = order[(np.arange(len(order)) - starts) < keep]
        top = top[np.lexsort((M.indices[top], owner[top]))]  # back to (row, column) order
        idx, val = M.indices[top].astype(np.int32), M.data[top].astype(np.float32)
        ends = np.cumsum(np.minimum(np.diff(M.indptr), keep)).tolist()
        out, a = [], 0
        for b in ends:
            out.append(idx[a:b].tobytes() + val[a:b].tobytes())
            a = b
        return out


def _row_norm2(M: sp.csr_matrix) -> np.ndarray:
    return np.asarray(M.multiply(M).sum(axis=1)).ravel()


def assign(
    X: sp.csr_matrix,
    clusters: ClusterSet,
    threshold: float,
    n_keywords: Sequence[int] | None = None,
    chunk: int = CHUNK,
    max_weight: float = MAX_WEIGHT,
    parents: Sequence[int] | None = None,
    merge_threshold: float | None = MERGE_SIMILARITY,
) -> tuple[np.ndarray, np.ndarray]:
    """Single-pass clustering of the time-ordered rows of ``X`` into ``clusters`` (grown in place).

    ``parents`` (optional, per row) links replies and forwards to what they answer: the row
    index of the parent within ``X`` (it must come earlier) as a value >= 0, or the position of
    the parent's cluster in ``clusters`` encoded as ``-2 - position``, or -1 for none. A reply
    whose text matches no topic (short comments: "转发微博", "真的假的") joins its parent's topic.

    Then the topics born in this run get a second look (``merge_threshold``, None: none): a
    post that came before the words its matter is known by started a topic of its own; once
    the run is over, such a small fragment whose mean matches a bigger topic's mean is folded
    into it.
    Topics of earlier runs are never merged away, so no stored post has to move.

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
    cols = np.unique(np.concatenate([X.indices.astype(np.int64), clusters.means.indices.astype(np.int64)]))
    m = max(len(cols), 1)
    Xc = _to_cols(X, cols, m)
    state = [_to_cols(clusters.means, cols, m), clusters.weights.astype(np.float64)]
    k_old = len(clusters.keys)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        _assign_chunk(Xc[lo:hi], lo, clusters.keys, state, threshold, labels, sims, n_keywords, max_weight, par)
    if merge_threshold is not None:
        _merge_new(state, clusters.keys, labels, k_old, merge_threshold, max_weight)
    M = state[0].tocsr()
    clusters.means = sp.csr_matrix((M.data, cols[M.indices], M.indptr), shape=(M.shape[0], N_FEATURES))
    clusters.weights = state[1]
    return labels, sims


def _merge_new(state: list, keys: list[int | None], labels: np.ndarray, k_old: int, threshold: float,
               max_weight: float) -> None:
    """Fold each topic born in this run (rows from ``k_old``) into the most similar topic at least
    as big, if their means' cosine reaches ``threshold``; relabel posts and drop merged rows."""
    M, weights = state[0].tocsr(), state[1]
    k = M.shape[0]
    if k <= k_old:
        return
    target = _merge_targets(M, weights, k_old, threshold)
    if (target == np.arange(k)).all():
        return
    keep = np.flatnonzero(target == np.arange(k))
    pos = np.full(k, -1, dtype=np.int64)
    pos[keep] = np.arange(len(keep))
    # merged mean = weighted mean of the parts
    A = sp.csr_matrix((weights, (pos[target], np.arange(k))), shape=(len(keep), k))
    total = np.asarray(A.sum(axis=1)).ravel()
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    state[0] = (sp.diags(scale) @ A @ M).tocsr()
    state[1] = np.minimum(total, max_weight)
    inside = labels >= 0
    labels[inside] = pos[target[labels[inside]]]
    keys[:] = [keys[i] for i in keep]


def _merge_targets(M: sp.csr_matrix, weights: np.ndarray, k_old: int, threshold: float) -> np.ndarray:
    """Per row of ``M``: the row it is merged into (itself if none). Only new topics of at most
    ``MERGE_MAX_POSTS`` posts move (a bigger one, e.g. a thread held together by reply links, is a
    matter of its own; merging those cost precision); smallest first, so a fragment joins its
    matter's main topic rather than another fragment."""
    k = M.shape[0]
    norms = np.sqrt(_row_norm2(M))
    U = (sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ M).tocsr()
    C = (U[k_old:] @ U.T).tocsr()
    C.data[C.data < threshold] = 0.0
    C.eliminate_zeros()
    target = np.arange(k)
    rows = np.flatnonzero((np.diff(C.indptr) > 0) & (weights[k_old:] <= MERGE_MAX_POSTS))
    for r in rows[np.argsort(weights[k_old + rows], kind="stable")]:
        f = k_old + int(r)
        g = C.indices[C.indptr[r] : C.indptr[r + 1]]
        sim = C.data[C.indptr[r] : C.indptr[r + 1]]
        ok = (g != f) & (target[g] == g) & (weights[g] >= weights[f])
        if ok.any():
            target[f] = int(g[ok][np.argmax(sim[ok])])
    for f in range(k_old, k):  # follow chains: f -> g -> h
        while target[target[f]] != target[f]:
            target[f] = target[target[f]]
    return target


def _to_cols(M: sp.csr_matrix, cols: np.ndarray, m: int) -> sp.csr_matrix:
    M = sp.csr_matrix(M)
    return sp.csr_matrix((M.data, np.searchsorted(cols, M.indices), M.indptr), shape=(M.shape[0], m))


def _parent_cluster(i: int, offset: int, par: np.ndarray, labels: np.ndarray, local: list[int]) -> int:
    p = int(par[offset + i])
    if p <= -2:
        return -2 - p
    if p < 0 or p >= offset + i:
        return -1
    return int(labels[p]) if p < offset else int(local[p - offset])


def _at_least(P: sp.csr_matrix, weights: np.ndarray, cn: np.ndarray, threshold: float) -> sp.csr_matrix:
    """The entries of ``P`` (post . mean) whose cosine, w * product / ||w mean||, reaches ``threshold``."""
    if not P.nnz:
        return P
    k = P.indices
    norm = np.sqrt(cn[k])
    cos = np.divide(weights[k] * P.data, norm, out=np.zeros(P.nnz), where=norm > 0)
    keep = cos >= threshold
    rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=P.shape[0]))])
    return sp.csr_matrix((P.data[keep], k[keep], indptr), shape=P.shape)


def _assign_chunk(Xc: sp.csr_matrix, offset: int, keys: list[int | None], state: list, threshold: float,
                  labels: np.ndarray, sims: np.ndarray, n_keywords: Sequence[int] | None,
                  max_weight: float, par: np.ndarray) -> None:
    M, weights = state
    k0 = M.shape[0]
    P = (Xc @ M.T).tocsr() if k0 else sp.csr_matrix((Xc.shape[0], 0))
    P.sort_indices()
    S = sp.tril(Xc @ Xc.T, k=-1, format="csr")
    # Squared norms of weight * mean: ||w m||^2.
    cn = weights * weights * _row_norm2(M) if k0 else np.zeros(0)
    # Most (post, topic) products are small (a shared common word): about 2% reach the threshold
    # on real text. Only those are walked. A topic below it can still take the post if members
    # that this chunk gave it bring it up; it then shows up through S and its product is looked up
    # in P. Without such members its cosine can only have fallen (its norm grows, products are
    # >= 0), so it stays below. The result is exactly that of walking every product.
    K = _at_least(P, weights, cn, threshold)
    # The loop below runs once per post: it reads plain Python lists (indexing a numpy array
    # and computing with its scalars costs several times more than with ints and floats).
    cnorm2 = cn.tolist()
    below = (threshold * np.sqrt(cn)).tolist()  # bound on w * (post . mean) of a topic not in K
    wl = weights.tolist()
    local = [-1] * Xc.shape[0]
    row_nnz = np.diff(Xc.indptr).tolist()
    Kp, Ki, Kd = K.indptr.tolist(), K.indices.tolist(), K.data.tolist()
    Sp, Si, Sd = S.indptr.tolist(), S.indices.tolist(), S.data.tolist()
    Pp = P.indptr.tolist()
    row: list = [-1, {}]  # the post whose products are in the dict, and the dict

    def product(i: int, c: int) -> float:
        """w_c * (post i . mean c) of a topic offered to the run (c < k0), from P."""
        if row[0] != i:
            row[0], row[1] = i, dict(zip(P.indices[Pp[i]:Pp[i + 1]].tolist(), P.data[Pp[i]:Pp[i + 1]].tolist(),
                                         strict=True))
        return wl[c] * row[1].get(c, 0.0)

    for i in range(Xc.shape[0]):
        if row_nnz[i] == 0:
            # No words to compare: only a reply can join (its parent's topic); the centroid is unchanged.
            local[i] = _parent_cluster(i, offset, par, labels, local)
            continue
        acc: dict[int, float] = {}  # exact dot products: topics whose stored mean reaches the threshold
        for t in range(Kp[i], Kp[i + 1]):
            k = Ki[t]
            acc[k] = wl[k] * Kd[t]
        more: dict[int, float] = {}  # other topics: the part of the dot product from this chunk's members
        for t in range(Sp[i], Sp[i + 1]):
            c = local[Si[t]]
            if c >= 0:
                if c in acc:
                    acc[c] += Sd[t]
                else:
                    more[c] = more.get(c, 0.0) + Sd[t]
        for c, part in more.items():
            # Its stored mean's share is below threshold * ||w m|| (else it would be in acc): look
            # that share up only if it could bring the topic up to the threshold.
            if c >= k0:
                acc[c] = part
            elif (below[c] + part) ** 2 >= threshold * threshold * cnorm2[c]:
                acc[c] = product(i, c) + part
        best, best_sim = -1, 0.0
        for c, dot in acc.items():
            norm2 = cnorm2[c]
            if norm2 <= 0:
                continue
            sim = dot / math.sqrt(norm2)
            if sim > best_sim or (sim == best_sim and 0 <= c < best):  # a tie goes to the older topic
                best, best_sim = c, sim
        parent = -1 if best >= 0 and best_sim >= threshold else _parent_cluster(i, offset, par, labels, local)
        if best >= 0 and best_sim >= threshold:
            local[i] = best
            cnorm2[best] += 2.0 * acc[best] + 1.0
            sims[offset + i] = min(best_sim, 1.0)
        elif parent >= 0:
            local[i] = parent
            if parent in acc:
                dot = acc[parent]
            else:
                dot = (product(i, parent) if parent < k0 else 0.0) + more.get(parent, 0.0)
            cnorm2[parent] += 2.0 * dot + 1.0
        elif n_keywords is None or n_keywords[offset + i] >= MIN_KEYWORDS_TO_START:
            local[i] = len(cnorm2)
            cnorm2.append(1.0)
            keys.append(None)
            sims[offset + i] = 1.0
    chunk_labels = np.asarray(local, dtype=np.int64)
    labels[offset : offset + Xc.shape[0]] = chunk_labels
    # Fold the chunk's members into the means, all clusters at once:
    # new mean = (w * mean + sum of members) / (w + members), weight capped at max_weight.
    k1 = len(cnorm2)
    if k1 > k0:
        M = sp.vstack([M, sp.csr_matrix((k1 - k0, M.shape[1]))], format="csr")
        weights = np.concatenate([weights, np.zeros(k1 - k0)])
    valid = np.flatnonzero(chunk_labels >= 0)
    if valid.size:
        indicator = sp.csr_matrix((np.ones(valid.size), (chunk_labels[valid], valid)), shape=(k1, Xc.shape[0]))
        sizes = np.bincount(chunk_labels[valid], minlength=k1).astype(np.float64)
        total = weights + sizes
        scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
        M = (sp.diags(weights * scale) @ M + sp.diags(scale) @ (indicator @ Xc)).tocsr()
        M.eliminate_zeros()
        weights = np.minimum(np.where(sizes > 0, total, weights), max_weight)
    state[0], state[1] = M, weights


def member_similarity(X: sp.csr_matrix, labels: np.ndarray, clusters: ClusterSet) -> np.ndarray:
    """Cosine of each row with its cluster's mean (0 for rows in no cluster)."""
    out = np.zeros(X.shape[0])
    rows = np.flatnonzero(labels >= 0)
    if not rows.size:
        return out
    means = sp.csr_matrix(clusters.means)
    norms = np.sqrt(_row_norm2(means))
    # Look each row's few terms up in its cluster's mean (keys cluster * N_FEATURES + term, sorted)
    # rather than copying a mean, which may have thousands of terms, once per member row.
    mean_rows = np.repeat(np.arange(means.shape[0], dtype=np.int64), np.diff(means.indptr))
    keys = mean_rows * N_FEATURES + means.indices.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    keys, mean_data = keys[order], means.data[order]
    X = sp.csr_matrix(X)
    x_rows = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    inside = labels[x_rows] >= 0
    x_rows, x_cols, x_data = x_rows[inside], X.indices[inside].astype(np.int64), X.data[inside]
    wanted = labels[x_rows] * N_FEATURES + x_cols
    dots = np.zeros(X.shape[0])
    if keys.size and wanted.size:
        pos = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        hit = keys[pos] == wanted
        dots = np.bincount(x_rows[hit], weights=x_data[hit].astype(np.float64) * mean_data[pos[hit]],
                           minlength=X.shape[0])
    denom = norms[labels[rows]]
    out[rows] = np.divide(dots[rows], denom, out=np.zeros(rows.size), where=denom > 0)
    return out


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
