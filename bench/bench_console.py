"""Review console: the alert queue's weight and server time with 100k alerts in the database.

Targets (issue 6): the queue page showing 50 alerts transfers < 300 KB (page + its CSS, JS and
icon), and the server renders it in < 200 ms with 100k alerts in the DB.

Builds a fresh SQLite database (and PostgreSQL too when reachable on 127.0.0.1 and
``--postgres`` is given), bulk-inserts 100k alerts with their stories and some history, serves the
real app with uvicorn on a loopback port and times real HTTP requests with a logged-in session.
Results: bench/results/console.json and console.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TITLES = ["网传“{v}明天起封路”", "{v}群内称自来水被污染", "{v}超市鸡蛋蔬菜涨价", "网传“{v}发现确诊病例，全村隔离”",
          "{v}家长询问学校是否停课", "{v}卫生院免费发口罩", "{v}通往县城的班车停运", "{v}有人囤积退烧药"]
VILLAGES = ["青禾镇", "东湾村", "柳树村", "石桥村", "南坪村"]
CATEGORIES = ["交通出行", "公共安全", "物价", "疫情防控措施/隔离", "教育", "物资供应", "医疗救治", "其他"]
STATUS_MIX = [("closed", 60), ("dismissed", 25), ("responded", 5), ("new", 4), ("acknowledged", 3),
              ("confirmed_rumor", 2), ("confirmed_concern", 1)]
SEVERITY = ["low", "medium", "high", "urgent"]


def populate(url: str, n: int, seed: int = 7) -> dict[str, int]:
    from sqlalchemy import insert

    from api import accounts
    from core.db import make_engine, session_scope
    from core.migrate import upgrade
    from core.tables import Alert, AlertEvent, Story

    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as s:
        users = [accounts.create_user(s, username=f"staff{i}", role="staff", display_name=f"工作人员{i}").id
                 for i in range(3)]
    statuses = [s for s, w in STATUS_MIX for _ in range(w)]
    chunk = 10_000
    started = time.perf_counter()
    with engine.begin() as conn:
        for start in range(0, n, chunk):
            stories, alerts, events = [], [], []
            for i in range(start, min(n, start + chunk)):
                sid = i + 1
                at = now - dt.timedelta(minutes=rng.uniform(0, 180 * 24 * 60))
                village = rng.choice(VILLAGES)
                title = rng.choice(TITLES).format(v=village)
                posts = rng.randint(1, 60)
                stories.append({"id": sid, "title": title, "first_seen": at - dt.timedelta(hours=3), "last_seen": at,
                                "post_count": posts, "group_count": rng.randint(1, 9), "source_count": rng.randint(0, 3),
                                "hourly_counts": {}, "created_at": at, "updated_at": at})
                sev = rng.choices(SEVERITY, weights=[40, 35, 20, 5])[0]
                status = rng.choice(statuses)
                alerts.append({"id": sid, "story_id": sid, "kind": rng.choice(["rumor", "debunk_match", "spread", "concern"]),
                               "title": title, "summary": f"{village}多个群转发：{title}，请核实。" * 2,
                               "severity": sev, "severity_rank": SEVERITY.index(sev), "risk_score": rng.uniform(20, 99),
                               "score_parts": {}, "rules_fired": [], "category": rng.choice(CATEGORIES),
                               "status": status, "assignee_id": rng.choice([None, *users]) if status != "new" else None,
                               "escalation_level": 0, "post_count": posts, "group_count": rng.randint(1, 9),
                               "noted_post_count": posts, "created_at": at - dt.timedelta(hours=1), "updated_at": at})
                events.append({"alert_id": sid, "at": at - dt.timedelta(hours=1), "action": "created",
                               "to_status": "new", "detail": {}})
                if rng.random() < 0.2:
                    events.append({"alert_id": sid, "at": at, "action": "rising", "to_status": None, "detail": {}})
            conn.execute(insert(Story), stories)
            conn.execute(insert(Alert), alerts)
            conn.execute(insert(AlertEvent), events)
    insert_seconds = round(time.perf_counter() - started, 1)
    # Bulk inserts bypass the ORM: their search words come from the backfill an upgrade runs.
    from core.search import prepare

    started = time.perf_counter()
    prepare(engine)
    search_backfill_seconds = round(time.perf_counter() - started, 1)
    # Statistics (and on PostgreSQL the visibility map) as autovacuum keeps them in a live database.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()
    return {"alerts": n, "insert_seconds": insert_seconds, "search_backfill_seconds": search_backfill_seconds,
            "user_id": users[0]}


def serve(url: str):
    import uvicorn

    from api.app import create_app
    from core.db import make_engine

    engine = make_engine(url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}", engine


def measure(base: str, cookie: str, repeat: int, newest: int) -> dict[str, object]:
    import httpx

    from api.console.session import SESSION_COOKIE

    client = httpx.Client(base_url=base, cookies={SESSION_COOKIE: cookie}, timeout=30)
    out: dict[str, object] = {}
    pages = {
        "queue (default: open, most severe first)": "/",
        "queue, all 100k, newest first": "/?status=all&sort=recent",
        "queue, all, page 200": "/?status=all&page=200",
        "queue, search '封路'": "/?status=all&q=封路",
        "queue, words apart '自来水污染' (titles say 自来水被污染)": "/?status=all&q=自来水污染",
        "queue, filtered high + category": "/?severity=high&category=公共安全",
        "new-alert poll (every minute per open queue)": f"/queue/news?after={newest}&since={int(time.time()) - 60}",
        "alert detail": "/alerts/99999",
    }
    for name, path in pages.items():
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert "q=" not in path or '<li class="row ' in r.text, ("the search found nothing", path)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = client.get(path, headers={"Accept-Encoding": "identity"})
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[name] = {"path": path, "p50_ms": round(statistics.median(times), 1),
                     "p95_ms": round(times[int(len(times) * 0.95) - 1], 1), "max_ms": round(times[-1], 1)}
    # Page weight: the default queue as a browser fetches it (gzip accepted) plus its assets.
    raw = client.get("/", headers={"Accept-Encoding": "identity"})
    gz = client.get("/", headers={"Accept-Encoding": "gzip"})
    rows = raw.text.count('<li class="row ')
    wire_page = len(gzip.compress(raw.content, 5)) if gz.headers.get("content-encoding") == "gzip" else len(raw.content)
    assets = {p: len(client.get(p).content) for p in ("/static/console.css", "/static/console.js", "/static/favicon.svg")}
    out["weight"] = {"rows_on_page": rows, "html_bytes": len(raw.content), "html_gzip_bytes": wire_page,
                     "assets_bytes": assets, "total_transferred_bytes": wire_page + sum(assets.values()),
                     "total_uncompressed_bytes": len(raw.content) + sum(assets.values())}
    client.close()
    return out


def run_backend(name: str, url: str, n: int, repeat: int) -> dict[str, object]:
    from api.console.session import dump_session, new_csrf_token

    info = populate(url, n)
    server, thread, base, engine = serve(url)
    try:
        result = measure(base, dump_session(info["user_id"], new_csrf_token()), repeat, n)
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    return {"backend": name, "alerts_in_db": n, "insert_seconds": info["insert_seconds"],
            "search_backfill_seconds": info["search_backfill_seconds"], **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL at 127.0.0.1")
    args = parser.parse_args()
    os.environ.setdefault("YUQING_SECRET_KEY", "bench-secret")
    tmp = Path(tempfile.mkdtemp(prefix="yuqing-bench-console-"))
    os.environ["YUQING_DATA_DIR"] = str(tmp)
    runs = [run_backend("sqlite", f"sqlite:///{tmp / 'bench.db'}", args.alerts, args.repeat)]
    if args.postgres:
        from sqlalchemy import create_engine, text

        admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
        name = f"yuqing_bench_console_{os.getpid()}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            runs.append(run_backend("postgresql", f"postgresql://postgres@127.0.0.1:5432/{name}", args.alerts,
                                    args.repeat))
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    result = {"benchmark": "console", "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}, "
                         f"load average {os.getloadavg()[0]:.1f} at the end",
              "targets": {"queue_transfer_bytes": 300_000, "queue_render_ms": 200}, "runs": runs}
    ok = all(r["weight"]["total_transferred_bytes"] < 300_000 and
             r["queue (default: open, most severe first)"]["p95_ms"] < 200 for r in runs)
    result["targets_met"] = ok
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    lines = ["# Console benchmark", "", f"{result['date']} · {result['machine']}", "",
             "Targets: the queue page with 50 alerts transfers < 300 KB; the server renders it in < 200 ms "
             "with 100k alerts in the database. Times are full HTTP requests on loopback (uvicorn, one worker, "
             "logged-in session), so they include the server's whole work.", ""]
    for r in runs:
        w = r["weight"]
        lines += [f"## {r['backend']} — {r['alerts_in_db']:,} alerts", "",
                  f"Queue page: {w['rows_on_page']} rows, HTML {w['html_bytes'] / 1024:.1f} KB "
                  f"({w['html_gzip_bytes'] / 1024:.1f} KB gzip) + assets {sum(w['assets_bytes'].values()) / 1024:.1f} KB "
                  f"= **{w['total_transferred_bytes'] / 1024:.1f} KB transferred** "
                  f"({w['total_uncompressed_bytes'] / 1024:.1f} KB uncompressed). Search words of all "
                  f"{r['alerts_in_db']:,} alerts (core.search backfill, as an upgrade runs it): "
                  f"{r['search_backfill_seconds']} s.", "",
                  "| page | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|"]
        for key, v in r.items():
            if isinstance(v, dict) and "p50_ms" in v:
                lines.append(f"| {key} (`{v['path']}`) | {v['p50_ms']} | {v['p95_ms']} | {v['max_ms']} |")
        lines.append("")
    lines.append(f"Targets met: **{'yes' if ok else 'no'}**")
    (RESULTS / "console.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
