"""Topic assignment on sentences we wrote: short posts on a matter join its topic, even one that
came before the matter's own words were known, and a different matter stays apart."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.tables import Post
from tests.concerns.conftest import DAY, run_stage

_BUS = [
    "没车了，老人去县城看病怎么办",  # before anyone named the matter: a topic of its own at first
    "柳树村到县城的公交车停运了，站台贴了通知",
    "去县城的公交车停运，柳树村的老人看病怎么办",
    "公交车停运到什么时候？柳树村站一直没车",
    "县城公交停运，柳树村站台的通知说要停一周",
    "公交车停运，老人看病没车",
    "停运了，没车",
]
_MASKS = [
    "镇上药店的口罩卖完了，什么时候补货",
    "东湾村药店也没有口罩了，口罩什么时候到货",
    "药店口罩",
    "口罩补货了吗",
]


def _posts(texts: list[str], prefix: str, start: dt.datetime) -> list[dict]:
    return [{"source": "青禾镇论坛", "external_id": f"{prefix}{i}", "text": text,
             "published_at": start + dt.timedelta(minutes=7 * i)} for i, text in enumerate(texts)]


def test_short_posts_join_their_matter_and_another_matter_stays_apart(session: Session) -> None:
    start = DAY + dt.timedelta(hours=9)
    posts = _posts(_BUS, "bus", start) + _posts(_MASKS, "mask", start + dt.timedelta(minutes=3))
    run_stage(session, posts, now=start + dt.timedelta(hours=1))
    topic_of = dict(session.execute(select(Post.external_id, Post.topic_id)).all())
    bus = {topic_of[f"bus{i}"] for i in range(len(_BUS))}
    masks = {topic_of[f"mask{i}"] for i in range(len(_MASKS))}
    assert len(bus) == 1 and None not in bus, f"the bus matter is split: {bus}"
    assert len(masks) == 1 and None not in masks, f"the mask matter is split: {masks}"
    assert bus.isdisjoint(masks)


def _single_pass_by_definition(X, clusters, threshold: float, chunk: int) -> list[int]:
    """The clustering `topics.assign` promises, written plainly: each post joins the topic with the
    highest cosine to the sum of (weight x stored mean) and the posts the run gave it so far (ties:
    the older topic) if that reaches ``threshold``, else starts one; stored means and weights are
    updated at the end of each chunk."""
    import numpy as np

    from nlp.concerns import topics as tp

    cols = np.union1d(X.indices, clusters.means.indices)  # dense in the used columns only
    dense = X.tocsc()[:, cols].toarray()
    means = list(clusters.means.tocsc()[:, cols].toarray())
    weights = list(clusters.weights)
    labels: list[int] = []
    for lo in range(0, len(dense), chunk):
        sums = [w * m for w, m in zip(weights, means, strict=True)]
        joined: list[list[int]] = [[] for _ in sums]
        for i in range(lo, min(lo + chunk, len(dense))):
            x = dense[i]
            if not x.any():
                labels.append(-1)
                continue
            cos = [float(x @ s) / np.linalg.norm(s) if np.linalg.norm(s) > 0 else 0.0 for s in sums]
            best = max(range(len(cos)), key=lambda c: (cos[c], -c), default=-1)
            if best < 0 or cos[best] < threshold:
                best = len(sums)
                sums.append(np.zeros_like(x))
                means.append(np.zeros_like(x))
                weights.append(0.0)
                joined.append([])
            sums[best] = sums[best] + x
            joined[best].append(i)
            labels.append(best)
        for c, members in enumerate(joined):
            if members:
                total = weights[c] + len(members)
                means[c] = (weights[c] * means[c] + dense[members].sum(axis=0)) / total
                weights[c] = min(total, tp.MAX_WEIGHT)
    return labels


def test_clustering_walks_only_the_strong_products_and_gives_the_plain_result() -> None:
    """`assign` skips the (post, topic) products below the threshold; on word lists made to
    overlap a lot (shared words, repeated posts, so ties too) it must still give exactly what the
    plain definition gives, over several chunks and a second run that starts from the first's topics."""
    import random

    import numpy as np

    from nlp.concerns import topics as tp

    rng = random.Random(7)
    matters = [[f"词{rng.randrange(60)}" for _ in range(5)] for _ in range(25)]
    docs = [rng.sample(rng.choice(matters), rng.randint(1, 5)) + [f"词{rng.randrange(60)}"] * rng.randint(0, 2)
            for _ in range(700)]
    X = tp.vectorize(docs, tp.DocFreq())
    clusters = tp.ClusterSet.empty()
    first, _ = tp.assign(X[:400], clusters, 0.4, chunk=150, merge_threshold=None)
    offered = tp.ClusterSet(list(clusters.keys), clusters.means.copy(), clusters.weights.copy())
    second, _ = tp.assign(X[400:], clusters, 0.4, chunk=150, merge_threshold=None)
    assert first.tolist() == _single_pass_by_definition(X[:400], tp.ClusterSet.empty(), 0.4, 150)
    assert second.tolist() == _single_pass_by_definition(X[400:], offered, 0.4, 150)
    assert len(set(second.tolist()) & set(range(len(offered)))) > 5  # the second run did join old topics
    assert np.unique(first).size > 10


def test_centroids_of_many_rows_encode_as_one_row_at_a_time() -> None:
    import numpy as np
    import scipy.sparse as sp

    from nlp.concerns import topics as tp

    rng = np.random.default_rng(3)
    means = sp.random(40, tp.N_FEATURES, density=90 / tp.N_FEATURES, format="csr", random_state=3)
    means.data = rng.random(means.nnz)  # distinct weights: the top-64 cut is unambiguous
    means = sp.vstack([means, sp.csr_matrix((1, tp.N_FEATURES))], format="csr")  # and an empty row
    clusters = tp.ClusterSet([None] * 41, means, np.ones(41))
    rows = [7, 0, 40, 39, 7]
    assert clusters.centroids(rows) == [clusters.centroid(r) for r in rows]
    assert {len(b) // 8 for b in clusters.centroids(rows[:2])} == {tp.CENTROID_TERMS}
