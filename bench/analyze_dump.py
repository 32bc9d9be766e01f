"""Check that a speed change leaves `yuqing analyze`'s output unchanged: analyse a synthetic table
and dump every post's story, incident, role and scores, with every story, incident and debunk
match, as sorted text; the same code on the same posts gives a byte-identical dump.

    PYTHONPATH=. python -m bench.analyze_dump --posts 20000 --out /tmp/before.txt
    (change the code)
    PYTHONPATH=. python -m bench.analyze_dump --posts 20000 --out /tmp/after.txt
    cmp /tmp/before.txt /tmp/after.txt

The posts start on a fixed date, the run's clock and the hash seed are fixed, so nothing depends
on today or on the process.
Wall-clock columns (analyzed_at, scored_at, created_at, ...) are left out. Prints the dump's
sha256 and the run's timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
NOW = START + dt.timedelta(days=3, hours=1)
# Columns that hold the time of the run, not its result.
CLOCK_COLUMNS = {"analyzed_at", "scored_at", "matched_at", "created_at", "updated_at", "promoted_at"}


def build(url: str, n_posts: int) -> None:
    from bench.synth_posts import synthetic_posts
    from core.db import make_engine, session_scope
    from core.ingest import ingest_posts
    from core.migrate import upgrade
    from nlp.debunks import import_debunks

    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        import_debunks(session, Path(__file__).resolve().parent.parent / "nlp" / "demo" / "debunks.yaml")
    posts = list(synthetic_posts(n_posts, start=START))
    for i in range(0, len(posts), 5000):
        with session_scope(engine) as session:
            ingest_posts(session, posts[i : i + 5000])
    engine.dispose()


def run(url: str, workers: int | None) -> dict:
    from core.db import make_engine, session_scope
    from nlp.classifier import RumorModel
    from nlp.pipeline import ensure_model_version, run_analysis, stages_without

    model = RumorModel.load()
    engine = make_engine(url)
    with session_scope(engine) as session:
        version_id = ensure_model_version(session, model)
    c0 = time.process_time()
    with session_scope(engine) as session:
        result = run_analysis(session, model=model, model_version_id=version_id, workers=workers,
                              stages=stages_without("concerns"), now=NOW)
    out = {"main_cpu": round(time.process_time() - c0, 2), "seconds": round(result.seconds, 2),
           "timings": {k: round(v, 2) for k, v in sorted(result.timings.items()) if k.startswith("cpu.")
                       or "." not in k},
           "counts": result.counts}
    engine.dispose()
    return out


def dump(url: str, path: Path) -> str:
    from core.db import make_engine
    from core.tables import DebunkMatch, Incident, Post, PostScore, PrevalenceEstimate, Story

    engine = make_engine(url)
    lines: list[str] = []
    with engine.connect() as conn:
        for model in (Post, PostScore, DebunkMatch, Story, Incident, PrevalenceEstimate):
            table = model.__table__
            cols = [c for c in table.c if c.name not in CLOCK_COLUMNS]
            for row in conn.execute(select(*cols).order_by(*table.primary_key.columns)):
                values = {c.name: _plain(v) for c, v in zip(cols, row, strict=True)}
                lines.append(table.name + " " + json.dumps(values, ensure_ascii=False))
    engine.dispose()
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()[:16]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Set iteration order of strings varies with the hash seed, and with it some incident
        # ids: fix the seed (for the workers too, which inherit the environment).
        os.execve(sys.executable, [sys.executable, "-m", "bench.analyze_dump", *sys.argv[1:]],
                  os.environ | {"PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", type=Path, help="reuse (or create) this un-analysed database file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="yuqing-dump-") as tmp:
        os.environ["YUQING_DATA_DIR"] = tmp
        os.environ.setdefault("YUQING_SECRET_KEY", "bench-secret")
        base = args.base or Path(tmp) / "base.db"
        if not base.exists():
            print(f"building {args.posts} posts ...", file=sys.stderr)
            build(f"sqlite:///{base}", args.posts)
        db = Path(tmp) / "run.db"
        db.write_bytes(base.read_bytes())
        url = f"sqlite:///{db}"
        stats = run(url, args.workers)
        digest = dump(url, args.out)
    print(json.dumps(stats | {"sha256": digest}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
