"""Benchmark: does text analysis keep its speed while pictures queue? (issue "Rumors in pictures")

Target: `yuqing analyze` throughput while a picture worker reads a flood of pictures stays within
10% of its throughput alone. The picture worker is the real one, started as `yuqing run` starts it
(`python -m yuqing.cli images work`, its budget YUQING_IMAGE_OCR_PER_MINUTE, its priority
YUQING_IMAGE_WORKER_NICE) on a database of rendered pictures waiting to be read; the analysis is
bench_analyze's child run on a copy of the same synthetic post table each time.

    PYTHONPATH=. python -m bench.bench_image_contention [--posts 20000] [--pictures 150] [--repeats 2]

Variants, alternated: alone; with the picture worker (default priority, nice 10); with the picture
worker at normal priority (nice 0), to show what the lower priority buys. Writes
bench/results/image_contention.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_analyze import build_database, measure_variant

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
VARIANTS = {"alone": None, "pictures (nice 10)": "10", "pictures (nice 0)": "0"}
TARGET = 0.90  # with pictures queued, at least 90% of the posts/s alone


def build_pictures(folder: Path, n: int) -> dict[str, str]:
    """A database and data dir with ``n`` distinct rendered pictures waiting to be read; its env."""
    from bench.image_corpus import caption_photo, chat_screenshot, jpeg, notice
    from core.db import make_engine, session_scope
    from core.images import store_image
    from core.migrate import upgrade
    from core.settings import get_settings

    env = {"YUQING_DATABASE_URL": f"sqlite:///{folder / 'pictures.db'}", "YUQING_DATA_DIR": str(folder / "data")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        upgrade(env["YUQING_DATABASE_URL"])
        engine = make_engine(env["YUQING_DATABASE_URL"])
        rng = random.Random(11)
        makers = (notice, chat_screenshot, caption_photo)
        with session_scope(engine) as session:
            for i in range(n):
                store_image(session, jpeg(makers[i % 3](rng).image, 85))
        engine.dispose()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    return env


def pictures_read(env: dict[str, str]) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["YUQING_DATABASE_URL"])
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM images WHERE ocr_status = 'done'")).scalar_one()
    engine.dispose()
    return int(n)


def reset_pictures(env: dict[str, str]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["YUQING_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(text("UPDATE images SET ocr_status = 'pending'"))
    engine.dispose()


def start_worker(env: dict[str, str], nice: str) -> subprocess.Popen[str]:
    """The picture worker as `yuqing run` starts it, once its OCR models are loaded."""
    cmd = [sys.executable, "-m", "yuqing.cli", "images", "work"]
    full = os.environ | env | {"YUQING_IMAGE_WORKER_NICE": nice, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=full, cwd=REPO)
    before = pictures_read(env)
    deadline = time.monotonic() + 120
    while pictures_read(env) == before and time.monotonic() < deadline:  # models loaded, reading
        if proc.poll() is not None:
            raise RuntimeError("the picture worker exited before reading anything")
        time.sleep(0.5)
    return proc


def run_one(db: Path, scratch: Path, pictures: dict[str, str], nice: str | None) -> dict:
    copy = scratch / "run.db"
    shutil.copy(db, copy)
    worker = None
    if nice is not None:
        reset_pictures(pictures)
        worker = start_worker(pictures, nice)
    read0 = pictures_read(pictures)
    t0 = time.perf_counter()
    try:
        result = measure_variant(copy, "default", None)
    finally:
        seconds = time.perf_counter() - t0
        read = pictures_read(pictures) - read0
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        copy.unlink(missing_ok=True)
    result["pictures_read_during"] = read if worker is not None else 0
    result["pictures_per_second_during"] = round(read / seconds, 2) if worker is not None else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--pictures", type=int, default=150, help="distinct pictures waiting (rendered)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        print(f"building {args.posts} posts and {args.pictures} pictures …", flush=True)
        build_database(scratch / "posts.db", args.posts)
        pictures = build_pictures(scratch, args.pictures)
        runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
        for r in range(args.repeats):
            for name, nice in VARIANTS.items():
                res = run_one(scratch / "posts.db", scratch, pictures, nice)
                runs[name].append(res)
                print(f"  run {r + 1} {name}: {res['posts_per_second']:,.0f} posts/s, "
                      f"pictures read {res['pictures_read_during']}, load {res['load_average_during_run']}",
                      flush=True)
    report = summarise(runs, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "image_contention.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    (RESULTS / "image_contention.md").write_text(render_md(report))
    print(render_md(report))


def summarise(runs: dict[str, list[dict]], args: argparse.Namespace) -> dict:
    rows = {}
    for name, results in runs.items():
        rows[name] = {
            "posts_per_second_median": round(statistics.median(r["posts_per_second"] for r in results), 1),
            "posts_per_second_runs": [r["posts_per_second"] for r in results],
            "pictures_per_second_median": round(statistics.median(r["pictures_per_second_during"] for r in results), 2),
            "load_average_runs": [r["load_average_during_run"] for r in results],
        }
    alone = rows["alone"]["posts_per_second_median"]
    for row in rows.values():
        row["share_of_alone"] = round(row["posts_per_second_median"] / alone, 3) if alone else None
    return {"run_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "posts": args.posts,
            "pictures": args.pictures, "repeats": args.repeats, "cpus": os.cpu_count(),
            "per_minute_budget": os.environ.get("YUQING_IMAGE_OCR_PER_MINUTE", "120 (default)"),
            "target_share": TARGET, "rows": rows,
            "met": (rows["pictures (nice 10)"]["share_of_alone"] or 0) >= TARGET}


def render_md(r: dict) -> str:
    lines = [
        "# Text analysis while pictures queue (bench/bench_image_contention.py)", "",
        f"Run {r['run_at']}; {r['posts']:,} synthetic posts analysed by `yuqing analyze` (bench_analyze's child run, "
        f"its worker pool), while the real picture worker (`yuqing images work`, budget {r['per_minute_budget']} "
        f"pictures a minute) reads {r['pictures']} rendered pictures; {r['cpus']} CPUs; {r['repeats']} runs of each "
        "variant, alternated; medians.", "",
        "| variant | posts/s | share of alone | pictures/s read meanwhile | load average (runs) |",
        "|---|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | {row['posts_per_second_median']:,.0f} | {row['share_of_alone']} | "
                     f"{row['pictures_per_second_median']} | {row['load_average_runs']} |")
    lines += ["", f"Target: with pictures queued (the shipped priority, nice 10) at least {r['target_share']:.0%} "
              f"of the speed alone: {'met' if r['met'] else 'NOT met'}.", "",
              "The picture worker lowers its own CPU priority (YUQING_IMAGE_WORKER_NICE, default 10): when both are "
              "busy the kernel gives the analysis the cores, and the pictures are read in the time it leaves. The "
              "nice 0 row is the same worker at normal priority, for comparison. Other jobs on the machine "
              "(see the load average) lower every row alike.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
