"""Benchmark: post roles (nlp.roles) — accuracy on our dev set and the scenario corpus, and speed.

* dev set: tests/fixtures/roles_dev.yaml (our own chat lines; the rules were first tuned on it).
* scenario corpus, tune part: every message of tests/fixtures/scenarios/tune (tuned on).
* scenario corpus, held-out part: computed here and written out as figures only (accuracy and
  the confusion counts, never a message): nothing is tuned on it.
  Each is measured for the shipped classifier (rules + model) and for the rules alone (with the
  no-model fallback), overall and on matter messages only.
* speed: `RoleClassifier.predict` on short chat lines (the dev set and the tune part, repeated),
  one core, single batches of 5,000 (target >= 20,000 texts/s).

    PYTHONPATH=. python bench/bench_roles.py
Writes bench/results/roles.json and roles.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scenarios import load_scenarios  # noqa: E402
from nlp.normalize import normalize  # noqa: E402
from nlp.role_training import confusion_table, dev_set, evaluate  # noqa: E402
from nlp.roles import RoleClassifier, RoleContext, load_role_classifier  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEV = REPO / "tests" / "fixtures" / "roles_dev.yaml"


def scenario_set(part: str, *, matter_only: bool = False) -> tuple[list[str], list[RoleContext], list[str]]:
    norms, ctxs, gold = [], [], []
    for ev in load_scenarios(part):  # type: ignore[arg-type]
        for m in ev.messages:
            if matter_only and m.matter is None:
                continue
            norms.append(normalize(m.text))
            ctxs.append(RoleContext(is_reply=m.reply_to is not None))
            gold.append(m.role)
    return norms, ctxs, gold


def measure(clf: RoleClassifier, data: tuple[list[str], list[RoleContext], list[str]]) -> dict[str, Any]:
    r = evaluate(clf, *data)
    return {"n": r["n"], "accuracy": round(r["accuracy"], 4),
            "recall": {k: (round(v, 3) if v is not None else None) for k, v in r["recall"].items()},
            "confusion": r["confusion"]}


def speed(clf: RoleClassifier, texts: list[str], batch: int = 5000, rounds: int = 5) -> float:
    pool = (texts * (batch // max(len(texts), 1) + 1))[:batch]
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        clf.predict(pool)
        best = min(best, time.perf_counter() - t)
    return batch / best


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    shipped = load_role_classifier()
    rules_only = RoleClassifier(model=None)
    sets = {
        "dev": dev_set(DEV),
        "tune": scenario_set("tune"),
        "tune (matter messages)": scenario_set("tune", matter_only=True),
        "heldout": scenario_set("heldout"),
        "heldout (matter messages)": scenario_set("heldout", matter_only=True),
    }
    out: dict[str, Any] = {
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": repr(shipped.model),
        "accuracy": {},
    }
    for name, data in sets.items():
        out["accuracy"][name] = {"shipped": measure(shipped, data), "rules_only": measure(rules_only, data)}
    speed_texts = sets["dev"][0] + sets["tune"][0]
    out["speed_texts_per_s"] = {"shipped": round(speed(shipped, speed_texts)),
                                "rules_only": round(speed(rules_only, speed_texts))}
    out["speed_mean_chars"] = round(sum(map(len, speed_texts)) / len(speed_texts), 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "roles.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "roles.md").write_text(render(out), encoding="utf-8")
    print(render(out))


def render(out: dict[str, Any]) -> str:
    lines = [
        "# Post roles (nlp.roles)",
        "",
        f"Run {out['run_at']}; model: {out['model']}. Tuned on the dev set and the tune part only;",
        "the held-out part is measured here and nowhere else (figures only).",
        "",
        "| set | n | shipped (rules + model) | rules only |",
        "|---|---|---|---|",
    ]
    for name, r in out["accuracy"].items():
        lines.append(f"| {name} | {r['shipped']['n']} | {r['shipped']['accuracy']:.3f} | {r['rules_only']['accuracy']:.3f} |")
    lines += [
        "",
        f"Speed, one core, batches of 5,000 short chat lines (mean {out['speed_mean_chars']} characters): "
        f"shipped {out['speed_texts_per_s']['shipped']:,} texts/s, rules only "
        f"{out['speed_texts_per_s']['rules_only']:,} texts/s (target >= 20,000).",
        "",
    ]
    for name in ("dev", "tune", "heldout"):
        lines += [f"## Confusion, {name} (shipped; gold down, predicted across)", "",
                  confusion_table(out["accuracy"][name]["shipped"]["confusion"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
