"""How long the daily digest takes to build on a busy day: figures, charts, rendering.

A fresh SQLite database (and PostgreSQL when reachable at YUQING_BENCH_PG_ADMIN_URL or the
default test URL) gets N posts and messages on one day (5% scored as rumors, 1% matched to a
debunk, 20% on 20 topics), N/10 the day before, 200 alerts with history and 50 responses. We time
build_summary, the two charts and the render, for N = 10k and 100k.
Writes bench/results/digest.json and .md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import tempfile
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.orm import Session

from core.db import make_engine
from core.migrate import upgrade
from core.settings import Settings
from core.tables import Alert, AlertEvent, Debunk, DebunkMatch, Post, PostScore, Response, Topic
from digest import charts
from digest.build import build_summary
from digest.render import render

HERE = Path(__file__).resolve().parent
TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 20)
SIZES = (10_000, 100_000)
CATEGORIES = ["物资供应", "医疗救治", "疫情防控措施/隔离", "交通出行", "物价", None]
PG_ADMIN = os.environ.get("YUQING_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _seed(session: Session, n: int) -> None:
    rng = random.Random(7)
    start = dt.datetime.combine(DAY, dt.time(0), tzinfo=TZ).astimezone(dt.UTC)
    topics = [Topic(label=f"话题{i}", first_seen=start - dt.timedelta(days=1), last_seen=start + dt.timedelta(hours=20),
                    is_hot=i < 5, category=CATEGORIES[i % 5], places=["东湾村"], burst_score=float(i))
              for i in range(20)]
    session.add_all(topics)
    debunk = Debunk(dedup_key="bench", claim="东湾村封村", refutation="没有封村")
    session.add(debunk)
    session.flush()
    rows = []
    for i in range(n + n // 10):
        day_offset = 0 if i < n else -1
        at = start + dt.timedelta(days=day_offset, seconds=rng.randrange(86_400))
        rows.append({"dedup_key": f"b:{i}", "channel": "chat" if i % 3 else "web", "raw_text": f"帖子 {i}",
                     "content_hash": f"{i:064x}", "published_at": at, "collected_at": at, "updated_at": at,
                     "category": CATEGORIES[i % 6], "topic_id": topics[i % 20].id if i % 5 == 0 else None,
                     "negativity": (i % 10) / 10, "is_forward": False, "extra": {}, "places": []})
    conn = session.connection()
    for chunk in range(0, len(rows), 20_000):
        conn.execute(insert(Post.__table__), rows[chunk:chunk + 20_000])
    ids = list(session.scalars(select(Post.id).order_by(Post.id)))
    conn.execute(insert(PostScore.__table__), [
        {"post_id": pid, "rumor_probability": 0.9, "label": 1, "explanation": [],
         "scored_at": start} for pid in ids[::20]])
    conn.execute(insert(DebunkMatch.__table__), [
        {"post_id": pid, "debunk_id": debunk.id, "similarity": 0.9, "method": "minhash",
         "matched_at": start} for pid in ids[::100]])
    for i in range(200):
        created = start + dt.timedelta(minutes=7 * i)
        alert = Alert(kind="rumor" if i % 2 else "concern", title=f"预警{i}", severity=["low", "medium", "high",
                      "urgent"][i % 4], severity_rank=i % 4, risk_score=0.5, status="acknowledged",
                      created_at=created, updated_at=created)
        session.add(alert)
        session.flush()
        session.add(AlertEvent(alert_id=alert.id, at=created + dt.timedelta(minutes=5), action="status",
                               from_status="new", to_status="acknowledged"))
        if i % 4 == 0:
            session.add(Response(alert_id=alert.id, text="已回应", published_at=created + dt.timedelta(hours=1)))
    session.commit()


def _measure(url: str, n: int) -> dict[str, float]:
    engine = make_engine(url)
    settings = Settings(timezone="Asia/Shanghai")
    try:
        with Session(engine) as session:
            t0 = time.perf_counter()
            _seed(session, n)
            seeded = time.perf_counter() - t0
            now = dt.datetime.combine(DAY, dt.time(18), tzinfo=TZ)
            t0 = time.perf_counter()
            summary = build_summary(session, DAY, settings=settings, now=now)
            figures = time.perf_counter() - t0
        family = charts.find_cjk_family()
        t0 = time.perf_counter()
        charts.spread_chart(summary["hourly"], summary["hourly_rumor"], families=[family])
        charts.category_chart(summary["categories"], families=[family])
        drawn = time.perf_counter() - t0
        t0 = time.perf_counter()
        render(summary, title="青禾镇舆情日报")
        rendered = time.perf_counter() - t0
        assert summary["volume"]["total"] > 0
    finally:
        engine.dispose()
    return {"posts_on_day": summary["volume"]["total"], "seed_s": round(seeded, 2),
            "figures_s": round(figures, 3), "charts_s": round(drawn, 3), "render_s": round(rendered, 3),
            "total_s": round(figures + drawn + rendered, 3)}


def _pg_url() -> tuple[str, str] | None:
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"yqbench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception:
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def _drop_pg(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    results: dict[str, object] = {"machine": platform.platform(), "python": platform.python_version(),
                                  "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "runs": []}
    runs: list[dict[str, object]] = results["runs"]  # type: ignore[assignment]
    for n in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            runs.append({"database": "sqlite", "n": n} | _measure(url, n))
            print(runs[-1], flush=True)
        pg = _pg_url()
        if pg is not None:
            url, name = pg
            try:
                upgrade(url)
                runs.append({"database": "postgresql", "n": n} | _measure(url, n))
                print(runs[-1], flush=True)
            finally:
                _drop_pg(name)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "digest.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    lines = ["# Digest build time", "", f"{results['machine']}, Python {results['python']}, {results['date']}", "",
             "| database | posts on the day | figures (s) | charts (s) | render (s) | total (s) |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['database']} | {r['posts_on_day']} | {r['figures_s']} | {r['charts_s']} | "
                     f"{r['render_s']} | {r['total_s']} |")
    (out / "digest.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
