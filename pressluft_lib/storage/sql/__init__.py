"""The queue's SQL in one place per dialect: named statements in sqlite.sql and postgresql.sql.

As procrastinate keeps its queries in sql/queries.sql: each statement follows a `-- name: NAME`
line, written once in its dialect's own syntax (`:name` for SQLite through SQLAlchemy, psycopg's
`%(name)s` for PostgreSQL, which runs them as prepared statements). Nothing is generated: loading
only drops comment lines and squeezes whitespace (psycopg caches parsed queries up to 4096
characters). The settle rule they apply is states.settle_map().
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from sqlalchemy import JSON, DateTime, TextClause, bindparam, text

_NAME = re.compile(r"^-- name: (\w+)[ \t]*$", re.M)
# SQLite parameters that need a type (SQLAlchemy converts them; sqlite3 alone cannot).
_TYPED = {"now": DateTime(), "data": JSON(), "detail": JSON()}


@cache
def statements(dialect: str) -> dict[str, str]:
    source = files(__package__).joinpath(f"{dialect}.sql").read_text()
    parts = _NAME.split(source)[1:]
    out = {}
    for name, body in zip(parts[::2], parts[1::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        out[name] = " ".join(" ".join(lines).split())
    return out


def pg(name: str) -> str:
    """A PostgreSQL statement (psycopg parameters) for cursor.execute(..., prepare=True)."""
    return statements("postgresql")[name]


@cache
def sqlite(name: str) -> TextClause:
    """A SQLite statement as a typed text() clause; one returning `*` of jobs yields Job columns."""
    from pressluft_lib.storage.models import Job

    sql = statements("sqlite")[name]
    binds = [bindparam(k, type_=t) for k, t in _TYPED.items() if re.search(rf":{k}\b", sql)]
    if re.search(r"\bIN :types\b", sql):
        binds.append(bindparam("types", expanding=True))
    clause = text(sql).bindparams(*binds)
    return clause.columns(*Job.__table__.c) if sql.endswith("RETURNING *") else clause
