"""Benchmark: the incident stage's cost per post with 1,000 and with 100,000 open incidents.

A post's cost must not grow with the number of open incidents (candidates come from capped
inverted indexes, never a scan). For each size N this builds N open incidents from synthetic
posts (bench.synth_posts: our own templates about 青禾镇, a third of them forwards and edits),
then places 20,000 further synthetic posts with `nlp.incidents.place` (the grouping step of the
stage, in memory) and reports microseconds per post, plus how long loading N incidents from a
SQLite database takes (`IncidentIndex.load`, once per `yuqing analyze` run).

    PYTHONPATH=. python bench/bench_incidents_speed.py [--sizes 1000 100000] [--posts 20000]

Writes bench/results/incidents_speed.json and incidents_speed.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))


def _texts(n: int, seed: int) -> list[tuple[str, str, dt.datetime, str | None]]:
    """(text, group or site, time, sender: chat posts only) of ``n`` synthetic posts."""
    from bench.synth_posts import synthetic_posts

    out = []
    for item in synthetic_posts(n, seed=seed):
        group = (item.get("group") or {}).get("external_id") or item.get("source") or "web"
        sender = item.get("author") if item.get("channel") == "chat" else None
        out.append((item["text"], group, item["published_at"], sender))
    return out


def _facts(texts: list[str]) -> list[Any]:
    from nlp.incident_text import IncidentText
    from nlp.normalize import normalize

    part = IncidentText()
    out: list[Any] = []
    for start in range(0, len(texts), 2000):
        out.extend(part([normalize(t) for t in texts[start : start + 2000]]))
    return out


def _posts(index: Any, rows: list[tuple[str, str, dt.datetime, str | None]], facts: list[Any],
           first_id: int) -> list[Any]:
    """The stage's view of each post (its rarest bigrams and probe, its sender, as `incidents_stage`
    builds them)."""
    from nlp.incidents import _Post, _post_terms

    groups: dict[str, int] = {}
    terms, idfs, probes, wides = _post_terms(index, facts, [True] * len(facts))
    return [_Post(first_id + k, when, groups.setdefault(group, len(groups) + 1), None, None, None, f.role, f,
                  terms[k], idfs[k], text, probes[k], wide=wides[k], sender=sender)
            for k, ((text, group, when, sender), f) in enumerate(zip(rows, facts, strict=True))]


def _name(rng: random.Random) -> str:
    return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(4)) + "的"


def measure(n_open: int, n_posts: int) -> dict[str, Any]:
    """Place synthetic posts until ``n_open`` incidents are open, then time ``n_posts`` more."""
    from nlp.incident_paraphrase import keep_claim, load_paraphrase
    from nlp.incidents import IncidentIndex, _Lookups, place

    index = IncidentIndex()
    # The paraphrase signal as the stage switches it on (the claim matcher; None without a model).
    index.paraphrase = para = load_paraphrase()
    lookups = _Lookups({}, {}, {})
    # N incidents opened from synthetic posts. The templates repeat, so each founder gets a
    # made-up four-character name (a shop, a person, a lane) that makes it a matter of its own,
    # as a real township's many small matters are.
    rng = random.Random(n_open)
    t_build = time.perf_counter()
    rows = _texts(n_open, 1)
    rows = [(f"{_name(rng)}{text}", group, when, sender) for text, group, when, sender in rows]
    facts = _facts([r[0] for r in rows])
    for k, p in enumerate(_posts(index, rows, facts, 1)):
        inc = index.found(p)
        keep_claim(inc, p)
        inc.id = k + 1
        index.open[inc.id] = inc
    opened, next_id, built = n_open, n_open + 1, n_open
    build_s = time.perf_counter() - t_build
    rows = _texts(n_posts, 10_000 + n_open)
    facts = _facts([r[0] for r in rows])
    posts = _posts(index, rows, facts, next_id)
    gc.collect()
    whys: dict[str, int] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for p in posts:
        inc, why = place(index, p, lookups)
        whys[why] = whys.get(why, 0) + 1
        if inc is not None and inc.id is None:
            opened += 1
            inc.id = opened
            index.open[inc.id] = inc
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    longest = max((len(v) for v in index.postings.values()), default=0)
    return {
        "open_incidents": n_open, "posts_placed": n_posts, "build_posts": built, "build_seconds": round(build_s, 1),
        "us_per_post_wall": round(1e6 * wall / n_posts, 1), "us_per_post_cpu": round(1e6 * cpu / n_posts, 1),
        "decisions": whys, "postings": len(index.postings), "longest_posting": longest,
        "matcher_calls": para.calls if para else None, "matcher_pairs": para.pairs if para else None,
        "matcher_skipped": para.skipped if para else None,
        "load": measure_load(index, n_open),
    }


def measure_load(index: Any, n_open: int) -> dict[str, float]:
    """Write ``n_open`` incidents (their bigram profiles and anchors) to SQLite and time the
    run-start load of the open ones."""
    from sqlalchemy import insert

    from core.db import make_engine, session_scope
    from core.migrate import upgrade
    from core.tables import Incident
    from nlp.incidents import IncidentIndex, pack_terms

    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/load.db"
        upgrade(url)
        engine = make_engine(url)
        rows = [{"kind": "rumor", "title": "t", "first_seen": now, "last_seen": now, "status": "active",
                 "centroid": pack_terms(inc.terms, inc.mass), "anchors": inc.anchors.to_dict(), "role_counts": {},
                 "hourly_counts": {}, "spread": {}, "risk_parts": {}, "places": [], "post_count": 1,
                 "created_at": now, "updated_at": now}
                for inc in list(index.open.values())[:n_open]]
        with session_scope(engine) as session:
            for start in range(0, len(rows), 5000):
                session.execute(insert(Incident), rows[start : start + 5000])
        with session_scope(engine) as session:
            t0 = time.perf_counter()
            loaded = IncidentIndex.load(session, now=now)
            seconds = time.perf_counter() - t0
        engine.dispose()
    return {"seconds": round(seconds, 2), "incidents": len(loaded)}


def render_md(r: dict[str, Any]) -> str:
    lines = [
        "# Incident grouping speed (bench/bench_incidents_speed.py)",
        "",
        f"{r['posts']:,} synthetic posts placed (`nlp.incidents.place`, in memory) after N incidents were "
        f"opened from earlier synthetic posts; {r['machine']}. The load column is `IncidentIndex.load` of N "
        "open incidents from SQLite (once per `yuqing analyze` run).",
        "",
        "| open incidents | µs per post (wall) | µs per post (CPU) | decisions | claim matcher calls (pairs; refused by its budget) "
        "| bigram postings | longest posting list | load s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in r["sizes"]:
        d = ", ".join(f"{k} {v}" for k, v in sorted(m["decisions"].items()))
        lines.append(f"| {m['open_incidents']:,} | {m['us_per_post_wall']} | {m['us_per_post_cpu']} | {d} | "
                     f"{m.get('matcher_calls')} ({m.get('matcher_pairs')}; {m.get('matcher_skipped')}) | {m['postings']:,} | {m['longest_posting']} | {m['load']['seconds']} |")
    lines += ["", "Posting lists are capped (the newest incidents per bigram are kept), so a post looks at a "
              "bounded number of candidates whatever N is; the CPU column is the robust one on a shared machine. "
              "The claim matcher (the paraphrase signal, nlp.incident_paraphrase) scores only claims and "
              "questions their words did not place, against at most two of their candidates."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--posts", type=int, default=20_000)
    args = parser.parse_args()
    import logging

    logging.getLogger("jieba").setLevel(logging.WARNING)
    result = {"posts": args.posts, "machine": f"{platform.machine()}, Python {platform.python_version()}",
              "sizes": [measure(n, args.posts) for n in args.sizes]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "incidents_speed.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    (RESULTS / "incidents_speed.md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
