"""Alert benchmarks, written to bench/results/alerts.json and alerts.md.

1. Evaluation: 10,000 newly analysed posts (in ~1,200 stories, scored, some matching debunks)
   -> ``alerts.evaluate.evaluate``; then a second batch of 10,000 posts that mostly fold into the
   alerts already open. Target: each under 5 s.
2. The alert list endpoint with 100,000 alerts in the database, on one uvicorn worker, with 32
   concurrent clients from a loopback load generator: wrk (Debian package) when installed, else
   a bounded httpx/asyncio client. Bounded in time (``--seconds``). Target: >= 800 req/s and
   p95 < 50 ms.

Run: ``PYTHONPATH=. python bench/bench_alerts.py [--database-url URL] [--seconds 15]``. Without a
URL a fresh SQLite database is made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alerts import evaluate as evaluation  # noqa: E402
from alerts.notify import NotifyConfig  # noqa: E402
from api import accounts  # noqa: E402
from core.db import make_engine, session_scope  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.tables import Alert, ChatGroup, DebunkMatch, Post, PostScore, Story, utcnow  # noqa: E402
from tests.factories import make_debunk  # noqa: E402

RESULTS = REPO / "bench" / "results"
VILLAGES = ("东湾村", "柳树村", "石桥村", "南坪村", "青禾镇")
TEMPLATES = (
    "听说{v}明天要封路，大家赶紧去超市囤菜！",
    "{v}卫生院的药快没了吗？有没有人知道什么时候补货",
    "转发：{v}有人发烧被拉走了，大家注意",
    "{v}的菜价又涨了，一斤白菜八块钱",
    "紧急扩散！{v}自来水被污染，千万别喝",
)
CATEGORIES = ("交通出行", "医疗救治", "疫情防控措施/隔离", "物价", "公共安全")


def _now() -> dt.datetime:
    return utcnow().replace(microsecond=0)


def seed_posts(engine: Engine, n_posts: int, n_stories: int, *, start_story: int | None = None,
               seed: int = 7) -> None:
    """``n_posts`` analysed posts in ``n_stories`` stories (Zipf-like sizes), with scores and matches."""
    rng = random.Random(seed)
    now = _now()
    with session_scope(engine) as s:
        if s.query(ChatGroup).count() == 0:
            s.execute(insert(ChatGroup), [{"platform": "wechat", "external_id": f"g{i}",
                                           "name": f"{VILLAGES[i % 5]}群{i}", "tags": [], "keep_names": False,
                                           "enabled": True, "created_at": now} for i in range(200)])
        debunk_id = make_debunk(s).id
        if start_story is None:
            s.execute(insert(Story), [{"title": None, "first_seen": now - dt.timedelta(hours=6), "last_seen": now,
                                       "post_count": 0, "group_count": 0, "source_count": 0, "hourly_counts": {},
                                       "created_at": now, "updated_at": now} for _ in range(n_stories)])
        story_ids = [r[0] for r in s.execute(text("SELECT id FROM stories ORDER BY id"))][-n_stories:]
        group_ids = [r[0] for r in s.execute(text("SELECT id FROM chat_groups"))]
        base = s.execute(text("SELECT COALESCE(MAX(id), 0) FROM posts")).scalar_one()
        weights = [1 / (i + 1) for i in range(len(story_ids))]
        chosen = rng.choices(story_ids, weights=weights, k=n_posts)
        posts, scores, matches = [], [], []
        for i, sid in enumerate(chosen):
            v = VILLAGES[sid % 5]
            body = TEMPLATES[sid % len(TEMPLATES)].format(v=v) + f" #{base + i}"
            at = now - dt.timedelta(minutes=rng.randint(0, 360))
            pid = base + i + 1
            posts.append({"id": pid, "dedup_key": f"bench:{pid}", "channel": "chat", "group_id": rng.choice(group_ids),
                          "raw_text": body, "norm_text": body, "content_hash": hashlib.sha256(body.encode()).hexdigest(),
                          "published_at": at, "collected_at": at, "updated_at": at, "analyzed_at": now,
                          "story_id": sid, "category": CATEGORIES[sid % 5], "negativity": rng.random(),
                          "is_local": rng.random() < 0.6, "places": [v], "extra": {}, "is_forward": False})
            prob = min(1.0, max(0.0, rng.gauss(0.8 if sid % 3 == 0 else 0.3, 0.15)))
            scores.append({"post_id": pid, "rumor_probability": prob, "label": int(prob >= 0.5),
                           "explanation": [["封路", 0.5]], "scored_at": now})
            if sid % 17 == 0:
                matches.append({"post_id": pid, "debunk_id": debunk_id, "similarity": 0.9, "method": "minhash",
                                "matched_at": now})
        for chunk in range(0, len(posts), 5000):
            s.execute(insert(Post), posts[chunk : chunk + 5000])
            s.execute(insert(PostScore), scores[chunk : chunk + 5000])
        if matches:
            s.execute(insert(DebunkMatch), matches)
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequence past them
            s.execute(text("SELECT setval(pg_get_serial_sequence('posts', 'id'), (SELECT MAX(id) FROM posts))"))
        # the story table as the analysis keeps it
        s.execute(text("""
            UPDATE stories SET
              post_count = (SELECT COUNT(*) FROM posts p WHERE p.story_id = stories.id),
              group_count = (SELECT COUNT(DISTINCT p.group_id) FROM posts p WHERE p.story_id = stories.id),
              representative_post_id = (SELECT MIN(p.id) FROM posts p WHERE p.story_id = stories.id),
              max_rumor_probability = (SELECT MAX(sc.rumor_probability) FROM post_scores sc
                                       JOIN posts p ON p.id = sc.post_id WHERE p.story_id = stories.id)
        """))


def bench_evaluate(engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seed_posts(engine, 10_000, 1_200)
    quiet = NotifyConfig()
    for label in ("first_10k", "second_10k_folding"):
        if label == "second_10k_folding":
            seed_posts(engine, 10_000, 1_200, start_story=1, seed=11)
            time.sleep(1.1)  # a new analyzed_at second, past the first run's watermark
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            result = evaluation.evaluate(s, notify_config=quiet)
        seconds = time.perf_counter() - t0
        out[label] = {"seconds": round(seconds, 3), **result.as_dict()}
        print(f"evaluate {label}: {seconds:.2f} s {result.as_dict()}", flush=True)
    return out


def seed_alerts(engine: Engine, n: int) -> None:
    rng = random.Random(3)
    now = _now()
    sev = ("low", "medium", "high", "urgent")
    statuses = ("new", "new", "acknowledged", "confirmed_rumor", "responded", "dismissed", "closed")
    rows = []
    for i in range(n):
        rank = rng.choices(range(4), weights=(4, 3, 2, 1))[0]
        at = now - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 90))
        rows.append({"kind": "rumor", "title": f"{VILLAGES[i % 5]}{TEMPLATES[i % 5][:8]} {i}",
                     "summary": TEMPLATES[i % 5].format(v=VILLAGES[i % 5]), "severity": sev[rank],
                     "severity_rank": rank, "risk_score": 20 + 20 * rank + rng.random() * 10,
                     "score_parts": {}, "rules_fired": [], "category": CATEGORIES[i % 5],
                     "status": rng.choice(statuses), "escalation_level": 0, "post_count": rng.randint(1, 80),
                     "group_count": rng.randint(1, 12), "noted_post_count": 0, "created_at": at, "updated_at": at})
    with session_scope(engine) as s:
        for chunk in range(0, n, 10_000):
            s.execute(insert(Alert), rows[chunk : chunk + 10_000])
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE alerts"))
        conn.commit()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "errors_status": %%d, '
    .. '"errors_connect": %%d, "errors_timeout": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def run_wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % token)
        script = f.name
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script, url],
                             capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON "):])
    return {"tool": "wrk 2 threads", "requests": data["requests"],
            "req_per_s": round(data["requests"] / (data["duration_us"] / 1e6), 1),
            "p50_ms": data["p50_us"] / 1000, "p95_ms": data["p95_us"] / 1000, "p99_ms": data["p99_us"] / 1000,
            "max_ms": data["max_us"] / 1000,
            "errors": data["errors_status"] + data["errors_connect"] + data["errors_timeout"]}


def run_httpx(url: str, token: str, seconds: int, connections: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient, stop: float) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await client.get(url)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, limits=limits) as client:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(client, t0 + seconds) for _ in range(connections)))
            return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    q = statistics.quantiles(latencies, n=100)
    return {"tool": "httpx asyncio", "requests": len(latencies), "req_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000, "max_ms": max(latencies) * 1000,
            "errors": errors}


def bench_list(url_db: str, engine: Engine, seconds: int, connections: int) -> dict[str, Any]:
    seed_alerts(engine, 100_000)
    with session_scope(engine) as s:
        user = accounts.create_user(s, username="bench-staff", role="staff")
        token = accounts.create_token(s, user, "bench")
    port = _free_port()
    env = dict(os.environ, YUQING_DATABASE_URL=url_db, PYTHONPATH=str(REPO), YUQING_LOG_LEVEL="WARNING")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
        cwd=REPO, env=env)
    results: dict[str, Any] = {}
    try:
        import httpx
        import psutil

        proc = psutil.Process(server.pid)

        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        cases = {
            "queue (default: all, severity then recency)": "/api/v1/alerts",
            "open, filtered by status and severity": "/api/v1/alerts?status=new&severity=urgent&severity=high",
            "text search": "/api/v1/alerts?q=%E5%B0%81%E8%B7%AF&status=new",
        }
        use_wrk = shutil.which("wrk") is not None
        for name, path in cases.items():
            url = f"http://127.0.0.1:{port}{path}"
            check = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
            assert check.status_code == 200, check.text
            # warm up, then measure; the server's own CPU time per request tells its capacity on a
            # free core even when other work shares the machine (the load average is recorded too)
            (run_wrk if use_wrk else run_httpx)(url, token, 2, connections)
            cpu0 = proc.cpu_times()
            r = (run_wrk if use_wrk else run_httpx)(url, token, seconds, connections)
            cpu1 = proc.cpu_times()
            cpu_ms = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) * 1000 / max(1, r["requests"])
            r["server_cpu_ms_per_request"] = round(cpu_ms, 3)
            r["capacity_req_per_s_one_free_core"] = round(1000 / cpu_ms, 1) if cpu_ms else None
            r["load_average_1m"] = round(os.getloadavg()[0], 2)
            r["total_matching"] = check.json()["total"]
            results[name] = r
            print(f"list {name}: {r}", flush=True)
    finally:
        server.terminate()
        server.wait(10)
    return results


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "alerts.json").write_text(json.dumps(results, ensure_ascii=False, indent=2, default=str) + "\n")
    ev = results["evaluate"]
    lines = [
        "# Alert benchmarks", "",
        f"Machine: {results['machine']}; database: {results['database']}; run {results['date']}.", "",
        "## Evaluation (target: < 5 s for 10,000 new posts)", "",
        "| batch | seconds | posts | stories | alerts created | folded | rising |", "|---|---|---|---|---|---|---|",
    ]
    for name, r in ev.items():
        lines.append(f"| {name} | {r['seconds']} | {r['posts_seen']} | {r['stories_seen']} | {r['created']} | "
                     f"{r['folded']} | {r['rising']} |")
    lines += ["", f"## Alert list endpoint, 100,000 alerts, {results['connections']} concurrent clients, "
              f"{results['seconds']} s each, one uvicorn worker (target: >= 800 req/s, p95 < 50 ms)", "",
              "| query | tool | req/s | p50 ms | p95 ms | p99 ms | errors | matching alerts | server CPU ms/req "
              "| capacity on a free core (req/s) | load avg |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["list"].items():
        lines.append(f"| {name} | {r['tool']} | {r['req_per_s']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['errors']} | {r['total_matching']} | {r['server_cpu_ms_per_request']} "
                     f"| {r['capacity_req_per_s_one_free_core']} | {r['load_average_1m']} |")
    lines += ["", f"Load average (1 min) at the start of the run: {results['load_average_start']} on "
              f"{os.cpu_count()} CPUs. Other work on the machine takes CPU from both the server and the load "
              "generator, so req/s and latency are then lower bounds; the server's CPU time per request "
              "is the steadier figure."]
    (RESULTS / "alerts.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="yuqing-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    os.environ["YUQING_DATA_DIR"] = tmp
    os.environ.setdefault("YUQING_SECRET_KEY", "bench-secret")
    os.environ["YUQING_DATABASE_URL"] = url
    upgrade(url)
    engine = make_engine(url)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "database": engine.dialect.name, "seconds": args.seconds, "connections": args.connections,
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    results["evaluate"] = bench_evaluate(engine)
    results["list"] = bench_list(url, engine, args.seconds, args.connections)
    engine.dispose()
    write(results)
    shutil.rmtree(tmp, ignore_errors=True)
    print((RESULTS / "alerts.md").read_text())


if __name__ == "__main__":
    main()
