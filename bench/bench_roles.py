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


def speed(clf: RoleClassifier, texts: list[str], batch: int = 5000, rounds: int = 5) -> dict[str, float]:
    """Texts per second on one core: by CPU time (what the process itself spent, fair on a shared
    machine) and by wall clock (what a caller waits, inflated when other jobs share the cores)."""
    pool = (texts * (batch // max(len(texts), 1) + 1))[:batch]
    clf.predict(pool[:100])  # warm the regex caches
    cpu = wall = float("inf")
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        clf.predict(pool)
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
    return {"cpu": round(batch / cpu), "wall": round(batch / wall)}


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
        # the model is trained on the tune part: its honest tune figure is the card's
        # leave-one-township-out accuracy (trained without the township it is tested on)
        "tune_leave_one_township_out": model_card_metrics().get("scenario_tune_leave_one_township_out"),
    }
    for name, data in sets.items():
        out["accuracy"][name] = {"shipped": measure(shipped, data), "rules_only": measure(rules_only, data)}
    speed_texts = sets["dev"][0] + sets["tune"][0]
    out["speed_texts_per_s"] = {"shipped": speed(shipped, speed_texts), "rules_only": speed(rules_only, speed_texts)}
    out["load_average"] = round(os.getloadavg()[0], 1)
    out["speed_mean_chars"] = round(sum(map(len, speed_texts)) / len(speed_texts), 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "roles.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "roles.md").write_text(render(out), encoding="utf-8")
    print(render(out))


def model_card_metrics() -> dict[str, Any]:
    from nlp.role_model import CARD_FILE, default_role_model_dir

    d = default_role_model_dir()
    if d is None or not (d / CARD_FILE).is_file():
        return {}
    return dict(json.loads((d / CARD_FILE).read_text(encoding="utf-8")).get("metrics", {}))


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
    loto = out.get("tune_leave_one_township_out")
    if loto:
        lines += ["", f"The model is trained on the tune part, so its tune row is an upper bound; trained without "
                      f"the township it is tested on (leave-one-township-out, from the model card) the tune accuracy "
                      f"is {loto['accuracy']:.3f} (n={loto['n']})."]
    lines += [
        "",
        f"Speed, one core, batches of 5,000 short chat lines (mean {out['speed_mean_chars']} characters), "
        f"target >= 20,000 texts/s: shipped {out['speed_texts_per_s']['shipped']['cpu']:,} texts/s by CPU time "
        f"({out['speed_texts_per_s']['shipped']['wall']:,} by wall clock), rules only "
        f"{out['speed_texts_per_s']['rules_only']['cpu']:,} ({out['speed_texts_per_s']['rules_only']['wall']:,}); "
        f"machine load average {out['load_average']} on 2 cores during the run.",
        "",
    ]
    for name in ("dev", "tune", "heldout"):
        lines += [f"## Confusion, {name} (shipped; gold down, predicted across)", "",
                  confusion_table(out["accuracy"][name]["shipped"]["confusion"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
