"""Leave-one-dataset-out scores of the bench's training set (issue 21, domain-robust calibration).

    python -m bench.experiments.prevalence_lodo_scores

The prevalence bench's model is trained on weibo21 + weibo_ma2016 minus weibo_ced's texts
(`bench.prevalence_scores`). Its held-out scores (3-fold CV) come from the same two datasets, so
they show no domain shift. Here each of the two is scored by a model of the same recipe trained
on the other only: the scores a calibration or a rumor tail would see if they had to reflect a
new domain. No weibo_ced text is used. Cached in var/cache/bench_prevalence_lodo.npz (two fits).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from nlp import data, training  # noqa: E402
from nlp.classifier import train_rumor_model  # noqa: E402

CACHE = ROOT / "var" / "cache" / "bench_prevalence_lodo.npz"


def load() -> dict[str, np.ndarray]:
    """``p``: each training text's score by the model trained on the other dataset; ``y`` its
    label; ``dataset`` 0 for weibo21, 1 for weibo_ma2016."""
    if CACHE.is_file():
        with np.load(CACHE) as z:
            return {k: z[k] for k in z.files}
    t0 = time.process_time()
    df = data.load_combined()
    ced = df[df["dataset"] == "weibo_ced"]
    train = data._drop_seen(df[df["dataset"] != "weibo_ced"], ced)
    ps, ys, ds = [], [], []
    for i, name in enumerate(("weibo21", "weibo_ma2016")):
        fit, score = train[train["dataset"] != name], train[train["dataset"] == name]
        m = train_rumor_model(fit["text"].tolist(), fit["label"].astype(int).tolist(), seed=training.SEED,
                              params=training.SHIPPED_PARAMS)
        ps.append(np.asarray(m.predict_proba(score["text"].tolist()), dtype=np.float64))
        ys.append(score["label"].to_numpy(dtype=int))
        ds.append(np.full(len(score), i))
        print(f"{name} scored by the other dataset's model at {time.process_time() - t0:.0f} CPU s", flush=True)
    out = {"p": np.concatenate(ps), "y": np.concatenate(ys), "dataset": np.concatenate(ds)}
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CACHE, **out)
    return out


if __name__ == "__main__":
    a = load()
    for i, name in enumerate(("weibo21", "weibo_ma2016")):
        m = a["dataset"] == i
        y, p = a["y"][m], a["p"][m]
        print(name, len(y), "rumor share", round(float(y.mean()), 3), "tpr@0.5", round(float((p[y == 1] >= 0.5).mean()), 3),
              "fpr@0.5", round(float((p[y == 0] >= 0.5).mean()), 3))
