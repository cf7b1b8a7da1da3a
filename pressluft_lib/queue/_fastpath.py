"""The queue's hot path: claim, finish and settling resources, in SQL built once per dialect.

SQLite runs typed `text()` statements (ORM statements rebuilt per call spent most of their time
generating cache keys). PostgreSQL runs each as one prepared statement straight on psycopg: the
per-statement work of SQLAlchemy cost more client CPU than the statement itself (claim + finish,
one worker: 1.16 -> 0.6 ms; benchmarks/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.orm import make_transient_to_detached

from pressluft_lib import jobtypes
from pressluft_lib.errors import ConflictError
from pressluft_lib.states import (
    NODE_MUTATING,
    RESOURCE_MUTATING,
    SETTLE_SUCCESS,
    SETTLE_UNTOUCHED,
    ResourceState,
)
from pressluft_lib.storage.models import AuditLog, Job, JobEvent

_COLS = Job.__table__.c
_JOB_NAMES = tuple(c.name for c in _COLS)
_NAMES = ", ".join(_JOB_NAMES)
_DT = {name: bindparam(name, type_=_COLS.started_at.type) for name in ("now", "nb")}


def _to_psycopg(sql: str) -> str:
    """`:name` -> `%(name)s`, `IN :list` -> `= ANY(array)`; whitespace squeezed so that psycopg
    caches the parsed query (it does up to 4096 characters)."""
    assert "%" not in sql, "a literal % would need escaping for psycopg"
    sql = re.sub(r"\bNOT IN :(\w+)", r"<> ALL(%(\1)s)", sql)
    sql = re.sub(r"\bIN :(\w+)", r"= ANY(%(\1)s)", sql)
    return " ".join(re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql).split())


@cache
def claim_sql(dialect: str, with_types: bool) -> Any:
    """The oldest due queued job -> running. PostgreSQL: the state event in the same statement."""
    types = "AND type IN :types" if with_types else ""
    if dialect == "sqlite":
        lock, deadline = "", "datetime(:now, '+' || timeout_seconds || ' seconds')"
    else:
        lock, deadline = (
            "FOR UPDATE SKIP LOCKED",
            "CAST(:now AS TIMESTAMP) + timeout_seconds * interval '1 second'",
        )
    sql = f"""
        UPDATE jobs SET state = 'running', worker_id = :worker, attempts = attempts + 1,
            started_at = :now, heartbeat_at = :now, updated_at = :now, deadline_at = {deadline},
            event_seq = event_seq + 1
        WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND (not_before IS NULL OR not_before <= :now)
                    {types} ORDER BY id LIMIT 1 {lock})
          AND state = 'queued'
        RETURNING {_NAMES}"""
    if dialect == "sqlite":
        params = [_DT["now"]] + ([bindparam("types", expanding=True)] if with_types else [])
        return text(sql).bindparams(*params).columns(*_COLS)
    return _to_psycopg(f"""WITH c AS ({sql}), e AS (
        INSERT INTO job_events (job_id, seq, kind, data, created_at)
        SELECT c.id, c.event_seq, 'state', json_build_object('from', 'queued', 'to', 'running',
            'worker_id', CAST(:worker AS TEXT), 'attempt', c.attempts), :now FROM c)
        SELECT {_NAMES} FROM c""")


@cache
def finish_sql(dialect: str, with_worker: bool) -> Any:
    """SQLite: the job UPDATE only. PostgreSQL: one statement that also writes the state event and
    settles the job's resources (lock, move, audit: see settle()), so it needs no transaction of its own."""
    worker = "AND worker_id = :worker AND attempts = :attempt" if with_worker else ""
    sql = f"""
        UPDATE jobs SET state = :state, lock_key = NULL, finished_at = :now, updated_at = :now,
            error_code = :code, error_message = :msg, event_seq = event_seq + 1
        WHERE id = :id AND state = 'running' {worker}
        RETURNING {_NAMES}"""
    if dialect == "sqlite":
        return text(sql).bindparams(_DT["now"]).columns(*_COLS)
    on_success = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SETTLE_SUCCESS.items())
    parts = [
        f"j AS ({sql})",
        """e AS (INSERT INTO job_events (job_id, seq, kind, data, created_at)
              SELECT j.id, j.event_seq, 'state', CAST(:data AS JSON), :now FROM j)""",
    ]
    for table, col, scope in (
        ("sites", "site_id", "NOT IN"),
        ("environments", "env_id", "NOT IN"),
        ("nodes", "node_id", "IN"),
    ):
        mutating = ", ".join(f"'{m}'" for m in (NODE_MUTATING if table == "nodes" else RESOURCE_MUTATING))
        parts += [
            f"""o_{table} AS (SELECT x.id, x.name, x.state AS old FROM {table} x JOIN j ON x.id = j.{col}
                WHERE j.type {scope} :node_types AND x.state IN ({mutating}) FOR UPDATE OF x)""",
            f"""u_{table} AS (UPDATE {table} SET updated_at = :now,
                state = CASE WHEN j.state = 'succeeded' THEN (CASE o.old {on_success} END) ELSE 'failed' END
                FROM o_{table} o, j WHERE {table}.id = o.id RETURNING o.name, o.old, {table}.state AS new)""",
            f"""a_{table} AS (INSERT INTO audit_log (actor, action, target, result, detail, created_at)
                SELECT NULL, 'transition', '{table}:' || u.name, u.new,
                       json_build_object('from', u.old, 'to', u.new, 'job_id', j.id, 'job_type', j.type), :now
                FROM u_{table} u, j)""",
        ]
    return _to_psycopg("WITH " + ",\n".join(parts) + f"\nSELECT {_NAMES} FROM j")


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


def pg_row(dbapi: Any, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """Run a claim_sql/finish_sql statement on a psycopg connection; the job's columns, or None.
    JSON parameters must be wrapped with `json_param`."""
    with dbapi.cursor() as cur:
        row = cur.execute(sql, params, prepare=True).fetchone()
    return None if row is None else dict(zip(_JOB_NAMES, row, strict=True))


def json_param(value: Any) -> Any:
    from psycopg.types.json import Json  # here, not at the top: ~0.2 s of import SQLite users never need

    return Json(value)


def node_types() -> list[str]:
    return [t.name for t in jobtypes.JOB_TYPES.values() if t.scope == "node"] or [""]


INSERT_EVENT = JobEvent.__table__.insert()
INSERT_AUDIT = AuditLog.__table__.insert()


def to_job(row: Any) -> Job:
    """A detached Job from a result row or a psycopg dict row (merge/add it to a session to change it)."""
    # Filled like the ORM's own loader does (no __init__, no change events): about 0.2 ms cheaper.
    job = Job.__mapper__.class_manager.new_instance()
    job.__dict__.update(row if isinstance(row, dict) else row._mapping)
    make_transient_to_detached(job)
    return job


def add_event(conn: Connection, job_id: int, seq: int, data: dict[str, Any], now: datetime) -> None:
    conn.execute(
        INSERT_EVENT, {"job_id": job_id, "seq": seq, "kind": "state", "data": data, "created_at": now}
    )


@cache
def _select_state(table: str):
    return text(f"SELECT state, name FROM {table} WHERE id = :id")


@cache
def _update_state(table: str):
    return text(
        f"UPDATE {table} SET state = :new, updated_at = :now WHERE id = :id AND state = :old"
    ).bindparams(_DT["now"])


@cache
def _settle_pg(table: str):
    """Lock, move and audit one resource in one statement (PostgreSQL; SQLite runs three cheap ones)."""
    on_success = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SETTLE_SUCCESS.items())
    untouched = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in SETTLE_UNTOUCHED.items())
    return text(f"""
        WITH o AS (SELECT id, name, state AS old FROM {table}
                   WHERE id = :id AND state IN :mutating FOR UPDATE),
        u AS (UPDATE {table} SET updated_at = :now,
                state = CASE WHEN :ok THEN (CASE o.old {on_success} END)
                             WHEN :untouched THEN (CASE o.old {untouched} ELSE 'failed' END) ELSE 'failed' END
              FROM o WHERE {table}.id = o.id RETURNING o.name, o.old, {table}.state AS new),
        a AS (INSERT INTO audit_log (actor, action, target, result, detail, created_at)
              SELECT CAST(:actor AS TEXT), 'transition', '{table}:' || u.name, u.new,
                     json_build_object('from', u.old, 'to', u.new, 'job_id', CAST(:job_id AS INTEGER),
                                       'job_type', CAST(:job_type AS TEXT)), :now
              FROM u)
        SELECT name, old, new FROM u""").bindparams(_DT["now"], bindparam("mutating", expanding=True))


def settle(
    conn: Connection,
    job: Job,
    success: bool,
    now: datetime,
    actor: str | None = None,
    untouched: bool = False,
) -> list[tuple[str, str, str]]:
    """Move the job's resources out of their mutating state: success -> active/deleted, else failed
    (untouched: the job never ran, so SETTLE_UNTOUCHED applies first).

    Site jobs settle their site and environment, node jobs their node. Returns (target, from, to).
    """
    jt = jobtypes.JOB_TYPES.get(job.type)
    if jt is not None and jt.scope == "node":
        targets = [("nodes", job.node_id, NODE_MUTATING)]
    else:
        targets = [("sites", job.site_id, RESOURCE_MUTATING), ("environments", job.env_id, RESOURCE_MUTATING)]
    done = []
    for table, ident, mutating in targets:
        if ident is None:
            continue
        if conn.dialect.name != "sqlite":
            params = {"id": ident, "mutating": list(mutating), "now": now, "ok": success, "actor": actor}
            params["untouched"] = untouched
            res = conn.execute(_settle_pg(table), {**params, "job_id": job.id, "job_type": job.type}).first()
            if res is not None:
                done.append((f"{table}:{res.name}", res.old, res.new))
            continue
        row = conn.execute(_select_state(table), {"id": ident}).first()
        if row is None or row.state not in mutating:
            continue
        new = SETTLE_SUCCESS[row.state] if success else ResourceState.FAILED  # == NodeState.FAILED
        if untouched and not success:
            new = SETTLE_UNTOUCHED.get(row.state, new)
        if (
            conn.execute(
                _update_state(table), {"new": new, "now": now, "id": ident, "old": row.state}
            ).rowcount
            != 1
        ):
            raise ConflictError(f"{table}:{row.name} changed concurrently while settling job {job.id}")
        target = f"{table}:{row.name}"
        detail = {"from": row.state, "to": new, "job_id": job.id, "job_type": job.type}
        conn.execute(
            INSERT_AUDIT,
            {
                "actor": actor,
                "action": "transition",
                "target": target,
                "result": new,
                "detail": detail,
                "created_at": now,
            },
        )
        done.append((target, row.state, new))
    return done
