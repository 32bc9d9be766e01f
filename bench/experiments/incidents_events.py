"""Text-only event recovery of the incident grouping on weibo_ma2016 (research data, shared_data).

The same stream as ``bench/bench_topics.py --only events`` (200 events with at least 5 reposts
with text, one time-ordered stream, repost links NOT given: text only), fed to the real
`yuqing analyze` in daily runs on a SQLite database; incidents vs events: B-cubed P/R/F1 over all
posts (posts without an incident are singletons). Posts are web posts (no chat group), so only
content, stories and debunk matches bind.

    PYTHONPATH=. python -m bench.experiments.incidents_events [--events 200]

Prints the figures and writes bench/results/incidents_events.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="inc-events-"))
    os.environ["YUQING_DATA_DIR"] = str(tmp)
    from bench.bench_topics import _load_events, _shared, bcubed

    data = _shared()
    if data is None:
        raise SystemExit("the shared research data is not here (YUQING_SHARED_DATA)")
    from sqlalchemy import select

    from core.db import make_engine, session_scope
    from core.ingest import ingest_posts
    from core.migrate import upgrade
    from core.tables import Post
    from nlp.pipeline import analyze

    posts = _load_events(data, args.events, 0)
    url = f"sqlite:///{tmp / 'events.db'}"
    upgrade(url)
    engine = make_engine(url)
    by_day: dict[dt.date, list[dict]] = defaultdict(list)
    for p in posts:
        by_day[dt.datetime.fromtimestamp(p["t"], dt.UTC).date()].append(p)
    started = time.perf_counter()
    for day in sorted(by_day):
        items = [{"source": "ma2016-bench", "external_id": p["mid"], "text": p["text"],
                  "published_at": dt.datetime.fromtimestamp(p["t"], dt.UTC)} for p in by_day[day]]
        with session_scope(engine) as s:
            ingest_posts(s, items)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
        with session_scope(engine) as s:
            analyze(s, workers=0, now=end)
    seconds = time.perf_counter() - started
    with session_scope(engine) as s:
        got = dict(s.execute(select(Post.external_id, Post.incident_id)).all())
        stories = dict(s.execute(select(Post.external_id, Post.story_id)).all())
    engine.dispose()
    truth = [p["eid"] for p in posts]
    pred = [got[p["mid"]] if got[p["mid"]] is not None else f"alone-{p['mid']}" for p in posts]
    pred_s = [stories[p["mid"]] if stories[p["mid"]] is not None else f"alone-{p['mid']}" for p in posts]
    p_, r_, f_ = bcubed(truth, pred)
    ps, rs, fs = bcubed(truth, pred_s)
    in_incident = sum(1 for p in posts if got[p["mid"]] is not None)
    out = {"events": len(set(truth)), "posts": len(posts), "daily_runs": len(by_day), "seconds": round(seconds, 1),
           "incidents_bcubed": {"precision": round(p_, 4), "recall": round(r_, 4), "f1": round(f_, 4)},
           "stories_bcubed": {"precision": round(ps, 4), "recall": round(rs, 4), "f1": round(fs, 4)},
           "posts_in_an_incident": in_incident}
    (REPO / "bench" / "results" / "incidents_events.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
