"""Tuning aid for the incident stage on the scenario corpus's TUNE part (never the held-out part).

Each township runs in its own process (the gazetteer is per township): a fresh SQLite database,
its debunk library imported, its evenings ingested as chat messages (replies keep their
parent), then `analyze` with the shipped models. Reports B-cubed precision/recall/F1 of the
incidents against the true matters (over matter messages, and over all messages with chatter as
singletons), how many incidents each matter was split into, chatter that got an incident, and
role accuracy. The official figure is bench/bench_incidents.py (corpus branch); this is the
quick loop used while tuning.

    PYTHONPATH=. python -m bench.experiments.incidents_tune [--township liuhe] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def bcubed(pred: dict[str, Any], gold: dict[str, Any]) -> tuple[float, float, float]:
    """B-cubed precision, recall, F1 of item -> cluster against item -> class (same items)."""
    by_pred: dict[Any, set[str]] = defaultdict(set)
    by_gold: dict[Any, set[str]] = defaultdict(set)
    for item, c in pred.items():
        by_pred[c].add(item)
    for item, c in gold.items():
        by_gold[c].add(item)
    p = r = 0.0
    for item in gold:
        cp, cg = by_pred[pred[item]], by_gold[gold[item]]
        both = len(cp & cg)
        p += both / len(cp)
        r += both / len(cg)
    n = len(gold)
    p, r = p / n, r / n
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def run_township(slug: str, verbose: bool) -> dict[str, Any]:
    from bench.scenarios import load_scenarios

    evenings = [e for e in load_scenarios("tune") if e.slug == slug]
    tmp = Path(tempfile.mkdtemp(prefix=f"inc-{slug}-"))
    cfg = tmp / "config"
    cfg.mkdir()
    if evenings[0].places_file is not None:
        shutil.copy(evenings[0].places_file, cfg / "places.yaml")
    os.environ["YUQING_CONFIG_DIR"] = str(cfg)
    os.environ["YUQING_DATA_DIR"] = str(tmp / "data")
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    os.environ["YUQING_DATABASE_URL"] = url

    from sqlalchemy import select

    from core.db import make_engine, session_scope
    from core.ingest import ingest_posts
    from core.migrate import upgrade
    from core.tables import Incident, Post
    from nlp.debunks import import_debunks
    from nlp.pipeline import analyze

    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        if evenings[0].debunks_file is not None:
            import_debunks(s, evenings[0].debunks_file)
    truth: dict[str, tuple[str | None, str, str]] = {}
    for ev in sorted(evenings, key=lambda e: e.date):
        items = []
        for m in ev.messages:
            key = f"{ev.date}-{m.id}"
            truth[key] = (m.matter, m.role, m.text)
            g = ev.group(m.group)
            item = {"channel": "chat", "group": {"platform": g.platform, "external_id": g.id, "name": g.name},
                    "external_id": key, "text": m.text, "author": m.sender, "published_at": m.time,
                    "is_forward": m.forwarded}
            if m.reply_to:
                item["parent_external_id"] = f"{ev.date}-{m.reply_to}"
            items.append(item)
        with session_scope(engine) as s:
            ingest_posts(s, items)
        last = max(m.time for m in ev.messages)
        with session_scope(engine) as s:
            analyze(s, workers=0, now=last)
    with session_scope(engine) as s:
        rows = s.execute(select(Post.external_id, Post.incident_id, Post.role)).all()
        titles = {i.id: (i.title, i.kind, round(i.risk or 0, 2), i.post_count) for i in s.scalars(select(Incident))}
    engine.dispose()
    pred_inc = {r.external_id: r.incident_id for r in rows}
    pred_role = {r.external_id: r.role for r in rows}
    matter_items = [k for k, (m, _, _) in truth.items() if m is not None]
    pred = {k: (pred_inc[k] if pred_inc[k] is not None else f"none:{k}") for k in truth}
    gold_all = {k: (m if m is not None else f"chat:{k}") for k, (m, _, _) in truth.items()}
    p1, r1, f1 = bcubed({k: pred[k] for k in matter_items}, {k: gold_all[k] for k in matter_items})
    p2, r2, f2 = bcubed(pred, gold_all)
    split = {}
    for matter in sorted({m for m, _, _ in truth.values() if m}):
        incs = Counter(pred_inc[k] for k, (m, _, _) in truth.items() if m == matter)
        split[matter] = {str(k): v for k, v in incs.most_common()}
    chatter_in = sum(1 for k, (m, _, _) in truth.items() if m is None and pred_inc[k] is not None)
    role_ok = sum(1 for k, (_, role, _) in truth.items() if pred_role[k] == role)
    out = {
        "township": slug, "messages": len(truth), "matter_messages": len(matter_items),
        "bcubed_matter": [round(p1, 3), round(r1, 3), round(f1, 3)],
        "bcubed_all": [round(p2, 3), round(r2, 3), round(f2, 3)],
        "incidents": len(titles), "chatter_in_incidents": chatter_in,
        "role_accuracy": round(role_ok / len(truth), 3), "split": split,
    }
    if verbose:
        out["titles"] = {str(k): v for k, v in titles.items()}
        out["detail"] = [(k, m, role, pred_role[k], pred_inc[k], text) for k, (m, role, text) in truth.items()]
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--township")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.township:
        print(json.dumps(run_township(args.township, args.verbose), ensure_ascii=False))
        return
    results = []
    for slug in ("liuhe", "baisha", "guishan"):
        cmd = [sys.executable, "-m", "bench.experiments.incidents_tune", "--township", slug]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        if out.returncode:
            sys.exit(out.stderr)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    n = sum(r["matter_messages"] for r in results)
    for r in results:
        print(r["township"], "B3(matter) P/R/F", r["bcubed_matter"], "B3(all)", r["bcubed_all"],
              "incidents", r["incidents"], "chatter in", r["chatter_in_incidents"], "roles", r["role_accuracy"])
    f = sum(r["bcubed_matter"][2] * r["matter_messages"] for r in results) / n
    print("weighted B3 F1 over matter messages:", round(f, 3))


if __name__ == "__main__":
    main()
