"""PostgreSQL word search: tsvector over jieba words (what core.search uses) vs pg_trgm on the raw text.

100k rows with bench_console's alert texts; each query's words (core.textsearch.query_tokens) must
all match: `to_tsvector('simple', tokens) @@ plainto_tsquery(...)` against one `LIKE '%word%'` per
word on a pg_trgm GIN index, with plain substring (strpos) for reference.
Run: nice -n 10 python bench/experiments/search_tsvector_vs_trgm.py (PostgreSQL on 127.0.0.1 with
pg_trgm). What it found is in bench/results/search.md.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import Engine, create_engine, text

from bench.bench_console import TITLES, VILLAGES
from core.textsearch import document_tokens, query_tokens

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB = "yq_search_compare"


def build(engine: Engine, n: int = 100_000) -> None:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        village = rng.choice(VILLAGES)
        title = rng.choice(TITLES).format(v=village)
        summary = f"{village}多个群转发：{title}，请核实。" * 2
        rows.append({"id": i + 1, "body": f"{title} {summary}", "tokens": document_tokens(title, summary)})
    with engine.begin() as c:
        c.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        c.execute(text("CREATE TABLE t (id int primary key, body text, tokens text)"))
        c.execute(text("INSERT INTO t VALUES (:id, :body, :tokens)"), rows)
        for name, ddl in (("tsvector", "CREATE INDEX t_ts ON t USING gin (to_tsvector('simple', tokens))"),
                          ("pg_trgm", "CREATE INDEX t_trgm ON t USING gin (body gin_trgm_ops)")):
            started = time.perf_counter()
            c.execute(text(ddl))
            print(f"{name} index built in {time.perf_counter() - started:.1f} s")
        c.execute(text("ANALYZE t"))
        sizes = c.execute(text("SELECT pg_size_pretty(pg_relation_size('t_ts')), "
                               "pg_size_pretty(pg_relation_size('t_trgm'))")).one()
    print(f"index size: tsvector {sizes[0]}, pg_trgm {sizes[1]}")


def timed(engine: Engine, sql: str, params: dict[str, Any], n: int = 9) -> str:
    times = []
    with engine.connect() as c:
        for _ in range(n):
            started = time.perf_counter()
            found = c.execute(text(sql), params).scalar()
            times.append((time.perf_counter() - started) * 1000)
        scans = [row[0].strip().lstrip("-> ").split("  ")[0] for row in c.execute(text("EXPLAIN " + sql), params)
                 if "Scan" in row[0]]
    return f"{statistics.median(times):.1f} ms, {found} rows ({scans[-1] if scans else '?'})"


def main() -> None:
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {DB}"))
        c.execute(text(f"CREATE DATABASE {DB}"))
    engine = create_engine(ADMIN.rsplit("/", 1)[0] + "/" + DB)
    try:
        build(engine)
        for q in ["封路", "自来水污染", "东湾村 口罩", "水"]:
            words = query_tokens(q)
            likes = " AND ".join(f"body LIKE :p{i}" for i in range(len(words)))
            print(f"{q!r} -> {words}")
            print("  tsvector :", timed(engine, "SELECT count(*) FROM t WHERE to_tsvector('simple', tokens) "
                                                "@@ plainto_tsquery('simple', :w)", {"w": " ".join(words)}))
            print("  pg_trgm  :", timed(engine, f"SELECT count(*) FROM t WHERE {likes}",
                                        {f"p{i}": f"%{w}%" for i, w in enumerate(words)}))
            print("  substring:", timed(engine, "SELECT count(*) FROM t WHERE strpos(body, :q) > 0", {"q": q}))
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    main()
