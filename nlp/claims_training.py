"""Training data and training for the claim matcher, from the research corpora (research use only).

Run ``python -m nlp.claims_training --out models/claims/<version>``. Needs ``../shared/data``.

What is mined (weibo_ced and weibo_ma2016 hold each source post with its reposts/comments):

* **events**: the source posts, grouped where two sources are near-identical (one rumor
  posted twice, or in both datasets), so no event is on both sides of a split;
* **restatements** (positives): a repost or comment whose own text (before the "//@" chain)
  restates its source: at least 8 characters of content, at least 60% of its IDF-weighted
  words found in the source, and three or more of the source's rarer words (IDF >= 7). Reactions ("转发微博",
  "[蜡烛]", "太可怕了") fail that. This is lexical by construction: it finds shortened and
  partly reworded restatements, not free paraphrases (those are in the hand-written set);
* **hard negatives**: the same restatements paired with the sources of *other* events that
  share the most rare words with them (and random other sources).

The split is by event (``fold`` of the event's hash): folds 0-6 train, 7-9 held out for
``bench/bench_claims.py``. Nothing here is written into the repository except numbers: the
hashed IDF table and the classifier's weights.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp.claims import N_BUCKETS, ClaimDoc, ClaimFeaturizer, char_hash, claim_key, gram_hash, word_hash
from nlp.data import shared_data_dir
from nlp.normalize import normalize
from nlp.segment import Segmenter
from nlp.similarity import BandedIndex, shingle_batch

log = logging.getLogger(__name__)

HELDOUT_FOLDS = frozenset({7, 8, 9})
DATA_TERMS = (
    "Trained on weibo_ced (Song et al., CED, arXiv:1811.04175; thunlp/Chinese_Rumor_Dataset) and "
    "weibo_ma2016 (Ma et al., IJCAI 2016) source posts with their reposts/comments, IDF also over "
    "weibo21 (Nan et al. 2021, MDFEND): research use only, no license stated by the sources. The "
    "model holds numbers only (hashed IDF values and tree weights, no strings, no texts), plus our "
    "own hand-written tune pairs (bench/data/reworded_claims.yaml, part 'tune'). Deployers should "
    "retrain on their own reviewed pairs."
)
_CHAIN_RE = re.compile(r"//\s*@")
_REPLY_RE = re.compile(r"^\s*回复\s*@[^:：]{1,30}[:：]")


@dataclass
class Event:
    eid: str  # dataset:id
    label: int
    source: str  # normalised source text
    reposts: list[str]  # normalised own texts of reposts/comments (non-empty)
    group: int = -1  # event group (near-identical sources share one)
    fold: int = 0


def own_text(text: str) -> str:
    """The repost's own words: before the "//@..." chain, without "回复@x:"."""
    return _REPLY_RE.sub("", _CHAIN_RE.split(text, 1)[0]).strip()


def _iter_ced(root: Path, max_reposts: int) -> Iterator[Event]:
    sources = {}
    with open(root / "weibo_ced" / "ced.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            sources[d["id"]] = (d["label"], d["text"] or "")
    with gzip.open(root / "weibo_ced" / "ced_reposts.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            label, text = sources.get(d["id"], (d["label"], ""))
            if not text:
                continue
            own = [own_text(r.get("text") or "") for r in d["reposts"]]
            own = [t for t in own if len(t) >= 6][:max_reposts]
            yield Event(f"ced:{d['id']}", int(label), normalize(text), [normalize(t) for t in own])


def _iter_ma(root: Path, max_reposts: int) -> Iterator[Event]:
    sources = {}
    with open(root / "weibo_ma2016" / "ma2016_weibo.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d.get("text"):
                sources[str(d["eid"])] = (d["label"], d["text"])
    with gzip.open(root / "weibo_ma2016" / "ma2016_reposts_first50.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            got = sources.get(str(d["eid"]))
            if got is None:
                continue
            own = [own_text(r.get("text") or "") for r in d.get("reposts_first") or []]
            own = [t for t in own if len(t) >= 6][:max_reposts]
            yield Event(f"ma:{d['eid']}", int(got[0]), normalize(got[1]), [normalize(t) for t in own])


def load_events(max_reposts: int = 120) -> list[Event]:
    """All source posts with their reposts, grouped into events and assigned a fold."""
    root = shared_data_dir()
    events = [*_iter_ced(root, max_reposts), *_iter_ma(root, max_reposts)]
    keys = [claim_key(e.source) for e in events]
    sigs = shingle_batch(keys).signatures()
    index = BandedIndex(0.5)
    parent = list(range(len(events)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, hits in enumerate(index.batch_pairs(sigs)):
        for j, _ in hits:
            parent[find(i)] = find(j)
    for i, e in enumerate(events):
        root_i = find(i)
        e.group = root_i
        e.fold = zlib.crc32(keys[root_i].encode("utf-8")) % 10
    return events


# ----------------------------------------------------------------------------- IDF


def build_idf(texts: list[str], segmenter: Segmenter) -> np.ndarray:
    """Hashed IDF (words, bigrams and characters of the claim keys) over ``texts``: float32, 2**20 values."""
    df = np.zeros(N_BUCKETS, dtype=np.int64)
    n = 0
    for text in texts:
        key = claim_key(text)
        if not key:
            continue
        n += 1
        hs = {word_hash(w) for w in segmenter.cut(key)}
        hs.update(gram_hash(key[i : i + 2]) for i in range(len(key) - 1))
        hs.update(char_hash(ch) for ch in key)
        df[list(hs)] += 1
    idf = np.log((n + 1) / (df + 1)).astype(np.float32) + 1.0
    return idf


# ----------------------------------------------------------------------------- pairs


@dataclass
class Pair:
    a: str  # the source (claim side)
    b: str  # the restatement or the other text
    label: int
    event: int  # group of a
    fold: int
    kind: str  # restate | copy | hard | random


def _restates(fz: ClaimFeaturizer, src: ClaimDoc, rep: ClaimDoc) -> str | None:
    """'restate', 'copy' or None (a reaction, not a restatement)."""
    if len(rep.key) < 8 or not rep.word_weight:
        return None
    shared = [v for h, v in rep.words.items() if h in src.words]
    if sum(shared) / rep.word_weight < 0.6 or sum(1 for v in shared if v >= 7.0) < 3:
        return None
    # A copy: most of the source's bigrams are in the repost (MinHash finds those already).
    if src.gram_weight and sum(v for h, v in src.grams.items() if h in rep.grams) / src.gram_weight >= 0.7:
        return "copy"
    return "restate"


def mine_pairs(
    events: list[Event], fz: ClaimFeaturizer, *, per_event: int = 6, hard: int = 3, seed: int = 7
) -> list[Pair]:
    """Positive (source, restatement) pairs and hard/random negatives, for every event."""
    rng = random.Random(seed)
    src_docs = [fz.doc(e.source) for e in events]
    from nlp.claims import ClaimIndex, ClaimMatcher

    # Retrieval only (no classifier needed): an index over the sources, scored by shared weight.
    idx = ClaimIndex(ClaimMatcher(fz, model=None), candidates=hard + 8)
    for i, d in enumerate(src_docs):
        idx.add_doc(i, d)
    out: list[Pair] = []
    queries: list[tuple[int, ClaimDoc, str]] = []
    for i, e in enumerate(events):
        if not src_docs[i].key:
            continue
        found = 0
        seen: set[str] = set()
        for text in e.reposts:
            doc = fz.doc(text)
            if doc.key in seen:
                continue
            kind = _restates(fz, src_docs[i], doc)
            if kind is None:
                continue
            seen.add(doc.key)
            out.append(Pair(e.source, text, 1, e.group, e.fold, kind))
            queries.append((i, doc, text))
            found += 1
            if found >= per_event:
                break
    cands = idx.candidates_of([d for _, d, _ in queries])
    for (i, _doc, text), rows in zip(queries, cands, strict=True):
        e = events[i]
        others = [r for r in rows if events[r].group != e.group][:hard]
        for r in others:
            out.append(Pair(events[r].source, text, 0, events[r].group, e.fold, "hard"))
        r = rng.randrange(len(events))
        if events[r].group != e.group:
            out.append(Pair(events[r].source, text, 0, events[r].group, e.fold, "random"))
    return out


def swap_negatives(pairs: list[Pair], fz: ClaimFeaturizer, *, per_pair: int = 1, seed: int = 11) -> list[Pair]:
    """Hard negatives made from positives: the restatement with its heaviest word shared with
    the source replaced by a word of similar weight from another event ("中考取消体育考试" ->
    "中考取消英语考试"). The frame stays, the core changes: another claim. Mined hard negatives
    rarely look like that, and claims about another thing in the same words do."""
    rng = random.Random(seed)
    seg = fz.segmenter
    pool: dict[int, list[str]] = {}
    for p in pairs:
        if p.label == 1:
            for w in seg.cut(claim_key(p.b)):
                if len(w) >= 2 and not any(ch.isdigit() for ch in w):
                    pool.setdefault(int(fz.idf[word_hash(w)]), []).append(w)
    out: list[Pair] = []
    for p in pairs:
        if p.label != 1:
            continue
        src = fz.doc(p.a)
        words = [w for w in seg.cut(p.b) if len(w) >= 2 and word_hash(w) in src.words]
        words.sort(key=lambda w: -fz.idf[word_hash(w)])
        for w in words[:per_pair]:
            choices = pool.get(int(fz.idf[word_hash(w)])) or []
            other = rng.choice(choices) if choices else ""
            if other and other not in p.a and other != w:
                out.append(Pair(p.a, p.b.replace(w, other, 1), 0, p.event, p.fold, "swap"))
    return out


# ----------------------------------------------------------------------------- hand-written pairs


def hand_pairs(path: Path, part: str) -> tuple[list[tuple[str, str, int, str]], list[str]]:
    """(claim, text, label, kind) pairs of one part of the hand-written set, and each pair's
    group: kind ``same`` (a rewording), ``hard`` (another village/amount/thing) or ``cross``
    (a rewording of another group's claim)."""
    import yaml

    groups = [g for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] if g["part"] == part]
    out: list[tuple[str, str, int, str]] = []
    owner: list[str] = []
    for g in groups:
        for t in g["same"]:
            out.append((g["claim"], t, 1, "same"))
            owner.append(g["id"])
        for t in g["other"]:
            out.append((g["claim"], t, 0, "hard"))
            owner.append(g["id"])
        for h in groups:
            if h is not g:
                out.append((g["claim"], h["same"][0], 0, "cross"))
                owner.append(g["id"])
    return out, owner


def _features(fz: ClaimFeaturizer, pairs: list[tuple[str, str]]) -> np.ndarray:
    cache: dict[str, ClaimDoc] = {}

    def doc(text: str) -> ClaimDoc:
        got = cache.get(text)
        if got is None:
            got = cache[text] = fz.doc(text)
        return got

    return np.array([fz.pair_features(doc(a), doc(b)) for a, b in pairs], dtype=np.float64)


#: The classifier: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier) over
#: the pair features, the hand-written tune pairs weighed up. Measured against the logistic
#: regression of 2026.12.1 on the same rows (grouped 5-fold CV on the hand-written tune pairs;
#: mined pairs of train fold 6 held out of fitting): recall at precision 0.95 0.72 vs 0.69 on
#: the tune pairs, at precision 0.98 0.69 vs 0.06; on the fold-6 mined pairs 0.60 vs 0.04. A
#: linear score cannot say "a short restatement whose words are all in a long post is the same
#: claim, a short text with one heavy word of its own is not"; the trees can.
HGB_PARAMS: dict[str, Any] = {
    "max_iter": 200,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "l2_regularization": 1.0,
    "min_samples_leaf": 40,
    "random_state": 0,
}
CV_FOLDS = 5
#: Fold assignments (seeds of group_folds) whose out-of-fold thresholds give the operating point (their median).
THRESHOLD_SEEDS = 5


def fit_model(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Any:
    """Fit on the rows without an anchor conflict (conflicts are decided by rule, not learned)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from nlp.claims import FEATURES

    keep = x[:, FEATURES.index("anchor_conflict")] == 0
    return HistGradientBoostingClassifier(**HGB_PARAMS).fit(x[keep], y[keep], sample_weight=w[keep])


def group_folds(owner: list[str], k: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """A fold per hand-written pair, by its group (a claim's retellings stay in one fold)."""
    groups = sorted(set(owner))
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[i]: n % k for n, i in enumerate(order)}
    return np.array([fold_of[o] for o in owner])


def pair_threshold(y: np.ndarray, s: np.ndarray, precision: float) -> float:
    """The lowest threshold whose pairs above it have at least ``precision`` (1.0 if none)."""
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(y[order] == 1)
    prec = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero((prec >= precision) & (s[order] > 0))
    return float(s[order][ok.max()]) if len(ok) else 1.0


def library_scores(matcher: Any, path: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """For each post of the hand-written part: the best claim score, and whether that best
    claim is its own (False for hard negatives, which should match nothing)."""
    import yaml

    groups = [g for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] if g["part"] == part]
    claims = [matcher.doc(normalize(g["claim"])) for g in groups]
    best: list[float] = []
    right: list[bool] = []
    for i, g in enumerate(groups):
        for text, own in [(t, i) for t in g["same"]] + [(t, -1) for t in g["other"]]:
            doc = matcher.doc(normalize(text))
            s = matcher.score_docs([doc] * len(claims), claims)
            best.append(float(s.max()))
            right.append(int(s.argmax()) == own)
    return np.array(best), np.array(right)


def library_threshold(matcher: Any, path: Path, part: str, precision: float) -> float:
    best, right = library_scores(matcher, path, part)
    for t in np.arange(0.05, 1.0, 0.01):
        taken = best >= t
        if taken.any() and (right & taken).sum() / taken.sum() >= precision:
            return round(float(t), 2)
    return 1.0


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - offline tool
    import datetime as dt
    import pickle

    from nlp.claims import FEATURES, ClaimMatcher, counts_conflict, opposed, save_claim_matcher

    parser = argparse.ArgumentParser(description="Train the claim matcher (needs ../shared/data).")
    parser.add_argument("--out", required=True, help="models/claims/<version>")
    parser.add_argument("--hand", default="bench/data/reworded_claims.yaml")
    parser.add_argument("--hand-weight", type=float, default=20.0)
    # Swap negatives teach "same frame, other core"; weighed low, they cost the mined
    # restatements (shortened retellings of long posts) less recall (grouped CV on tune, and
    # train fold 6 of the mined pairs held out of fitting for the check).
    parser.add_argument("--swap-weight", type=float, default=0.3)
    parser.add_argument("--per-event", type=int, default=6, help="restatements mined per event (at most)")
    parser.add_argument("--cache", default="", help="pickle of the mined events (speeds reruns)")
    parser.add_argument("--idf", default="", help="reuse an IDF table built by an earlier run (idf.npy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    seg = Segmenter()
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.is_file():
        events = pickle.loads(cache.read_bytes())
    else:
        events = load_events()
        if cache is not None:
            cache.write_bytes(pickle.dumps(events))
    from nlp.data import load_combined

    df = load_combined()
    texts = [e.source for e in events] + [r for e in events for r in e.reposts]
    texts += df[df["dataset"] == "weibo21"]["norm"].tolist()
    idf = np.load(args.idf) if args.idf else build_idf(texts, seg)
    fz = ClaimFeaturizer(idf.astype(np.float16).astype(np.float32), segmenter=seg)
    mined = mine_pairs(events, fz, per_event=args.per_event)
    train = [p for p in mined if p.fold not in HELDOUT_FOLDS]
    x_m = _features(fz, [(p.a, p.b) for p in train])
    y_m = np.array([p.label for p in train])
    hand, owner = hand_pairs(Path(args.hand), "tune")
    x_h = _features(fz, [(normalize(a), normalize(b)) for a, b, _, _ in hand])
    y_h = np.array([lab for _, _, lab, _ in hand])
    conflict = FEATURES.index("anchor_conflict")

    swaps = swap_negatives(train, fz)
    x_s = _features(fz, [(p.a, p.b) for p in swaps])
    hand_docs = [(fz.doc(normalize(a)), fz.doc(normalize(b))) for a, b, _, _ in hand]
    ruled = np.array([opposed(d, e) or counts_conflict(d, e) for d, e in hand_docs]) | (x_h[:, conflict] > 0)

    def fit(keep_hand: np.ndarray) -> Any:
        x = np.vstack([x_m, x_s, x_h[keep_hand]])
        y = np.concatenate([y_m, np.zeros(len(x_s)), y_h[keep_hand]])
        w = np.concatenate([
            np.ones(len(y_m)), np.full(len(x_s), args.swap_weight), np.full(int(keep_hand.sum()), args.hand_weight)
        ])
        return fit_model(x, y, w)

    # The operating point from out-of-fold scores of the tune pairs (grouped folds: a claim's
    # retellings are never scored by a model that saw them), then the model on all of them.
    # The median over THRESHOLD_SEEDS fold assignments: with 115 retellings one assignment's
    # threshold moves by up to 0.1 (2026.12.2's recipe: 0.65-0.79 over seeds 0-4).
    pair_ts = []
    for seed in range(THRESHOLD_SEEDS):
        folds = group_folds(owner, seed=seed)
        oof = np.zeros(len(y_h))
        for k in range(CV_FOLDS):
            oof[folds == k] = fit(folds != k).predict_proba(x_h[folds == k])[:, 1]
        oof[ruled] = 0.0
        pair_ts.append(round(pair_threshold(y_h, oof, 0.95), 3))
    pair_t = float(np.median(pair_ts))
    model = fit(np.ones(len(y_h), dtype=bool))
    matcher = ClaimMatcher(fz, model, threshold=0.5, version=Path(args.out).name)
    # Debunk matching on the tune part (its claims are the library, its retellings and hard
    # negatives the posts) must also keep precision >= 0.95: the higher of the two thresholds.
    threshold = round(max(pair_t, library_threshold(matcher, Path(args.hand), "tune", 0.95)), 3)
    matcher.threshold = threshold
    card = {
        "name": "claims",
        "version": Path(args.out).name,
        "trained": dt.date.today().isoformat(),
        "model": f"HistGradientBoostingClassifier({HGB_PARAMS}) over pair features",
        "features": list(FEATURES),
        "threshold": threshold,
        "threshold_rule": "the higher of: the lowest threshold with precision >= 0.95 on the hand-written tune pairs, "
        f"scored out of fold ({CV_FOLDS} folds by claim; the median over {THRESHOLD_SEEDS} fold assignments); the lowest with precision >= 0.95 for debunk matching on the "
        "tune part (top claim per post; retellings must find their claim, hard negatives nothing)",
        "tune_cv": {"pair_threshold": round(pair_t, 3), "pair_thresholds_by_seed": pair_ts, "pairs": len(y_h), "positives": int(y_h.sum())},
        "data_terms": DATA_TERMS,
        "data": {
            "mined_pairs_train": len(train),
            "mined_per_event": args.per_event,
            "mined_positive": int(y_m.sum()),
            "swap_negatives": len(swaps),
            "swap_weight": args.swap_weight,
            "hand_tune_pairs": len(hand),
            "hand_weight": args.hand_weight,
            "idf_texts": len(texts),
        },
    }
    save_claim_matcher(matcher, Path(args.out), card)
    write_card_md(Path(args.out), card)
    print(json.dumps(card, ensure_ascii=False, indent=1))


def write_card_md(folder: Path, card: dict[str, Any]) -> None:
    """The human-readable card next to card.json (held-out figures: bench/results/claims.md)."""
    lines = [
        f"# Claim matcher {card['version']}",
        "",
        "P(two texts state the same claim), for debunk matching and incident grouping (nlp/claims.py).",
        "",
        f"- Model: {card['model']}; features: {', '.join(map(str, card['features']))} (list, in order).",
        f"- Operating point: {card['threshold']} ({card['threshold_rule']}).",
        f"- Trained: {card['trained']}. Data: {json.dumps(card['data'], ensure_ascii=False)}.",
        f"- Tune cross-validation: {json.dumps(card.get('tune_cv', {}), ensure_ascii=False)}.",
        f"- Data and terms: {card['data_terms']}",
        "- Files: idf.npy (2**20 hashed IDF values, float16), model.skops (the classifier), card.json.",
        "- Held-out figures: bench/results/claims.md (bench/bench_claims.py).",
        "",
    ]
    (folder / "card.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    main()
