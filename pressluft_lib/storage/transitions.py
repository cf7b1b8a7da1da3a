"""The one guarded `transition()` every state change goes through (the tables are in pressluft_lib.states).

Events: a Job transition writes a JobEvent (kind "state"); a resource transition (node, site,
environment, release, backup, domain) writes an AuditLog row (action "transition",
target "<table>:<name or id>", result = new state, detail {"from", "to", ...event}).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from pressluft_lib import jobtypes
from pressluft_lib.errors import ConflictError, TransitionError
from pressluft_lib.states import (
    BACKUP,
    DOMAIN,
    JOB,
    NODE,
    RELEASE,
    RESOURCE,
    RETRY_FROM_FAILED,
    JobState,
    ResourceState,
)
from pressluft_lib.storage import sql
from pressluft_lib.storage.models import (
    AuditLog,
    Backup,
    Domain,
    Environment,
    Job,
    Node,
    Release,
    Site,
    utcnow,
)

MACHINES: dict[type, dict[str, frozenset[str]]] = {
    Job: JOB,
    Site: RESOURCE,
    Environment: RESOURCE,
    Node: NODE,
    Release: RELEASE,
    Backup: BACKUP,
    Domain: DOMAIN,
}


def allowed(model: type, current: str, new: str) -> bool:
    return new in MACHINES[model].get(current, frozenset())


def _target(obj: Any) -> str:
    name = getattr(obj, "name", None) or getattr(obj, "release_id", None) or obj.id
    return f"{obj.__tablename__}:{name}"


def add_job_event(session: Session, job_id: int, kind: str, data: dict[str, Any]) -> int:
    """Append an event to a job; returns its seq. The counter UPDATE serialises writers per job.
    Named statements (storage/sql): `add_job_event` on PostgreSQL, `next_event_seq` and
    `insert_job_event` on SQLite (which claim and finish use for their state events too)."""
    params = {"job_id": job_id, "kind": kind, "data": data, "now": utcnow()}
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        from psycopg.types.json import Json  # not at the top: SQLite users never need psycopg

        with conn.connection.driver_connection.cursor() as cur:
            return cur.execute(
                sql.pg("add_job_event"), {**params, "data": Json(data)}, prepare=True
            ).fetchone()[0]
    seq = conn.execute(sql.sqlite("next_event_seq"), params).scalar_one()
    conn.execute(sql.sqlite("insert_job_event"), {**params, "seq": seq})
    return seq


def transition(
    session: Session,
    obj: Any,
    new_state: str,
    *,
    event: dict[str, Any] | None = None,
    actor: str | None = None,
    values: dict[str, Any] | None = None,
    retry: bool = False,
) -> Any:
    """Move `obj` from its current state to `new_state` inside the caller's transaction.

    A conditional UPDATE (WHERE id AND state = current) guards against concurrent changes:
    TransitionError if the table forbids the move, ConflictError if someone changed the row first.
    `values` are extra columns set in the same UPDATE. retry=True (queue.retry only) also lets a failed
    site or environment enter a mutating state. Returns obj with the new values.
    """
    model = type(obj)
    if model not in MACHINES:
        raise TypeError(f"{model.__name__} has no state machine")
    current = obj.state
    retrying = retry and model in (Site, Environment) and current == ResourceState.FAILED
    retrying = retrying and new_state in RETRY_FROM_FAILED
    if not retrying and not allowed(model, current, new_state):
        raise TransitionError(
            f"{_target(obj)}: {current} -> {new_state} is not allowed",
            details={"from": current, "to": new_state, "allowed": sorted(MACHINES[model].get(current, ()))},
        )
    if model is Job and current == JobState.STALLED and new_state == JobState.QUEUED:
        jt = jobtypes.JOB_TYPES.get(obj.type)
        if jt is None or jt.destructive:
            raise TransitionError(f"jobs:{obj.id}: destructive job type {obj.type} is never re-queued")
    changes = {"state": new_state, "updated_at": utcnow(), **(values or {})}
    result = session.execute(
        update(model).where(model.id == obj.id, model.state == current).values(**changes),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount != 1:
        raise ConflictError(
            f"{_target(obj)} is no longer {current}: changed concurrently", details={"expected": current}
        )
    for key, value in changes.items():
        set_committed_value(obj, key, value)
    detail = {"from": current, "to": new_state, **(event or {})}
    if model is Job:
        add_job_event(session, obj.id, "state", detail)
    else:
        session.execute(
            insert(AuditLog).values(
                actor=actor,
                action="transition",
                target=_target(obj),
                result=new_state,
                detail=detail,
                created_at=utcnow(),
            )
        )
    return obj
