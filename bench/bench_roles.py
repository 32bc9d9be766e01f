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
from dataclasses import replace
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


def scenario_set(part: str, *, matter_only: bool = False, conversation: bool = False
                 ) -> tuple[list[str], list[RoleContext], list[str]]:
    """The part's messages; with ``conversation`` each context also names its group and time (the
    classifier then looks at what came before in the group), else only whether it is a reply."""
    norms, ctxs, gold = [], [], []
    for ev in load_scenarios(part):  # type: ignore[arg-type]
        for m in ev.messages:
            # the whole evening is classified (what came before counts), matter messages scored
            norms.append(normalize(m.text))
            ctxs.append(RoleContext(is_reply=m.reply_to is not None,
                                    group=f"{ev.township}:{m.group}" if conversation else None,
                                    at=m.time.timestamp() if conversation else None))
            gold.append(m.role if not matter_only or m.matter is not None else "")
    return norms, ctxs, gold


def measure(clf: RoleClassifier, data: tuple[list[str], list[RoleContext], list[str]]) -> dict[str, Any]:
    r = evaluate(clf, *data)  # gold "" (a message outside the measured subset) is not scored
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


def speed_conversation(clf: RoleClassifier, data: tuple[list[str], list[RoleContext], list[str]],
                       batch: int = 5000, rounds: int = 5) -> dict[str, float]:
    """As `speed`, with each line's group and time (the conversation pass runs too); the evenings
    are repeated as new groups so every batch holds real conversations."""
    norms, ctxs, _ = data
    reps = batch // max(len(norms), 1) + 1
    pool_n = (norms * reps)[:batch]
    pool_c = [replace(c, group=f"{k // len(norms)}:{c.group}") for k, c in enumerate((ctxs * reps)[:batch])]
    clf.predict(pool_n[:100], pool_c[:100])
    cpu = wall = float("inf")
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        clf.predict(pool_n, pool_c)
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
        "tune, conversation": scenario_set("tune", conversation=True),
        "heldout": scenario_set("heldout"),
        "heldout (matter messages)": scenario_set("heldout", matter_only=True),
        "heldout, conversation": scenario_set("heldout", conversation=True),
        "heldout (matter messages), conversation": scenario_set("heldout", matter_only=True, conversation=True),
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
    speed_convo = sets["tune, conversation"]
    out["speed_texts_per_s"] = {"shipped": speed(shipped, speed_texts), "rules_only": speed(rules_only, speed_texts),
                                "shipped, conversation": speed_conversation(shipped, speed_convo)}
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
        conv = loto.get("accuracy_conversation")
        tune_n = out["accuracy"]["tune"]["shipped"]["n"]
        trained = (f"The model was trained on {loto['n']} of the tune part's {tune_n} messages (the townships added "
                   "since are new to it)" if loto["n"] < tune_n else "The model is trained on the tune part")
        lines += ["", trained + ", so its tune rows are an upper bound; trained without "
                      f"the township it is tested on (leave-one-township-out, from the model card) the tune accuracy "
                      f"is {loto['accuracy']:.3f} per post"
                      + (f" and {conv:.3f} with the conversation" if conv is not None else "") + f" (n={loto['n']})."]
    lines += ["", "Rows marked \"conversation\" give the classifier each message's group and time (it then looks "
                  "at what came before in the group: `RoleContext.group`/`at`); the others give each message alone "
                  "(only whether it is a reply). `yuqing analyze` passes each chat post's group and time (`PostRow.context`)."]
    lines += [
        "",
        f"Speed, one core, batches of 5,000 short chat lines (mean {out['speed_mean_chars']} characters), "
        f"target >= 20,000 texts/s: shipped {out['speed_texts_per_s']['shipped']['cpu']:,} texts/s by CPU time "
        f"({out['speed_texts_per_s']['shipped']['wall']:,} by wall clock), rules only "
        f"{out['speed_texts_per_s']['rules_only']['cpu']:,} ({out['speed_texts_per_s']['rules_only']['wall']:,}), "
        f"shipped with the conversation pass {out['speed_texts_per_s']['shipped, conversation']['cpu']:,} "
        f"({out['speed_texts_per_s']['shipped, conversation']['wall']:,}); "
        f"machine load average {out['load_average']} on 2 cores during the run.",
        "",
    ]
    for name in ("dev", "tune", "heldout", "heldout, conversation"):
        lines += [f"## Confusion, {name} (shipped; gold down, predicted across)", "",
                  confusion_table(out["accuracy"][name]["shipped"]["confusion"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
