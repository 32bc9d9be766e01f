"""Word embeddings from unlabelled Weibo repost/comment text for the rumor classifier.

Question: do word vectors trained by us on the UNLABELLED repost and comment texts in
``../shared/data`` (weibo_ced ``ced_reposts.jsonl.gz``, weibo_ma2016
``ma2016_reposts_first50.jsonl.gz``) improve the shipped classifier on the selection
protocols of `bench/experiments/exp_quality.py` (val, proxy)?

What would ship is numbers only: a float16 table of B rows (B a power of two), row
``col % B`` for the word-unigram column ``col`` that `nlp.scoring.hash_word_ngrams`
already gives each token (so the row is ``hash % B``). Word2Vec is therefore trained on
the hashed unigram columns (tokens = column ids at 2^20, collisions there included), and
the table is the count-weighted mean of the column vectors that share ``col % B``
(collisions at B included). A post's embedding is the weighted mean of its unigram rows,
l2-normalised: ``E = rownorm((Xu . weights) @ T)`` from the unigram count matrix.

Contamination: the unlabelled corpus of a protocol holds no cascade of a source post whose
text_key is in that protocol's test set (see `corpus_mask`).

    python -m bench.experiments.exp_embed prep          # normalise + segment + hash (cached)
    python -m bench.experiments.exp_embed train CORPUS  # Word2Vec on one corpus (cached)
    python -m bench.experiments.exp_embed run [--seeds 0,1,2] [--out F.jsonl] [VARIANT ...]

``train val+train`` / ``train proxy+train5``: the protocol's repost corpus plus its own labelled
TRAINING texts (text only; 1 or 5 copies). Variants (``VARIANTS``): ``aug`` (dense block
appended to the sparse features, shipped ensemble, NB ratio on the sparse columns only),
``stack`` (LR on the embeddings, its margin combined with the ensemble's by a logistic fit on
out-of-fold margins), ``clu`` (bag of k-means word clusters), ``rand*`` (control: random
vectors in the same hashed table). Results: bench/experiments/results/classifier_embed_experiments.{md,jsonl}.
No variant met the bar for the test protocols, so no test mode was written.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

CACHE = ROOT / "var" / "cache" / "embed"
NF = 2**20


def shared():
    from nlp import data
    return data.shared_data_dir()


# --------------------------------------------------------------------------- corpus
def prep(batch: int = 20000) -> None:
    """Every repost/comment text -> normalised, segmented, hashed unigram columns.

    Writes ``corpus.npz``: ``cols`` (int32, all tokens), ``doc_ptr`` (token offsets per
    text), ``casc`` (cascade index per text) and ``casc_ds`` / ``casc_id`` (dataset and
    source-post id of each cascade)."""
    from nlp.classifier import HashedTextFeatures
    from nlp.normalize import normalize
    from nlp.scoring import hash_word_ngrams

    CACHE.mkdir(parents=True, exist_ok=True)
    feats = HashedTextFeatures()
    d = shared()
    casc_ds, casc_id, casc_of_text, texts = [], [], [], []

    def records():
        with gzip.open(d / "weibo_ced" / "ced_reposts.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                yield "weibo_ced", str(o["id"]), [r.get("text") or "" for r in o["reposts"]]
        with gzip.open(d / "weibo_ma2016" / "ma2016_reposts_first50.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                yield "weibo_ma2016", str(o["eid"]), [r.get("text") or "" for r in o["reposts_first"]]

    for ds, sid, ts in records():
        casc_ds.append(ds)
        casc_id.append(sid)
        k = len(casc_ds) - 1
        for t in ts:
            if t.strip():
                texts.append(t)
                casc_of_text.append(k)
    print(f"{len(casc_ds)} cascades, {len(texts)} non-empty texts", flush=True)
    cols, lens = [], []
    t0 = time.time()
    for i in range(0, len(texts), batch):
        toks = [feats._tokens(normalize(t)) for t in texts[i : i + batch]]
        _, c, _, _ = hash_word_ngrams(toks, 1, 1, NF)
        cols.append(c.astype(np.int32))
        lens.append(np.array([len(x) for x in toks], dtype=np.int64))
        if (i // batch) % 10 == 0:
            print(f"  {i + batch} texts, {time.time() - t0:.0f} s", flush=True)
    lens_ = np.concatenate(lens)
    np.savez(CACHE / "corpus.npz", cols=np.concatenate(cols), doc_ptr=np.concatenate([[0], np.cumsum(lens_)]),
             casc=np.array(casc_of_text, dtype=np.int32), casc_ds=np.array(casc_ds), casc_id=np.array(casc_id))
    print(f"done: {lens_.sum()} tokens, {time.time() - t0:.0f} s", flush=True)


def load_corpus():
    z = np.load(CACHE / "corpus.npz")
    return {k: z[k] for k in z.files}


def corpus_mask(name: str, corpus=None) -> tuple[np.ndarray, dict]:
    """Cascades (bool per cascade) allowed in the unlabelled corpus of a protocol.

    * ``w21`` (val, weibo21 test): both files minus cascades whose source post's text_key
      or normalised text is in weibo21 val or test (any category);
    * ``proxy`` (test weibo_ma2016): ced_reposts only, minus cascades whose source is in
      weibo_ma2016;
    * ``ced`` (test weibo_ced): ma2016 reposts only, minus cascades whose source is in weibo_ced.

    Cascades whose source post has no text in the labelled table (weibo_ma2016 events
    missing from the snapshot) are dropped everywhere: their text_key is unknown."""
    import pandas as pd

    from nlp import data
    from nlp.normalize import normalize

    c = corpus or load_corpus()
    raw = pd.read_csv(shared() / "combined_text_label.csv", dtype={"id": str, "split": str, "text_key": str})
    raw = raw[raw["text"].notna()]
    raw = raw.assign(norm=[normalize(str(t)) for t in raw["text"]])
    src = {(d, i): (k, n) for d, i, k, n in zip(raw["dataset"], raw["id"], raw["text_key"], raw["norm"], strict=True)}
    if name == "w21":
        test = raw[(raw["dataset"] == "weibo21") & raw["split"].isin(["val", "test"])]
        keep_ds = {"weibo_ced", "weibo_ma2016"}
    elif name == "proxy":
        test = raw[raw["dataset"] == "weibo_ma2016"]
        keep_ds = {"weibo_ced"}
    elif name == "ced":
        test = raw[raw["dataset"] == "weibo_ced"]
        keep_ds = {"weibo_ma2016"}
    else:
        raise ValueError(name)
    del data
    keys, norms = set(test["text_key"]), set(test["norm"])
    ok = np.zeros(len(c["casc_ds"]), dtype=bool)
    info = {"excluded_shared": 0, "excluded_no_source": 0}
    for j, (d, i) in enumerate(zip(c["casc_ds"], c["casc_id"], strict=True)):
        if d not in keep_ds:
            continue
        s = src.get((str(d), str(i)))
        if s is None:
            info["excluded_no_source"] += 1
            continue
        if s[0] in keys or s[1] in norms:
            info["excluded_shared"] += 1
            continue
        ok[j] = True
    n_text = np.bincount(c["casc"], minlength=len(ok))
    info.update(corpus=name, files=sorted(keep_ds), cascades=int(ok.sum()), texts=int(n_text[ok].sum()))
    return ok, info


def train_side_sentences(prot: str) -> list[list[str]]:
    """Hashed unigram columns of the labelled TRAINING texts of protocol ``prot`` (no labels
    used; the test side never enters)."""
    from bench.experiments import exp_quality as q
    df = q.frame()
    tr = q.protocols(df)[prot][0]
    X = unigram_counts(df)[tr].tocsr()
    from nlp.classifier import HashedTextFeatures
    from nlp.scoring import hash_word_ngrams
    f = HashedTextFeatures()
    toks = [f._tokens(t) for t in df["norm"].to_numpy()[tr]]
    _, c, _, _ = hash_word_ngrams(toks, 1, 1, NF)
    del X
    ptr = np.concatenate([[0], np.cumsum([len(t) for t in toks])])
    return [[str(x) for x in c[ptr[i]:ptr[i + 1]].tolist()] for i in range(len(toks)) if ptr[i + 1] > ptr[i]]


def sentences(name: str):
    if "+train" in name:  # "<prot>+train[N]": the protocol's repost corpus + its training texts (N copies)
        prot, rep = name.split("+train")
        out, info = sentences(CORPUS[prot])
        extra = train_side_sentences(prot) * int(rep or 1)
        info.update(corpus=name, train_texts=len(extra), tokens=info["tokens"] + sum(len(x) for x in extra))
        return out + extra, info
    c = load_corpus()
    ok, info = corpus_mask(name, c)
    keep = ok[c["casc"]]
    ptr, cols = c["doc_ptr"], c["cols"]
    vocab = {}
    out = []
    for i in np.flatnonzero(keep):
        a, b = ptr[i], ptr[i + 1]
        if b > a:
            out.append([vocab.setdefault(x, str(x)) for x in cols[a:b].tolist()])
    info["tokens"] = int(sum(len(x) for x in out))
    return out, info


W2V = {"dim": 64, "window": 5, "min_count": 3, "sg": 1, "epochs": 5, "negative": 5, "sample": 1e-4}


def train(name: str, **kw) -> None:
    """Word2Vec (gensim) on the hashed unigram columns of one protocol corpus (cached)."""
    from gensim.models import Word2Vec

    p = {**W2V, **kw}
    tag = f"{name}_d{p['dim']}_sg{p['sg']}_e{p['epochs']}"
    sents, info = sentences(name)
    print(json.dumps(info), flush=True)
    t0, c0 = time.time(), time.process_time()
    m = Word2Vec(sents, vector_size=p["dim"], window=p["window"], min_count=p["min_count"], sg=p["sg"],
                 epochs=p["epochs"], negative=p["negative"], sample=p["sample"], workers=2, seed=1)
    cols = np.array([int(w) for w in m.wv.index_to_key], dtype=np.int64)
    cnt = np.array([m.wv.get_vecattr(w, "count") for w in m.wv.index_to_key], dtype=np.int64)
    info.update(params=p, vocab=len(cols), wall_s=round(time.time() - t0), cpu_s=round(time.process_time() - c0))
    np.savez(CACHE / f"w2v_{tag}.npz", cols=cols, cnt=cnt, vec=m.wv.vectors.astype(np.float32),
             info=json.dumps(info))
    print(json.dumps(info), flush=True)


# --------------------------------------------------------------------------- tables, doc vectors
def table(tag: str, B: int, sif_a: float | None = None) -> tuple[np.ndarray, dict]:
    """float16 (B, dim) table: row ``col % B`` = count-weighted mean of the Word2Vec vectors of
    the 2^20 unigram columns in that bucket (times the SIF weight a / (a + p(bucket)) when
    ``sif_a``). Buckets no corpus word falls in stay zero."""
    import re
    m = re.search(r"_rand(\d*)_", tag)  # control: same words and buckets, random Gaussian vectors
    rand = m is not None
    base_tag = re.sub(r"_rand\d*_", "_", tag)
    z = np.load(CACHE / f"w2v_{base_tag}.npz")
    cols, cnt, vec = z["cols"], z["cnt"].astype(np.float64), z["vec"].astype(np.float64)
    if rand:
        vec = np.random.default_rng(int(m.group(1) or 0)).standard_normal(vec.shape) * vec.std()
    bk = cols % B
    T = np.zeros((B, vec.shape[1]))
    np.add.at(T, bk, vec * cnt[:, None])
    tot = np.bincount(bk, weights=cnt, minlength=B)
    nz = tot > 0
    T[nz] /= tot[nz, None]
    if sif_a:
        T[nz] *= (sif_a / (sif_a + tot[nz] / cnt.sum()))[:, None]
    info = {"rows": B, "dim": int(vec.shape[1]), "filled": int(nz.sum()), "words": len(cols),
            "colliding_words": int(len(cols) - len(np.unique(bk))), "mb_f16": round(B * vec.shape[1] * 2 / 2**20, 2)}
    return T.astype(np.float16), info


_UNI: dict = {}


def unigram_counts(df) -> sp.csr_matrix:
    """Hashed word-unigram count matrix (2^20 columns) of the labelled rows: the unigram
    part of the word block `HashedFeatureMath` already builds."""
    if "x" not in _UNI:
        from nlp.classifier import HashedTextFeatures
        from nlp.scoring import _count_matrix, hash_word_ngrams
        f = HashedTextFeatures()
        toks = [f._tokens(t) for t in df["norm"]]
        r, c, _, _ = hash_word_ngrams(toks, 1, 1, NF)
        _UNI["x"] = _count_matrix(r, c, len(toks), NF)
    return _UNI["x"]


def doc_vectors(Xu: sp.csr_matrix, T: np.ndarray, tr: np.ndarray, weighting: str = "idf") -> np.ndarray:
    """l2-normalised weighted mean of a post's unigram rows: rownorm((tf * weight) @ T).

    ``weighting``: ``idf`` (smoothed idf of the unigram column on the training rows ``tr``,
    as the word block computes it; log tf), ``sif`` (the table already carries SIF weights;
    raw tf), ``mean`` (raw tf)."""
    B = T.shape[0]
    x = Xu.astype(np.float64).tocsr(copy=True)
    if weighting == "idf":
        df_ = np.bincount(x[tr].indices, minlength=x.shape[1])
        iv = np.log((1.0 + len(tr)) / (1.0 + df_)) + 1.0
        x.data = (np.log(x.data) + 1.0) * iv[x.indices]
    x = sp.csr_matrix((x.data, x.indices % B, x.indptr), shape=(x.shape[0], B))
    x.sum_duplicates()
    E = np.asarray(x @ T.astype(np.float64))
    n = np.linalg.norm(E, axis=1)
    n[n == 0] = 1.0
    return E / n[:, None]


def cluster_map(T: np.ndarray, K: int, seed: int = 0) -> np.ndarray:
    """Bucket -> cluster id (int16 table; -1 for empty buckets): k-means (cosine, via
    l2-normalised rows) of the filled table rows. Word clusters as a bag-of-clusters block
    (Turian et al. 2010 style), cached per table."""
    from sklearn.cluster import MiniBatchKMeans
    V = T.astype(np.float32)
    nz = np.flatnonzero(np.abs(V).sum(axis=1) > 0)
    U = V[nz] / np.linalg.norm(V[nz], axis=1, keepdims=True)
    km = MiniBatchKMeans(K, random_state=seed, batch_size=4096, n_init=3, max_iter=100).fit(U)
    out = np.full(T.shape[0], -1, dtype=np.int16)
    out[nz] = km.labels_
    return out


def cluster_counts(Xu: sp.csr_matrix, cmap: np.ndarray) -> sp.csr_matrix:
    """Count matrix of word clusters per post (tokens in empty buckets dropped)."""
    B = len(cmap)
    x = Xu.tocoo()
    c = cmap[x.col % B].astype(np.int64)
    ok = c >= 0
    K = int(cmap.max()) + 1
    m = sp.csr_matrix((x.data[ok].astype(np.float32), (x.row[ok], c[ok])), shape=(Xu.shape[0], K))
    m.sum_duplicates()
    return m


# --------------------------------------------------------------------------- fits
def nb_ratio(X, y, alpha=0.005):
    from bench.experiments.exp_quality import _nb
    return _nb(X, y, alpha)


def fit_aug(X, y, n_dense: int, seed=0, C_svc=2.0, C_nb=1.0, nb_alpha=0.005):
    """The shipped ensemble (SVC C=2 + NB-SVC C=1, each scaled by its score SD, summed; as
    `exp_quality.fit_ens` with the default members) on [sparse | dense]: the NB ratio scales
    the sparse columns only (dense columns get ratio 1). One coefficient vector."""
    from sklearn.svm import LinearSVC

    from bench.experiments.exp_quality import Lin
    ns = X.shape[1] - n_dense
    r = np.ones(X.shape[1])
    if ns:
        r[:ns] = nb_ratio(X[:, :ns], y, nb_alpha)
    coef, b_tot = np.zeros(X.shape[1]), 0.0
    for kind, C in (("svc", C_svc), ("nbsvc", C_nb)):
        Z = X @ sp.diags(r) if kind == "nbsvc" else X
        est = LinearSVC(C=C, random_state=seed).fit(Z, y)
        wm, b = est.coef_.ravel().astype(np.float64), float(est.intercept_[0])
        if kind == "nbsvc":
            wm = wm * r
        sd = float(np.std(X @ wm + b)) or 1.0
        coef += wm / sd
        b_tot += b / sd
    return Lin(coef, b_tot)


def fit_emb_lr(E, y, C=1.0, seed=0):
    """Linear model on the doc embeddings alone (the second margin of the stack)."""
    from sklearn.linear_model import LogisticRegression

    from bench.experiments.exp_quality import Lin
    m = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(E, y)
    return Lin(m.coef_.ravel().astype(np.float64), float(m.intercept_[0]))


def run_variant(Xs_tr, Xs_te, E_tr, E_te, ytr, yte, cfg, seed, groups):
    """Fit + 3-fold out-of-fold calibration (copies of a text in one fold, as round 2).

    cfg["mode"]: ``base`` (sparse only), ``aug`` (dense block appended with weight
    cfg["w"]), ``stack`` (Platt-like LR on the two out-of-fold margins [ensemble, embedding
    LR]; the final score is a1 * ens + a2 * emb + b, still linear in the features),
    ``aug+stack``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from bench.experiments.exp_quality import best_threshold_f1, scores
    mode = cfg.get("mode", "base")
    w = cfg.get("w", 1.0)
    if cfg.get("clu") is not None:  # bag-of-clusters block: sparse, joins the NB-scaled part
        Xs_tr = sp.hstack([Xs_tr, cfg["clu"][0]], format="csr")
        Xs_te = sp.hstack([Xs_te, cfg["clu"][1]], format="csr")
    if mode.startswith("aug"):
        Xtr = sp.hstack([Xs_tr, sp.csr_matrix(E_tr * w)], format="csr")
        Xte = sp.hstack([Xs_te, sp.csr_matrix(E_te * w)], format="csr")
        nd = E_tr.shape[1]
    else:
        Xtr, Xte, nd = Xs_tr, Xs_te, 0
    stack = mode.endswith("stack")
    folds = GroupKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(ytr)), ytr, groups)
    oof = np.zeros((len(ytr), 2))
    for a, b in folds:
        oof[b, 0] = fit_aug(Xtr[a], ytr[a], nd, seed).decision_function(Xtr[b])
        if stack:
            oof[b, 1] = fit_emb_lr(E_tr[a], ytr[a], cfg.get("C_emb", 1.0), seed).decision_function(E_tr[b])
    k = 2 if stack else 1
    cal = LogisticRegression(C=1e4).fit(oof[:, :k], ytr)
    clf = fit_aug(Xtr, ytr, nd, seed)
    S = np.zeros((len(yte), 2))
    S[:, 0] = clf.decision_function(Xte)
    if stack:
        S[:, 1] = fit_emb_lr(E_tr, ytr, cfg.get("C_emb", 1.0), seed).decision_function(E_te)
    p = cal.predict_proba(S[:, :k])[:, 1]
    z = S[:, :k] @ cal.coef_.ravel() + cal.intercept_[0]  # the one calibrated linear score
    r = scores(yte, p)
    r["oracle"] = best_threshold_f1(yte, z)
    r["m0"] = scores(yte, (S[:, 0] > 0).astype(float))["f1"]
    r["cal"] = [round(float(v), 3) for v in (*cal.coef_.ravel(), cal.intercept_[0])]
    if stack:
        r["emb_only_oracle"] = best_threshold_f1(yte, S[:, 1])
    return r, (p >= 0.5).astype(int)


# --------------------------------------------------------------------------- driver
CORPUS = {"val": "w21", "proxy": "proxy", "test": "w21", "test_trval": "w21", "ced": "ced"}
EMB = {"tag": "d64_sg1_e5", "B": 2**18, "weighting": "idf", "sif_a": None}
VARIANTS: dict[str, dict] = {
    "base": {"mode": "base"},
    "aug w.5": {"mode": "aug", "w": 0.5},
    "aug w1": {"mode": "aug", "w": 1.0},
    "aug w2": {"mode": "aug", "w": 2.0},
    "stack": {"mode": "stack"},
    "stack C10": {"mode": "stack", "C_emb": 10.0},
    "aug w1 sif": {"mode": "aug", "w": 1.0, "weighting": "sif", "sif_a": 1e-3},
    "stack sif": {"mode": "stack", "weighting": "sif", "sif_a": 1e-3},
    "aug w1 B2^17": {"mode": "aug", "w": 1.0, "B": 2**17},
    "aug w1 B2^20": {"mode": "aug", "w": 1.0, "B": 2**20},
    "stack B2^20": {"mode": "stack", "B": 2**20},
    "stack C100": {"mode": "stack", "C_emb": 100.0},
    "aug w.25": {"mode": "aug", "w": 0.25},
    "aug w.5 + stack": {"mode": "aug+stack", "w": 0.5},
    "d100 aug w.25": {"mode": "aug", "w": 0.25, "tag": "d100_sg1_e10"},
    "d100 aug w.5": {"mode": "aug", "w": 0.5, "tag": "d100_sg1_e10"},
    "d100 aug w.75": {"mode": "aug", "w": 0.75, "tag": "d100_sg1_e10"},
    "d100 stack": {"mode": "stack", "tag": "d100_sg1_e10"},
    "d100 clu K1024 w.5": {"K": 1024, "w_clu": 0.5, "tag": "d100_sg1_e10"},
    "pt d100 aug w.25": {"mode": "aug", "w": 0.25, "tag": "pt_d100_sg1_e10"},
    "pt d100 aug w.5": {"mode": "aug", "w": 0.5, "tag": "pt_d100_sg1_e10"},
    "rand d100 aug w.25": {"mode": "aug", "w": 0.25, "tag": "rand_d100_sg1_e10"},
    "rand d100 aug w.5": {"mode": "aug", "w": 0.5, "tag": "rand_d100_sg1_e10"},
    "rand1 d100 aug w.25": {"mode": "aug", "w": 0.25, "tag": "rand1_d100_sg1_e10"},
    "rand2 d100 aug w.25": {"mode": "aug", "w": 0.25, "tag": "rand2_d100_sg1_e10"},
    "pt d100 aug w.25 B2^17": {"mode": "aug", "w": 0.25, "tag": "pt_d100_sg1_e10", "B": 2**17},
    "pt d100 aug w.25 B2^16": {"mode": "aug", "w": 0.25, "tag": "pt_d100_sg1_e10", "B": 2**16},
    "pt d100 stack": {"mode": "stack", "tag": "pt_d100_sg1_e10"},
    "pt5 d100 aug w.25": {"mode": "aug", "w": 0.25, "tag": "pt5_d100_sg1_e10"},
    "pt5 d100 aug w.5": {"mode": "aug", "w": 0.5, "tag": "pt5_d100_sg1_e10"},
    "rand clu K1024 w.3": {"K": 1024, "w_clu": 0.3, "tag": "rand_d64_sg1_e5"},
    "combo: pt d100 aug w.25 + clu K1024 w.3": {"mode": "aug", "w": 0.25, "tag": "pt_d100_sg1_e10",
                                                "K": 1024, "w_clu": 0.3, "clu_tag": "d64_sg1_e5"},
    "clu K256 w.3": {"K": 256, "w_clu": 0.3},
    "clu K256 w.5": {"K": 256, "w_clu": 0.5},
    "clu K1024 w.3": {"K": 1024, "w_clu": 0.3},
    "clu K1024 w.5": {"K": 1024, "w_clu": 0.5},
    "clu K4096 w.5": {"K": 4096, "w_clu": 0.5},
}


class Ctx:
    """Per-process cache: frame, protocols, sparse designs, doc vectors."""

    def __init__(self):
        from bench.experiments import exp_quality as q
        self.q = q
        self.df = q.frame()
        self.y = self.df["label"].to_numpy()
        self.prots = q.protocols(self.df)
        self.mats = q.counts(self.df)
        self.Xu = unigram_counts(self.df)
        self._d, self._e, self._g = {}, {}, {}
        self.tables = {}

    def design(self, k):
        if k not in self._d:
            self._d[k] = self.q.design(self.mats, *self.prots[k], {})
            self._g[k] = self.q.dup_groups(self.df, self.prots[k][0])
        return self._d[k], self._g[k]

    def clusters(self, k, cfg):
        """Weighted (log tf, train idf, l2, weight cfg["w_clu"]) bag-of-clusters block."""
        e = {kk: cfg.get(kk, v) for kk, v in EMB.items()}
        e["tag"] = cfg.get("clu_tag", e["tag"])
        key = ("clu", k, e["tag"], e["B"], cfg["K"], cfg.get("w_clu", 0.5))
        if key not in self._e:
            T, _ = table(f"{CORPUS[k]}_{e['tag']}", e["B"])
            f = CACHE / f"cmap_{CORPUS[k]}_{e['tag']}_{e['B']}_{cfg['K']}.npy"
            if not f.exists():
                np.save(f, cluster_map(T, cfg["K"]))
            C = cluster_counts(self.Xu, np.load(f)).tocsr()
            tr, te = self.prots[k]
            iv = self.q.idf(C[tr])
            self._e[key] = tuple(self.q.weight(C[rows], iv, w=cfg.get("w_clu", 0.5)) for rows in (tr, te))
        return self._e[key]

    def emb(self, k, cfg):
        e = {kk: cfg.get(kk, v) for kk, v in EMB.items()}
        key = (k, e["tag"], e["B"], e["weighting"], e["sif_a"])
        if key not in self._e:
            tag = f"{k}+train{e['tag'][2:]}" if e["tag"].startswith("pt") else f"{CORPUS[k]}_{e['tag']}"
            T, info = table(tag, e["B"], e["sif_a"])
            self.tables[key] = {"table": tag, **info}
            tr, te = self.prots[k]
            E = doc_vectors(self.Xu, T, tr, e["weighting"])
            self._e[key] = (E[tr], E[te])
        return self._e[key], self.tables[key]


def main(names, seeds=(0,), out=None, prots=("val", "proxy")):
    from sklearn.metrics import f1_score
    cx = Ctx()
    base_pred = {}
    for name in ["base"] + [n for n in names if n != "base"]:
        cfg = VARIANTS[name]
        for seed in seeds:
            res = {}
            for k in prots:
                (Xtr, Xte), g = cx.design(k)
                (Etr, Ete), tinfo = cx.emb(k, cfg)
                tr, te = cx.prots[k]
                t0 = time.time()
                rc = dict(cfg)
                if cfg.get("K"):
                    rc["clu"] = cx.clusters(k, cfg)
                r, pred = run_variant(Xtr, Xte, Etr, Ete, cx.y[tr], cx.y[te], rc, seed, g)
                r["s"] = round(time.time() - t0, 1)
                yt = cx.y[te]
                if name == "base":
                    base_pred[(k, seed)] = pred
                else:
                    b = base_pred[(k, seed)]
                    r["d_vs_base"] = round(r["f1"] - float(f1_score(yt, b, average="macro")), 4)
                    r["d_se"] = round(cx.q.paired_se(yt, b, pred), 4)
                    r["table"] = tinfo
                res[k] = r
            line = json.dumps({"name": name, "seed": seed, "cfg": cfg, **res}, ensure_ascii=False)
            print(line, flush=True)
            if out is not None:
                with open(out, "a", encoding="utf-8") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prep":
        prep()
    elif cmd == "train":
        kw = {k: (float(v) if "." in v or "e-" in v else int(v)) for k, v in (a.split("=") for a in sys.argv[3:])}
        train(sys.argv[2], **kw)
    elif cmd == "run":
        from bench.experiments.exp_quality import seeds_and_out

        main(*seeds_and_out(sys.argv[2:]))
