"""Helpers for the set-based writes of `yuqing analyze` (executemany of thousands of rows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, UpdateBase, bindparam
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import UserDefinedType

__all__ = ["constant", "executemany"]


class _Converted(UserDefinedType[Any]):
    """A value already converted for the driver: bound as is (no processor, no cast)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:  # never used in DDL
        raise NotImplementedError("_Converted types bind values only")


def constant(conn: Connection, column: ColumnElement[Any], value: Any) -> BindParameter[Any]:
    """``value`` for ``column`` in every row of an executemany, converted by the column type once.

    SQLAlchemy runs a bound value through its type's processors for every parameter set of an
    executemany, a value given in ``.values()`` too (measured: 1,000 rows, 1,000 conversions;
    for our aware-UTC datetimes that is two Python calls per row and column). Converted here once
    and bound untyped, the driver receives exactly what the type would have produced.
    """
    dialect = conn.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return bindparam(None, process(value) if process else value, type_=_Converted(), unique=True)


def executemany(conn: Connection, stmt: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> None:
    """``conn.execute(stmt, rows)`` for a plain UPDATE/INSERT run once per row, with less work per row.

    SQLAlchemy builds each parameter set through its general machinery (measured on the topic
    write-back: 44 µs a row against 30 µs here, for 23 columns; 100k posts write ~24k topic rows
    and 100k post rows). Here the statement is compiled once, each bind's type processor looked up
    once and applied in one loop, and the rows go to the driver as they are (``exec_driver_sql``):
    the same values, the same SQL. Binds not in the rows keep their own value (`constant`).
    Statements this does not cover (expanding IN, escaped bind names, Python-side defaults) go
    through ``conn.execute``.
    """
    if not rows:
        return
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect)
    names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
    # Python-side defaults (e.g. an ``onupdate`` stamp the statement does not set) are computed by
    # SQLAlchemy per execution: such statements take the ordinary path.
    if (compiled.escaped_bind_names or compiled.insert_prefetch or compiled.update_prefetch
            or any(compiled.binds[n].expanding for n in names)):
        conn.execute(stmt, list(rows))
        return
    given = rows[0].keys()
    fixed: dict[str, Any] = {}
    convert: list[tuple[str, Any]] = []  # (name, processor) of values taken from the rows
    for name in dict.fromkeys(names):
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in given:
            convert.append((name, process))
        else:
            value = bind.effective_value
            fixed[name] = process(value) if process else value
    done: list[dict[str, Any]] = []
    for row in rows:
        values = dict(fixed)
        for name, process in convert:
            values[name] = process(row[name]) if process is not None else row[name]
        done.append(values)
    params: list[Any] = [tuple(v[n] for n in names) for v in done] if compiled.positional else done
    conn.exec_driver_sql(compiled.string, params)
