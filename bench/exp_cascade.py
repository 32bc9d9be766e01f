"""Experiment: repost/comment texts of training cascades as weak extra training examples.

The cross-dataset errors come from non-rumor posts of an unseen corpus scored as rumors. The
training datasets that carry cascades (weibo_ced, weibo_ma2016) hold many more texts of that
era and register than their source posts: the reposts and comments. Each is labelled with its
cascade's label and weighted low. Only cascades whose source post is a training row of the
protocol are used (never one of a test text), so the selection protocols stay clean; weibo21
has no cascades, so val is a no-op and only the proxy can choose.

    PYTHONPATH=. python bench/exp_cascade.py [--seeds 0,1,2] [--score-test] [VARIANT ...]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from bench.exp_quality import (  # noqa: E402
    CACHE,
    calibrated_report,
    counts,
    dup_groups,
    frame,
    idf,
    paired_se,
    protocols,
    weight,
)
from nlp import data  # noqa: E402
from nlp.classifier import HashedTextFeatures, LinearEnsembleClassifier  # noqa: E402
from nlp.cues import cue_matrix  # noqa: E402
from nlp.normalize import normalize  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")
BRACKET_EMOJI = re.compile(r"\[[^\[\]]{1,8}\]")
MENTION_CHAIN = re.compile(r"//@[^:：]{1,30}[:：]")


def cascade_texts(per_cascade: int, min_cjk: int, seed: int = 0):
    """(dataset, source id, normalised text) of up to ``per_cascade`` reposts per cascade."""
    d = data.shared_data_dir()
    files = {"weibo_ced": (d / "weibo_ced" / "ced_reposts.jsonl.gz", "id", "reposts"),
             "weibo_ma2016": (d / "weibo_ma2016" / "ma2016_reposts_first50.jsonl.gz", "eid", "reposts_first")}
    rng = np.random.default_rng(seed)
    out = []
    for ds, (path, key, field) in files.items():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                seen, keep = set(), []
                for r in rec.get(field) or []:
                    t = MENTION_CHAIN.sub(" ", BRACKET_EMOJI.sub("", r.get("text") or ""))
                    if len(CJK.findall(t)) < min_cjk:
                        continue
                    n = normalize(t)
                    if n not in seen:
                        seen.add(n)
                        keep.append(n)
                if len(keep) > per_cascade:
                    keep = [keep[i] for i in sorted(rng.choice(len(keep), per_cascade, replace=False))]
                out.extend((ds, str(rec[key]), t) for t in keep)
    return out


def cascade_counts(per_cascade: int, min_cjk: int):
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(repr(("casc", per_cascade, min_cjk)).encode()).hexdigest()[:12]
    f = CACHE / f"cascade_{tag}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    rows = cascade_texts(per_cascade, min_cjk)
    texts = [t for _, _, t in rows]
    xc, xw = HashedTextFeatures()._counts(texts)
    cues = cue_matrix(texts, normalized=True)
    out = ([(ds, i) for ds, i, _ in rows], xc.tocsr(), xw.tocsr(), cues)
    f.write_bytes(pickle.dumps(out, protocol=5))
    return out


def _quote_cosine(a, b):
    """Row-wise cosine of two aligned count matrices (a repost and its source, char n-grams)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    dot = np.asarray(a.multiply(b).sum(axis=1)).ravel()
    na = np.sqrt(np.asarray(a.multiply(a).sum(axis=1)).ravel())
    nb = np.sqrt(np.asarray(b.multiply(b).sum(axis=1)).ravel())
    return dot / np.maximum(na * nb, 1e-12)


def features(mats, rows, icf, iwf):
    xc, xw, cues = mats
    return sp.hstack([weight(xc[rows], icf), weight(xw[rows], iwf), sp.csr_matrix(cues[rows] * np.float32(0.05))],
                     format="csr", dtype=np.float64)


def fit(X, y, w, seed):
    return LinearEnsembleClassifier(calibration_cv=0, random_state=seed).fit(X, y, sample_weight=w)


def run(df, mats, casc, prot, cfg, seed):
    """Train rows + the cascade texts of the training rows' cascades; calibrated on sources only."""
    y = df["label"].to_numpy()
    tr, te = prot
    src_of, cxc, cxw, ccues = casc
    ds, ids = df["dataset"].to_numpy(), df["id"].astype(str).to_numpy()
    row_of = {(ds[i], ids[i]): i for i in tr}
    c_rows = np.array([k for k, s in enumerate(src_of) if s in row_of], dtype=np.int64)
    c_src = np.array([row_of[src_of[k]] for k in c_rows], dtype=np.int64)
    if cfg.get("max_total"):
        c_rows, c_src = c_rows[: cfg["max_total"]], c_src[: cfg["max_total"]]
    wc = cfg.get("w", 0.0)
    if wc == 0:
        c_rows, c_src = c_rows[:0], c_src[:0]
    if cfg.get("max_quote") is not None and len(c_rows):  # drop reposts that restate their source
        keep = _quote_cosine(cxc[c_rows], mats[0][c_src]) < cfg["max_quote"]
        c_rows, c_src = c_rows[keep], c_src[keep]
    n = len(df)
    allc = (sp.vstack([mats[0], cxc]).tocsr(), sp.vstack([mats[1], cxw]).tocsr(), np.vstack([mats[2], ccues]))
    aug = np.concatenate([tr, n + c_rows])
    src_rows = tr if not cfg.get("idf_with_cascades") else aug
    icf, iwf = idf(allc[0][src_rows]), idf(allc[1][src_rows])
    X_all = features(allc, aug, icf, iwf)
    y_casc = np.zeros(len(c_src), dtype=y.dtype) if cfg.get("label_zero") else y[c_src]
    y_all = np.concatenate([y[tr], y_casc])
    w_all = np.concatenate([np.ones(len(tr)), np.full(len(c_rows), wc)])
    if cfg.get("balance_cascades") and len(c_rows):  # cascade texts: both classes weigh the same in all
        yc = y[c_src]
        for c in (0, 1):
            m = yc == c
            if m.any():
                w_all[len(tr):][m] = wc * len(yc) / (2 * m.sum())
    # out-of-fold Platt on the source rows only; a source's cascade texts stay in its fold
    g = dup_groups(df, tr)
    pos = {r: k for k, r in enumerate(tr)}
    fold_of_src = np.zeros(len(tr), dtype=int)
    for f_, (_, b) in enumerate(GroupKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(tr)), y[tr], g)):
        fold_of_src[b] = f_
    fold_all = np.concatenate([fold_of_src, fold_of_src[[pos[s] for s in c_src]]])
    oof = np.zeros(len(tr))
    for f_ in range(3):
        a = np.flatnonzero(fold_all != f_)
        b = np.flatnonzero(fold_of_src == f_)
        oof[b] = fit(X_all[a], y_all[a], w_all[a], seed).decision_function(X_all[b])
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), y[tr])
    clf = fit(X_all, y_all, w_all, seed)
    r, pred = calibrated_report(y[te], clf.decision_function(features(allc, te, icf, iwf)), cal)
    r["n_cascade_texts"] = len(c_rows)
    return r, pred


VARIANTS = {
    "base": {"w": 0.0},
    "casc10 w.1": {"w": 0.1, "k": 10},
    "casc10 w.3": {"w": 0.3, "k": 10},
    "casc10 w.1 bal": {"w": 0.1, "k": 10, "balance_cascades": True},
    "casc30 w.05": {"w": 0.05, "k": 30},
    "casc30 w.1 bal": {"w": 0.1, "k": 30, "balance_cascades": True},
    # round 5: a reaction is not a rumor. Every repost/comment that does not restate its source
    # (char n-gram cosine below max_quote) is a non-rumor example, whatever its cascade.
    "zero k10 w.1 q.3": {"w": 0.1, "k": 10, "label_zero": True, "max_quote": 0.3},
    "zero k10 w.3 q.3": {"w": 0.3, "k": 10, "label_zero": True, "max_quote": 0.3},
    "zero k10 w.1 q.3 cjk20": {"w": 0.1, "k": 10, "min_cjk": 20, "label_zero": True, "max_quote": 0.3},
    "zero k30 w.1 q.3 cjk20": {"w": 0.1, "k": 30, "min_cjk": 20, "label_zero": True, "max_quote": 0.3},
    "zero k10 w1 q.3 cjk20": {"w": 1.0, "k": 10, "min_cjk": 20, "label_zero": True, "max_quote": 0.3},
}


def main(names, seeds, prot_names):
    df = frame()
    y = df["label"].to_numpy()
    prots = protocols(df)
    mats = counts(df)
    base_pred = {}
    for name in names or list(VARIANTS):
        cfg = VARIANTS[name]
        casc = cascade_counts(cfg.get("k", 10), cfg.get("min_cjk", 8))
        for seed in seeds:
            res = {}
            for k in prot_names:
                r, pred = run(df, mats, casc, prots[k], cfg, seed)
                if name == "base":
                    base_pred[(k, seed)] = pred
                elif (k, seed) in base_pred:
                    yt = y[prots[k][1]]
                    r["d"] = round(r["f1"] - float(f1_score(yt, base_pred[(k, seed)], average="macro")), 4)
                    r["se"] = round(paired_se(yt, base_pred[(k, seed)], pred), 4)
                res[k] = r
            print(json.dumps({"name": name, "seed": seed, **res}, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    seeds, prots_ = (0,), ("proxy",)
    if "--seeds" in args:
        i = args.index("--seeds")
        seeds = tuple(int(x) for x in args[i + 1].split(","))
        del args[i : i + 2]
    if "--score-test" in args:
        args.remove("--score-test")
        prots_ = ("proxy", "ced")
    main(args, seeds, prots_)
