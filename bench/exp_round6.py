"""Experiment (round 6): mention normalisation and a boosted-tree stacker.

Two questions, selection protocols only (val, proxy), raw output:
bench/results/classifier_round6.jsonl.

* ``mentions``: `nlp.normalize` masks a Weibo mention as ``@`` plus up to 30 name characters,
  so "网友@黎启lee晒出三星的..." loses the words after the name when no space ends it. Variants:
  ``at15`` counts a CJK character as two (Weibo's own 30-byte rule: at most 15 CJK), ``at_keep``
  keeps the name text and masks only the ``@``.
* ``stack``: out-of-fold margins of the shipped linear ensemble plus style features (length,
  punctuation and digit ratios, headline brackets, hashtags, links, quotes, Weibo [表情], cue
  values) fed to a logistic regression or a histogram gradient-boosting classifier, against the
  shipped out-of-fold Platt fit on the margin alone.

    PYTHONPATH=. python bench/exp_round6.py mentions|stack [--protocols val,proxy] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from bench.exp_quality import (  # noqa: E402
    CACHE,
    best_threshold_f1,
    counts,
    design,
    dup_groups,
    fit_ens,
    frame,
    paired_se,
    protocols,
    run_cal2,
)
from nlp import normalize as norm_mod  # noqa: E402
from nlp.classifier import HashedTextFeatures  # noqa: E402
from nlp.cues import cue_matrix  # noqa: E402

OUT = ROOT / "bench" / "results" / "classifier_round6.jsonl"
_AT_ANY = re.compile(r"@[\w\u4e00-\u9fff-]{1,30}")
_CJK = re.compile(r"[\u3400-\u9fff]")
_PUNCT = re.compile(r"[,.!?:;，。！？：；、…]")
_WEIBO_EMO = re.compile(r"\[[\u4e00-\u9fff]{1,5}\]")
_PRIVATE = "\ue000"  # hides @ from the normaliser so the variant decides what a mention is


def _mention_by_bytes(m: re.Match[str]) -> str:
    name, weight, keep = m.group()[1:], 0, 0
    for ch in name:
        weight += 2 if _CJK.match(ch) else 1
        if weight > 30:
            break
        keep += 1
    return " <AT> " + name[keep:]


def variant_norm(text: str, variant: str) -> str:
    if variant == "base":
        return norm_mod.normalize(text)
    t = norm_mod.normalize(text.replace("@", _PRIVATE)).replace(_PRIVATE, "@")
    t = _AT_ANY.sub(_mention_by_bytes, t) if variant == "at15" else t.replace("@", " <AT> ")
    return norm_mod._SPACE_RE.sub(" ", t).strip()


def counts_of(texts: list[str]):
    """Hashed char / word counts and cues of ``texts`` (cached by content)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / f"counts_norm_{hashlib.sha1(chr(0).join(texts).encode()).hexdigest()[:12]}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    xc, xw = HashedTextFeatures(char_ngram_range=(1, 3), word_ngram_range=(1, 2), n_features=2**20)._counts(texts)
    out = (xc.tocsr(), xw.tocsr(), cue_matrix(texts, normalized=True))
    f.write_bytes(pickle.dumps(out, protocol=5))
    return out


def style(texts: list[str]) -> np.ndarray:
    rows = []
    for t in texts:
        n = max(len(t), 1)
        rows.append([np.log1p(len(t)), len(_CJK.findall(t)) / n, len(_PUNCT.findall(t)) / n,
                     sum(c.isdigit() for c in t) / n, t.count("【"), t.count("#"), t.count("…"),
                     t.count("<URL>"), t.endswith("<URL>"), t.count('"'), "转" in t[:6],
                     t.count("!") / n, t.count("?") / n, t.count("「") + t.count("“"),
                     len(_WEIBO_EMO.findall(t)), t.count("<AT>")])
    return np.asarray(rows, dtype=np.float64)


def mentions(df, prots, names, seeds, emit):
    y = df["label"].to_numpy()
    base = {}
    for v in ("base", "at15", "at_keep"):
        texts = [variant_norm(t, v) for t in df["text"]]
        changed = int(sum(a != b for a, b in zip(texts, df["norm"], strict=True)))
        mats = counts_of(texts)
        for k in names:
            tr, te = prots[k]
            for s in seeds:
                r, pred = run_cal2(mats, y, tr, te, {}, seed=s, groups=dup_groups(df, tr))
                if (k, s) in base:
                    r["d"] = round(r["f1"] - float(f1_score(y[te], base[(k, s)], average="macro")), 4)
                    r["se"] = round(paired_se(y[te], base[(k, s)], pred), 4)
                else:
                    base[(k, s)] = pred
                emit({"exp": "mentions", "variant": v, "protocol": k, "seed": s, "changed": changed, **r})


def stack(df, prots, names, seeds, emit):
    y = df["label"].to_numpy()
    mats = counts(df)
    side = np.hstack([style(df["norm"].tolist()), mats[2]])
    stackers = {
        "lr": lambda s: LogisticRegression(C=1.0, max_iter=2000),
        "hgb": lambda s: HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                        l2_regularization=1.0, random_state=s),
        "hgb small": lambda s: HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, max_leaf_nodes=7,
                                                              min_samples_leaf=50, random_state=s),
    }
    for k in names:
        tr, te = prots[k]
        Xtr, Xte = design(mats, tr, te, {})
        ytr = y[tr]
        for s in seeds:
            oof = np.zeros(len(tr))
            for a, b in GroupKFold(5, shuffle=True, random_state=s).split(Xtr, ytr, dup_groups(df, tr)):
                oof[b] = fit_ens(Xtr[a], ytr[a], {}, s).decision_function(Xtr[b])
            margin = fit_ens(Xtr, ytr, {}, s).decision_function(Xte)
            platt = LogisticRegression(C=1e4).fit(oof.reshape(-1, 1), ytr)
            base = (platt.predict_proba(margin.reshape(-1, 1))[:, 1] >= 0.5).astype(int)
            row = {"exp": "stack", "protocol": k, "seed": s,
                   "platt": round(float(f1_score(y[te], base, average="macro")), 4),
                   "oracle": best_threshold_f1(y[te], margin)}
            for name, make in stackers.items():
                est = make(s).fit(np.column_stack([oof, side[tr]]), ytr)
                pred = (est.predict_proba(np.column_stack([margin, side[te]]))[:, 1] >= 0.5).astype(int)
                row[name] = round(float(f1_score(y[te], pred, average="macro")), 4)
                row[name + " se"] = round(paired_se(y[te], base, pred), 4)
            emit(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=["mentions", "stack"])
    ap.add_argument("--protocols", default="val,proxy")
    ap.add_argument("--seeds", default="0")
    a = ap.parse_args()

    def emit(row):
        line = json.dumps(row, ensure_ascii=False)
        print(line, flush=True)
        with OUT.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    run = mentions if a.experiment == "mentions" else stack
    run(frame(), protocols(frame()), a.protocols.split(","), [int(s) for s in a.seeds.split(",")], emit)


if __name__ == "__main__":
    main()
