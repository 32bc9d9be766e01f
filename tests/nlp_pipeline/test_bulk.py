"""`nlp.bulk.executemany` writes exactly what ``conn.execute(stmt, rows)`` writes (JSON, aware
datetimes, None, a `constant`), on SQLite and PostgreSQL, and falls back where it must."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from core.tables import Topic
from nlp.bulk import constant, executemany

_T = Topic.__table__
_COLUMNS = ("label", "keywords", "places", "first_seen", "hot_since", "negativity", "is_hot", "facets", "centroid")


def _topics(session: Session, n: int) -> list[int]:
    seen = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    rows = [Topic(label=f"t{i}", first_seen=seen, last_seen=seen) for i in range(n)]
    session.add_all(rows)
    session.flush()
    return [t.id for t in rows]


def _read(session: Session, ids: list[int]) -> list[tuple]:
    cols = [_T.c[c] for c in (*_COLUMNS, "updated_at")]
    return [tuple(r) for r in session.execute(select(*cols).where(_T.c.id.in_(ids)).order_by(_T.c.id))]


def test_executemany_writes_what_execute_writes(session: Session) -> None:
    ids_a, ids_b = _topics(session, 3), _topics(session, 3)
    when = dt.datetime(2026, 11, 28, 6, 30, 15, 123456, tzinfo=dt.UTC)
    stamp = dt.datetime(2026, 11, 29, 1, 2, 3, tzinfo=dt.UTC)
    values = [
        {"b_label": "口罩、药店", "b_keywords": [["口罩", 3], ["药店", 1]], "b_places": ["东湾村"],
         "b_first_seen": when, "b_hot_since": None, "b_negativity": 0.25, "b_is_hot": True,
         "b_facets": {"groups": {"1": 2}, "categories": {"物资供应": 2}}, "b_centroid": b"\x00\x01"},
        {"b_label": "<script>alert(1)</script>", "b_keywords": [], "b_places": [], "b_first_seen": when,
         "b_hot_since": when, "b_negativity": None, "b_is_hot": False, "b_facets": {}, "b_centroid": None},
        {"b_label": "", "b_keywords": [["引号\"和\\", 1]], "b_places": [], "b_first_seen": when,
         "b_hot_since": None, "b_negativity": 1.0, "b_is_hot": False, "b_facets": {"n": None}, "b_centroid": b""},
    ]
    conn = session.connection()
    stmt = (update(_T).where(_T.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in _COLUMNS} | {"updated_at": constant(conn, _T.c.updated_at, stamp)}))
    conn.execute(stmt, [{**v, "b_id": i} for v, i in zip(values, ids_a, strict=True)])
    executemany(conn, stmt, [{**v, "b_id": i} for v, i in zip(values, ids_b, strict=True)])
    written = _read(session, ids_b)
    assert written == _read(session, ids_a)
    assert written[0][1] == [["口罩", 3], ["药店", 1]] and written[1][0] == "<script>alert(1)</script>"
    assert written[0][-1].replace(tzinfo=None) == stamp.replace(tzinfo=None)


def test_executemany_leaves_python_side_defaults_to_sqlalchemy(session: Session) -> None:
    """Topic.updated_at has an ``onupdate``: a statement that does not set it still gets the stamp."""
    ids = _topics(session, 2)
    session.execute(update(_T).where(_T.c.id.in_(ids)).values(updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    executemany(session.connection(), update(_T).where(_T.c.id == bindparam("b_id")).values(priority=bindparam("b_p")),
                [{"b_id": i, "b_p": 2.5} for i in ids])
    rows = session.execute(select(_T.c.priority, _T.c.updated_at).where(_T.c.id.in_(ids))).all()
    assert [p for p, _ in rows] == [2.5, 2.5]
    assert all(u.year >= 2026 for _, u in rows)
    executemany(session.connection(), update(_T).values(priority=1.0), [])  # nothing to do: no statement
