"""Experiment harness for the rumor classifier's quality targets (issue 9).

Featurises every row of the three datasets once per n-gram configuration (hashed counts
cached under var/cache), then re-weights and fits per protocol, so a candidate costs a few
linear fits. Selection protocols (never the test sets):

* ``val``: weibo21 official train -> val;
* ``proxy``: train weibo21 + weibo_ced minus texts shared with weibo_ma2016, test weibo_ma2016.

Reported only for the chosen candidates: weibo21 train(+val) -> test (dedup) and the
cross-dataset weibo_ced protocol (with the real training code, `nlp.training`).

    python -m bench.experiments.exp_quality [VARIANT ...]   # default: every variant

prints val and proxy scores of the calibrated variants (results of a full run:
bench/experiments/results/classifier_quality_experiments.{json,md}).

    python -m bench.experiments.exp_quality --round2 [--seeds 0,1,2] [--out F.jsonl] [VARIANT ...]

runs the round-2 variants (`ROUND2`: multi-source feature stability, source-balanced
weights, more ensemble members, extra n-gram views, calibration folds); each line holds val
and proxy scores and, after ``"r2 base"`` at the same seed, the difference to it with a
paired bootstrap SE.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, precision_recall_fscore_support  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from nlp import data  # noqa: E402
from nlp.classifier import HashedTextFeatures, LinearEnsembleClassifier  # noqa: E402
from nlp.cues import CUE_NAMES, cue_matrix  # noqa: E402

CACHE = ROOT / "var" / "cache" / "exp_quality"
N_CUES = len(CUE_NAMES)


def frame():
    df = data.load_combined()
    return df


def counts(df, char_range=(1, 3), word_range=(1, 2), nf=2**20):
    """Hashed char and word count matrices for every row of ``df`` (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(repr((len(df), char_range, word_range, nf)).encode()).hexdigest()[:12]
    f = CACHE / f"counts_{key}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    feats = HashedTextFeatures(char_ngram_range=char_range, word_ngram_range=word_range, n_features=nf)
    xc, xw = feats._counts(df["norm"].tolist())
    cues = cue_matrix(df["norm"].tolist(), normalized=True)
    out = (xc.tocsr(), xw.tocsr(), cues)
    f.write_bytes(pickle.dumps(out, protocol=5))
    return out


def idf(x, smooth=True):
    df_ = np.bincount(x.indices, minlength=x.shape[1])
    n = x.shape[0]
    return (np.log((1.0 + n) / (1.0 + df_)) + 1.0).astype(np.float32)


def weight(x, idf_vec, *, tf="log", use_idf=True, w=1.0):
    x = x.astype(np.float32, copy=True)
    if tf == "log":
        np.log(x.data, out=x.data)
        x.data += 1.0
    elif tf == "binary":
        x.data[:] = 1.0
    if use_idf:
        x.data *= idf_vec[x.indices]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    x = sp.diags((1.0 / norms).astype(np.float32)) @ x
    x.data *= w
    return x.tocsr()


def design(mats, tr, te, cfg):
    """Train / test feature matrices for row indices ``tr`` / ``te``."""
    xc, xw, cues = mats[:3]
    out = []
    icf = idf(xc[tr])
    iwf = idf(xw[tr])
    for rows in (tr, te):
        blocks = []
        if cfg.get("char_w", 1.0):
            blocks.append(weight(xc[rows], icf, tf=cfg.get("tf", "log"), use_idf=cfg.get("idf", True),
                                 w=cfg.get("char_w", 1.0)))
        if cfg.get("word_w", 1.0):
            blocks.append(weight(xw[rows], iwf, tf=cfg.get("tf", "log"), use_idf=cfg.get("idf", True),
                                 w=cfg.get("word_w", 1.0)))
        for xe, ew in zip(mats[3:], cfg.get("extra_w", ()), strict=False):  # extra n-gram views
            blocks.append(weight(xe[rows], idf(xe[tr]), w=ew))
        cw = cfg.get("cue_w", 0.05)
        if cw:
            c = cues[rows]
            if cfg.get("cue_scale"):
                c = c / np.maximum(cues[tr].max(axis=0), 1e-6)
            blocks.append(sp.csr_matrix(c * np.float32(cw)))
        out.append(sp.hstack(blocks, format="csr", dtype=np.float64))
    return out


def fit_clf(X, y, cfg, seed=0):
    w = None
    if cfg.get("balanced"):
        w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    clf = LinearEnsembleClassifier(
        members=cfg.get("members", ("svc", "nbsvc")), C_svc=cfg.get("C_svc", 2.0), C_nb=cfg.get("C_nb", 1.0),
        C_lr=cfg.get("C_lr", 30.0), nb_alpha=cfg.get("nb_alpha", 0.005),
        calibration_cv=cfg.get("cv", 0), random_state=seed)
    return clf.fit(X, y, sample_weight=w)


def scores(y, p, thr=0.5):
    pred = (p >= thr).astype(int)
    prec, rec, _, _ = precision_recall_fscore_support(y, pred, labels=[1], zero_division=0)
    return {"f1": round(float(f1_score(y, pred, average="macro")), 4), "P": round(float(prec[0]), 3),
            "R": round(float(rec[0]), 3)}


def best_threshold_f1(y, s):
    """Oracle: best macro-F1 over thresholds on the decision score (diagnostic only)."""
    qs = np.quantile(s, np.linspace(0.02, 0.98, 193))
    return round(max(f1_score(y, (s >= q).astype(int), average="macro") for q in qs), 4)


def run(mats, y, tr, te, cfg, seed=0):
    Xtr, Xte = design(mats, tr, te, cfg)
    clf = fit_clf(Xtr, y[tr], cfg, seed)
    p = clf.predict_proba(Xte)[:, 1]
    r = scores(y[te], p)
    r["oracle"] = best_threshold_f1(y[te], clf.decision_function(Xte))
    return r


def protocols(df):
    """Row-index pairs of every protocol."""
    ds, split = df["dataset"].to_numpy(), df["split"].fillna("").to_numpy()
    w21 = ds == "weibo21"
    tr = np.flatnonzero(w21 & (split == "train"))
    va = np.flatnonzero(w21 & (split == "val"))
    te = np.flatnonzero(w21 & (split == "test"))
    te_dedup = _drop_seen(df, te, tr)

    def cross(test_ds):
        test = np.flatnonzero(ds == test_ds)
        train = _drop_seen(df, np.flatnonzero(ds != test_ds), test)
        return train, test

    trva = np.concatenate([tr, va])
    # train+val -> test drops the test texts seen in val too (21 of them; rounds 1-4 kept them)
    return {"val": (tr, va), "proxy": cross("weibo_ma2016"), "test": (tr, te_dedup),
            "test_trval": (trva, _drop_seen(df, te, trva)), "ced": cross("weibo_ced")}


def _drop_seen(df, rows, seen):
    keys = set(df["text_key"].to_numpy()[seen])
    norms = set(df["norm"].to_numpy()[seen])
    tk, nm = df["text_key"].to_numpy(), df["norm"].to_numpy()
    return np.array([i for i in rows if tk[i] not in keys and nm[i] not in norms], dtype=np.int64)


def oof_calibrate(Xtr, ytr, groups, cfg, seed=0):
    """Platt parameters from out-of-fold scores; folds = ``groups`` (e.g. dataset) when given."""
    oof = np.zeros(len(ytr))
    if groups is None:
        splits = StratifiedKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr)
    else:
        splits = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in np.unique(groups)]
    for a, b in splits:
        c = fit_clf(Xtr[a], ytr[a], cfg, seed)
        oof[b] = c.decision_function(Xtr[b])
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr)
    return float(cal.coef_[0, 0]), float(cal.intercept_[0])


def dedup_rows(df, rows):
    """``rows`` with one row per distinct text (text_key, then normalised text); texts whose
    copies disagree on the label are dropped (as `nlp.data.all_three_dedup` does)."""
    s = df.iloc[rows].assign(_row=rows)
    ck = s.groupby("text_key")["label"].nunique()
    cn = s.groupby("norm")["label"].nunique()
    s = s[~s["text_key"].isin(ck[ck > 1].index) & ~s["norm"].isin(cn[cn > 1].index)]
    s = s.drop_duplicates("text_key").drop_duplicates("norm")
    return np.sort(s["_row"].to_numpy())


def calibrated_report(y_te, s, cal):
    """Scores of test margins ``s`` under the Platt fit ``cal``, with the margin where P = 0.5, the
    ranking oracle and the margin-0 score; and the 0/1 predictions (for paired SEs)."""
    p = cal.predict_proba(s.reshape(-1, 1))[:, 1]
    r = scores(y_te, p)
    r["thr_margin"] = round(-float(cal.intercept_[0]) / float(cal.coef_[0, 0]), 3)
    r["oracle"] = best_threshold_f1(y_te, s)
    r["m0"] = scores(y_te, (s > 0).astype(float))["f1"]
    return r, (p >= 0.5).astype(int)


def run_cal(mats, y, tr, te, cfg, seed=0, groups=None, folds=3):
    """Like `run` with out-of-fold Platt; ``groups`` (per train row) keep copies in one fold."""
    from sklearn.model_selection import GroupKFold
    Xtr, Xte = design(mats, tr, te, cfg)
    ytr = y[tr]
    oof = np.zeros(len(tr))
    if groups is None:
        sp_ = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr)
    else:
        sp_ = GroupKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr, groups)
    for a, b in sp_:
        oof[b] = fit_clf(Xtr[a], ytr[a], cfg, seed).decision_function(Xtr[b])
    cw = np.where(ytr == 1, 0.5 / ytr.mean(), 0.5 / (1 - ytr.mean())) if cfg.get("balanced") else None
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr, sample_weight=cw)
    clf = fit_clf(Xtr, ytr, cfg, seed)
    return calibrated_report(y[te], clf.decision_function(Xte), cal)[0]


def dup_groups(df, rows):
    """Group id per row: rows sharing a text_key or a normalised text share a group."""
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for col in ("text_key", "norm"):
        first = {}
        for i, v in enumerate(df[col].to_numpy()[rows]):
            j = first.setdefault(v, i)
            if j != i:
                parent[find(i)] = find(j)
    return np.array([find(i) for i in range(len(rows))])


def counts_stripped(df, chars, nf=2**20, char_range=(1, 3), word_range=(1, 2)):
    """`counts` with the characters in ``chars`` removed before char and word n-grams."""
    import re

    import nlp.classifier as C

    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(repr((len(df), chars, char_range, word_range, nf)).encode()).hexdigest()[:12]
    f = CACHE / f"counts_strip_{key}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    rx = re.compile("[" + re.escape(chars) + "]") if chars != "PUNCT" else re.compile(
        r"[^\w\s<>\u4e00-\u9fff]")
    norms = [rx.sub(" ", t) for t in df["norm"]]
    feats = C.HashedTextFeatures(char_ngram_range=char_range, word_ngram_range=word_range, n_features=nf)
    xc, xw = feats._counts(norms)
    cues = cue_matrix(df["norm"].tolist(), normalized=True)
    out = (xc.tocsr(), xw.tocsr(), cues)
    f.write_bytes(pickle.dumps(out, protocol=5))
    return out


# Calibrated variants: (characters stripped before n-grams, hashed width, harness config).
VARIANTS: dict[str, tuple[str | None, int, dict]] = {
    "base": (None, 2**20, {}),
    "strip 【】#": ("【】#", 2**20, {}),
    "strip PUNCT": ("PUNCT", 2**20, {}),
    "cue_w 0": (None, 2**20, {"cue_w": 0.0}),
    "nb_alpha 0.05": (None, 2**20, {"nb_alpha": 0.05}),
    "nf 2^18": (None, 2**18, {}),
    "strip + cue_w 0": ("【】#", 2**20, {"cue_w": 0.0}),
    "strip + cue_w 0.02": ("【】#", 2**20, {"cue_w": 0.02}),
}


# --------------------------------------------------------------------------- round 2
# Multi-source feature stability, source-balanced weights and more ensemble members. Every
# variant still ends in one coefficient per hashed column: column masks and member weights
# fold into that vector (the model stays one sparse dot product, see nlp/classifier.py).


class Lin:
    """A fitted linear score ``X @ coef + b`` (what every variant collapses to)."""

    def __init__(self, coef: np.ndarray, b: float) -> None:
        self.coef, self.b = coef, b

    def decision_function(self, X):
        return np.asarray(X @ self.coef).ravel() + self.b


def source_class_weights(y, src):
    """Each source weighs the same and, within a source, each class."""
    w = np.zeros(len(y))
    cells = [(s, c) for s in np.unique(src) for c in (0, 1) if ((src == s) & (y == c)).any()]
    for s, c in cells:
        m = (src == s) & (y == c)
        w[m] = len(y) / (len(cells) * m.sum())
    return w


def stability_mask(X, y, src, cfg):
    """Per-column factor in [0, 1]: shrink columns whose per-source NB log-count ratios
    disagree in sign (``stab="sign"``) or differ by more than ``stab_t`` (``stab="diff"``),
    among columns present in at least ``stab_df`` rows of every source."""
    srcs = np.unique(src)
    m = np.ones(X.shape[1])
    if len(srcs) < 2:
        return m
    alpha = cfg.get("stab_alpha", cfg.get("nb_alpha", 0.005))
    rs, dfs = [], []
    for s in srcs:
        rows = np.flatnonzero(src == s)
        rs.append(_nb(X[rows], y[rows], alpha))
        dfs.append(np.bincount(X[rows].indices, minlength=X.shape[1]))
    rs, dfs = np.vstack(rs), np.vstack(dfs)
    both = (dfs >= cfg.get("stab_df", 1)).all(axis=0)
    if cfg["stab"] == "sign":
        bad = both & (np.sign(rs).min(axis=0) != np.sign(rs).max(axis=0))
    else:
        bad = both & ((rs.max(axis=0) - rs.min(axis=0)) > cfg.get("stab_t", 2.0))
    if cfg.get("stab_keep_cues", True):
        bad[-N_CUES:] = False
    m[bad] = cfg.get("stab_shrink", 0.0)
    return m


def _nb(X, y, alpha, w=None):
    w = np.ones(X.shape[0]) if w is None else w
    p = alpha + np.asarray(X.T @ (w * (y == 1))).ravel()
    q = alpha + np.asarray(X.T @ (w * (y == 0))).ravel()
    return np.log((p / p.sum()) / (q / q.sum()))


def fit_ens(X, y, cfg, seed=0, src=None, grp=None):
    """Like `fit_clf` with round-2 options; ``cfg["ens"]`` lists members as
    (kind, C, weight, beta): kind svc | nbsvc | lr | nblr | ridge | hinge | nb (the NB ratio itself)."""
    from sklearn.svm import LinearSVC

    w = source_class_weights(y, src) if cfg.get("src_bal") else None
    if cfg.get("dup_w") and grp is not None:  # each distinct text weighs 1 in all
        w = (1.0 / np.bincount(grp)[grp]) * (len(y) / len(np.unique(grp)))
    if cfg.get("balanced"):
        w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    mask = stability_mask(X, y, src, cfg) if cfg.get("stab") else None
    Xm = X @ sp.diags(mask) if mask is not None else X
    Xm = sp.csr_matrix(Xm)
    ens = cfg.get("ens", [("svc", 2.0, 1.0, 1.0), ("nbsvc", 1.0, 1.0, 1.0)])
    r = _nb(Xm, y, cfg.get("nb_alpha", 0.005), w) if any(k.startswith("nb") for k, *_ in ens) else None
    seen = np.bincount(Xm.indices, minlength=Xm.shape[1]) > 0
    coef = np.zeros(X.shape[1])
    b_tot = 0.0
    for kind, C, mw, beta in ens:
        if kind == "nb":
            s1 = Xm @ r
            lr = LogisticRegression(C=1e4).fit(s1.reshape(-1, 1), y, sample_weight=w)
            wm, b = r * float(lr.coef_[0, 0]), float(lr.intercept_[0])
        else:
            Z = Xm @ sp.diags(r) if kind.startswith("nb") else Xm
            if kind.endswith("svc"):
                est = LinearSVC(C=C, random_state=seed)
            elif kind.endswith("ridge"):
                from sklearn.linear_model import RidgeClassifier
                est = RidgeClassifier(alpha=C, solver="sparse_cg")
            elif kind.endswith("hinge"):
                est = LinearSVC(C=C, loss="hinge", random_state=seed, max_iter=5000)
            else:
                est = LogisticRegression(C=C, max_iter=3000, random_state=seed)
            est.fit(Z, y, sample_weight=w)
            wm, b = est.coef_.ravel().astype(np.float64), float(est.intercept_[0])
            if kind.startswith("nb"):
                if beta < 1.0:  # Wang & Manning: w' = (1 - beta) * mean|w| + beta * w
                    wbar = np.abs(wm[seen]).mean()
                    wm = np.where(seen, (1 - beta) * wbar + beta * wm, 0.0)
                wm = wm * r
        sd = float(np.std(Xm @ wm + b)) or 1.0
        coef += mw * wm / sd
        b_tot += mw * b / sd
    if mask is not None:
        coef = coef * mask
    return Lin(coef, b_tot)


def run_cal2(mats, y, tr, te, cfg, seed=0, groups=None, src=None, folds=3):
    """`run_cal` for round-2 variants; also returns the test predictions (for paired SEs)."""
    from sklearn.model_selection import GroupKFold
    Xtr, Xte = design(mats, tr, te, cfg)
    ytr = y[tr]
    s_tr = src[tr] if src is not None else np.zeros(len(tr))
    oof = np.zeros(len(tr))
    if cfg.get("cal") == "source" and len(np.unique(s_tr)) > 1:
        sp_ = [(np.flatnonzero(s_tr != g), np.flatnonzero(s_tr == g)) for g in np.unique(s_tr)]
    elif groups is None:
        sp_ = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr)
    else:
        sp_ = GroupKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr, groups)
    for a, b in sp_:
        ga = None if groups is None else np.unique(groups[a], return_inverse=True)[1]
        oof[b] = fit_ens(Xtr[a], ytr[a], cfg, seed, s_tr[a], ga).decision_function(Xtr[b])
    cal = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr)
    gall = None if groups is None else np.unique(groups, return_inverse=True)[1]
    clf = fit_ens(Xtr, ytr, cfg, seed, s_tr, gall)
    return calibrated_report(y[te], clf.decision_function(Xte), cal)


def paired_se(y, a, b, n_boot=1000, seed=0):
    """Bootstrap SE of macro-F1(b) - macro-F1(a) on the same test rows."""
    rng = np.random.default_rng(seed)
    d = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        d.append(f1_score(y[i], b[i], average="macro") - f1_score(y[i], a[i], average="macro"))
    return float(np.std(d))


def sources(df, kind="dataset"):
    """Source label per row: the dataset, or for weibo21 rows its category (``kind="category"``)."""
    ds = df["dataset"].to_numpy().astype(object)
    if kind == "category":
        cat = df["category"].fillna("").to_numpy().astype(object)
        return np.where(ds == "weibo21", "w21:" + cat, ds)
    return ds


SVC2, NBSVC1 = ("svc", 2.0, 1.0, 1.0), ("nbsvc", 1.0, 1.0, 1.0)
ROUND2: dict[str, dict] = {
    "r2 base": {},
    # 1. multi-source stability (sources = datasets: no-op on val) and source x class weights
    "stab sign drop": {"stab": "sign"},
    "stab sign drop df3": {"stab": "sign", "stab_df": 3},
    "stab sign shrink .5": {"stab": "sign", "stab_shrink": 0.5},
    "stab diff>2 drop": {"stab": "diff", "stab_t": 2.0},
    "stab diff>1 shrink .5": {"stab": "diff", "stab_t": 1.0, "stab_shrink": 0.5},
    "src x class weights": {"src_bal": True},
    "src x class weights + stab sign drop": {"src_bal": True, "stab": "sign"},
    # the same with weibo21 categories as sources (acts on val too)
    "cat: stab sign drop": {"stab": "sign", "src": "category"},
    "cat: stab sign drop df3": {"stab": "sign", "stab_df": 3, "src": "category"},
    "cat: src x class weights": {"src_bal": True, "src": "category"},
    # 2. more members, one vector
    "+ lr C=10": {"ens": [SVC2, NBSVC1, ("lr", 10.0, 1.0, 1.0)]},
    "+ nblr C=10": {"ens": [SVC2, NBSVC1, ("nblr", 10.0, 1.0, 1.0)]},
    "nbsvc beta .25 (W&M)": {"ens": [SVC2, ("nbsvc", 1.0, 1.0, 0.25)]},
    "nbsvc beta .5": {"ens": [SVC2, ("nbsvc", 1.0, 1.0, 0.5)]},
    "+ nb member w .5": {"ens": [SVC2, NBSVC1, ("nb", 0.0, 0.5, 1.0)]},
    "svc C .5 + svc C 8 + nbsvc": {"ens": [("svc", 0.5, 1.0, 1.0), ("svc", 8.0, 1.0, 1.0), NBSVC1]},
    "svc + nbsvc C .3 + nbsvc C 3": {"ens": [SVC2, ("nbsvc", 0.3, 1.0, 1.0), ("nbsvc", 3.0, 1.0, 1.0)]},
    "+ ridge a=1": {"ens": [SVC2, NBSVC1, ("ridge", 1.0, 1.0, 1.0)]},
    "+ hinge svc C=1": {"ens": [SVC2, NBSVC1, ("hinge", 1.0, 1.0, 1.0)]},
    # 3. calibration on leave-one-source-out scores (mimics a shift to an unseen source)
    "cal leave-source-out": {"cal": "source"},
    "cat: cal leave-category-out": {"cal": "source", "src": "category"},
    # 3. each distinct text weighs 1 (the cross-dataset train sides repeat texts)
    "dup-group weights": {"dup_w": True},
    # 2. an extra n-gram view as a third hashed block (its own idf and l2 norm)
    "+ char 2-4 view w .7": {"views": [("char", 2, 4)], "extra_w": (0.7,)},
    "+ word 1-3 view w .7": {"views": [("word", 1, 3)], "extra_w": (0.7,)},
    # the proxy-positive round-2 changes together
    "combo: cat weights + nb member + char 2-4 view": {
        "src_bal": True, "src": "category", "ens": [SVC2, NBSVC1, ("nb", 0.0, 0.5, 1.0)],
        "views": [("char", 2, 4)], "extra_w": (0.7,)},
}


def extra_views(df, views):
    """Extra hashed count blocks: ``("char", lo, hi)`` or ``("word", lo, hi)`` (cached)."""
    out = []
    for kind, lo, hi in views:
        m = counts(df, char_range=(lo, hi)) if kind == "char" else counts(df, word_range=(lo, hi))
        out.append(m[0] if kind == "char" else m[1])
    return out


def main2(names: list[str], seeds: tuple[int, ...] = (0,), out: Path | None = None) -> None:

    df = frame()
    y = df["label"].to_numpy()
    prots = protocols(df)
    mats = counts(df)
    groups = {k: dup_groups(df, prots[k][0]) for k in ("val", "proxy")}
    base_pred: dict[tuple[str, int], np.ndarray] = {}
    for name in names or list(ROUND2):
        cfg = ROUND2[name]
        src = sources(df, cfg.get("src", "dataset"))
        m = mats if not cfg.get("views") else (*mats, *extra_views(df, cfg["views"]))
        for seed in seeds:
            res = {}
            for k in ("val", "proxy"):
                r, pred = run_cal2(m, y, *prots[k], cfg, seed, groups[k], src)
                res[k] = versus_base(r, pred, y[prots[k][1]], base_pred, (k, seed), is_base=name == "r2 base")
            record(out, {"name": name, "seed": seed, **res})


def versus_base(r: dict, pred: np.ndarray, y_te: np.ndarray, base_pred: dict, key: tuple[str, int], *,
                is_base: bool) -> dict:
    """Remember the base's predictions, or add a variant's difference to them (with a paired
    bootstrap SE) to its result ``r``."""
    if is_base:
        base_pred[key] = pred
    elif key in base_pred:
        r["d_vs_base"] = round(r["f1"] - float(f1_score(y_te, base_pred[key], average="macro")), 4)
        r["d_se"] = round(paired_se(y_te, base_pred[key], pred), 4)
    return r


def record(out: Path | None, row: dict) -> None:
    """Print one result line and append it to ``out`` (JSON lines)."""
    import json

    line = json.dumps(row, ensure_ascii=False)
    print(line, flush=True)
    if out is not None:
        with out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def main(names: list[str]) -> None:
    import json

    df = frame()
    y = df["label"].to_numpy()
    prots = protocols(df)
    for name in names or list(VARIANTS):
        strip, nf, cfg = VARIANTS[name]
        mats = counts(df, nf=nf) if strip is None else counts_stripped(df, strip, nf=nf)
        res = {k: run_cal(mats, y, *prots[k], cfg, groups=dup_groups(df, prots[k][0])) for k in ("val", "proxy")}
        print(name, json.dumps(res, ensure_ascii=False), flush=True)


def seeds_and_out(args: list[str]) -> tuple[list[str], tuple[int, ...], Path | None]:
    """``[--seeds 0,1,2] [--out FILE.jsonl] VARIANT ...`` -> (variants, seeds, out file)."""
    seeds: tuple[int, ...] = (0,)
    out = None
    while args and args[0].startswith("--"):
        flag, val = args[0], args[1]
        args = args[2:]
        if flag == "--seeds":
            seeds = tuple(int(x) for x in val.split(","))
        elif flag == "--out":
            out = Path(val)
    return args, seeds, out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--round2"]:
        # --round2 [--seeds 0,1,2] [--out FILE.jsonl] [VARIANT ...]
        main2(*seeds_and_out(sys.argv[2:]))
    else:
        main(sys.argv[1:])
