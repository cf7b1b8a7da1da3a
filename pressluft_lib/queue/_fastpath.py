"""The queue's hot path: claim, finish and settling resources, with the named statements of
storage/sql (one file per dialect).

SQLite runs them as typed `text()` statements (ORM statements rebuilt per call spent most of their
time generating cache keys). PostgreSQL runs each as one prepared statement straight on psycopg: the
per-statement work of SQLAlchemy cost more client CPU than the statement itself (claim + finish,
one worker: 1.16 -> 0.6 ms; benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import make_transient_to_detached

from pressluft_lib import jobtypes
from pressluft_lib.errors import ConflictError
from pressluft_lib.states import settle_map
from pressluft_lib.storage import sql
from pressluft_lib.storage.models import Job

_JOB_NAMES = tuple(c.name for c in Job.__table__.c)


@contextmanager
def autocommit(engine: Engine) -> Iterator[Any]:
    """A pooled psycopg connection in autocommit: each hot-path statement is atomic on its own, and
    this skips BEGIN/COMMIT round trips and SQLAlchemy's per-checkout isolation-level handling."""
    pooled = engine.raw_connection()
    dbapi = pooled.driver_connection
    try:
        dbapi.autocommit = True
        yield dbapi
    finally:
        if dbapi.broken or dbapi.closed:  # SQLAlchemy never saw the error: drop the connection here
            pooled.invalidate()
        else:
            dbapi.autocommit = False  # back to the pool as SQLAlchemy handed it out
        pooled.close()


def pg_row(dbapi: Any, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Run the named PostgreSQL statement (storage/sql) returning a job row, prepared, on a psycopg
    connection; the job's columns, or None. JSON parameters must be wrapped with `json_param`."""
    with dbapi.cursor() as cur:
        row = cur.execute(sql.pg(name), params, prepare=True).fetchone()
    return None if row is None else dict(zip(_JOB_NAMES, row, strict=True))


def json_param(value: Any) -> Any:
    from psycopg.types.json import Json  # here, not at the top: ~0.2 s of import SQLite users never need

    return Json(value)


def node_types() -> list[str]:
    return [t.name for t in jobtypes.JOB_TYPES.values() if t.scope == "node"] or [""]


def to_job(row: Any) -> Job:
    """A detached Job from a result row or a psycopg dict row (merge/add it to a session to change it)."""
    # Filled like the ORM's own loader does (no __init__, no change events): about 0.2 ms cheaper.
    job = Job.__mapper__.class_manager.new_instance()
    job.__dict__.update(row if isinstance(row, dict) else row._mapping)
    make_transient_to_detached(job)
    return job


def add_event(conn: Connection, job_id: int, seq: int, data: dict[str, Any], now: datetime) -> None:
    """SQLite: the state event of a claim or finish, whose UPDATE already took its seq."""
    params = {"job_id": job_id, "seq": seq, "kind": "state", "data": data, "now": now}
    conn.execute(sql.sqlite("insert_job_event"), params)


_TARGETS = {"site": ("sites", "environments"), "node": ("nodes",)}


def settle(
    conn: Connection,
    job: Job,
    success: bool,
    now: datetime,
    actor: str | None = None,
    untouched: bool = False,
) -> list[tuple[str, str, str]]:
    """Move the job's resources out of their mutating state by the settle rule (states.settle_map):
    site jobs their site and environment, node jobs their node. Returns (target, from, to).

    finish() does this inside its own statement on PostgreSQL; this serves SQLite's finish and
    every other ending (stall, deadline, cancel) on both."""
    jt = jobtypes.JOB_TYPES.get(job.type)
    rule = settle_map(success, untouched)
    ids = {"sites": job.site_id, "environments": job.env_id, "nodes": job.node_id}
    done = []
    for table in _TARGETS["node" if jt is not None and jt.scope == "node" else "site"]:
        if ids[table] is None:
            continue
        if conn.dialect.name != "sqlite":
            params = {"id": ids[table], "settle": json_param(rule), "now": now, "actor": actor}
            with conn.connection.driver_connection.cursor() as cur:
                cur.execute(sql.pg(f"settle_{table}"), {**params, "job_id": job.id, "job_type": job.type})
                done.extend(cur.fetchall())
            continue
        row = conn.execute(sql.sqlite(f"state_of_{table}"), {"id": ids[table]}).first()
        if row is None or row.state not in rule:
            continue
        new = rule[row.state]
        params = {"new": new, "now": now, "id": ids[table], "old": row.state}
        if conn.execute(sql.sqlite(f"settle_{table}"), params).rowcount != 1:
            raise ConflictError(f"{table}:{row.name} changed concurrently while settling job {job.id}")
        target = f"{table}:{row.name}"
        detail = {"from": row.state, "to": new, "job_id": job.id, "job_type": job.type}
        audit = {"actor": actor, "target": target, "result": new, "detail": detail, "now": now}
        conn.execute(sql.sqlite("insert_audit"), audit)
        done.append((target, row.state, new))
    return done
