"""Scores the prevalence benchmark works on, computed once and cached under var/cache/.

The model is trained as the shipped cross-dataset model is (weibo21 + weibo_ma2016 minus every
text shared with weibo_ced: `nlp.data.cross_dataset`), with the shipped parameters. Cached:
its calibrated scores on weibo_ced, the out-of-fold scores of a 3-fold CV on its own training
set (the held-out confusion matrix black-box shift estimation needs), and, per weibo_ced text,
whether it has a near-copy (shared character 5-gram share >= 0.5) in the training set.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from nlp import data, training  # noqa: E402
from nlp.classifier import RumorModel, train_rumor_model  # noqa: E402

CACHE = ROOT / "var" / "cache" / "bench_prevalence_scores.npz"
MODEL_DIR = ROOT / "var" / "cache" / "bench_prevalence_model"


def _trained() -> tuple[RumorModel, data.Split, data.Split]:
    c = data.cross_dataset("weibo_ced")
    if (MODEL_DIR / "model.skops").is_file():
        return RumorModel.load(MODEL_DIR), c["train"], c["test"]
    m = train_rumor_model(c["train"].texts, c["train"].labels, seed=training.SEED, params=training.SHIPPED_PARAMS)
    m.save(MODEL_DIR)
    return m, c["train"], c["test"]


def load(folds: int = 3) -> dict[str, np.ndarray]:
    """The cached arrays (computing them the first time: several minutes)."""
    if CACHE.is_file():
        with np.load(CACHE) as z:
            return {k: z[k] for k in z.files}
    t0 = time.time()
    model, train, test = _trained()
    print(f"model ready in {time.time() - t0:.0f}s", flush=True)
    ced_p = model.predict_proba(test.texts)
    y_train = np.asarray(train.labels)
    oof = np.zeros(len(y_train))
    texts = np.asarray(train.texts, dtype=object)
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=training.SEED).split(texts, y_train)):
        m = train_rumor_model(list(texts[tr]), y_train[tr], seed=training.SEED, params=training.SHIPPED_PARAMS)
        oof[te] = m.predict_proba(list(texts[te]))
        print(f"fold {k} done at {time.time() - t0:.0f}s", flush=True)
    out = {
        "ced_p": np.asarray(ced_p), "ced_y": np.asarray(test.labels), "oof_p": oof, "oof_y": y_train,
        "train_prior": np.array([y_train.mean()]), "near_copy": _near_copy(train.texts, test.texts),
    }
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CACHE, **out)
    return out


def heldout_half(y: np.ndarray, near_copy: np.ndarray, seed: int = 20261206) -> np.ndarray:
    """True for the held-out half of weibo_ced (stratified by label and by near-copy); the other
    half is the one experiments may tune on."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(y), dtype=bool)
    for lab in (0, 1):
        for nc in (False, True):
            idx = np.flatnonzero((np.asarray(y) == lab) & (np.asarray(near_copy, dtype=bool) == nc))
            rng.shuffle(idx)
            held[idx[: len(idx) // 2]] = True
    return held


def _near_copy(train: list[str], test: list[str], n: int = 5, share: float = 0.5) -> np.ndarray:
    """Whether each test text shares at least ``share`` of its character n-grams with one
    training text (a forward or small edit of a text the model saw)."""
    from collections import defaultdict

    from nlp.normalize import normalize

    def grams(t: str) -> set[str]:
        s = "".join(normalize(t).split())
        return {s[i : i + n] for i in range(max(len(s) - n + 1, 1))}

    index: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(train):
        for g in grams(t):
            index[g].append(i)
    out = np.zeros(len(test), dtype=bool)
    for j, t in enumerate(test):
        g = grams(t)
        hits: dict[int, int] = defaultdict(int)
        for x in g:
            lst = index.get(x)
            if lst is not None and len(lst) < 200:  # very common n-grams say nothing
                for i in lst:
                    hits[i] += 1
        out[j] = bool(hits) and max(hits.values()) >= share * len(g)
    return out


if __name__ == "__main__":
    arrays = load()
    print({k: v.shape for k, v in arrays.items()})
