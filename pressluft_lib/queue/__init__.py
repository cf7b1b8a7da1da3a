"""The job queue: one active mutation per site (per node for node jobs), fencing, claims, stall detection.

Locks: a job holds `lock_key` ("site:<id>" / "node:<id>", unique index) while queued or running
(a retryable stalled job is re-queued in the same transaction and keeps it). A destructive job that
stalls releases it, and its site/environment become `failed` instead: the state machine then rejects
mutations until `reset_site`/`reset_env` or a delete. Functions taking `db` accept a Session (runs
in the caller's transaction, caller commits) or a sessionmaker (own transaction, committed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pressluft_lib import jobtypes
from pressluft_lib.errors import ConflictError, NotFound, StaleFencingToken, TransitionError, ValidationError
from pressluft_lib.queue import _fastpath
from pressluft_lib.states import JOB_TERMINAL, JobState, NodeState, ResourceState, settle_map
from pressluft_lib.storage import sql
from pressluft_lib.storage.models import Environment, Job, JobEvent, Node, Site, utcnow
from pressluft_lib.storage.transitions import add_job_event, transition

FINISH_STATES = JOB_TERMINAL
BACKOFF_BASE = 30.0  # seconds; retry n waits base * 2**(n-1), capped
BACKOFF_MAX = 3600.0
# Payloads are stored and shown: secrets belong in secret_store, never here.
_SECRET_KEY_RE = re.compile(r"pass(word)?|secret|api_?token|private_?key|credential", re.I)

Db = Session | sessionmaker


@contextmanager
def _conn(db: Db) -> Iterator[Connection]:
    """A Core connection in the caller's transaction (Session) or in a new committed one."""
    if isinstance(db, Session):
        yield db.connection()
    else:
        with db.kw["bind"].begin() as conn:
            yield conn


def _dialect(db: Db) -> str:
    return (db.get_bind() if isinstance(db, Session) else db.kw["bind"]).dialect.name


@contextmanager
def _pg(db: Db) -> Iterator[Any]:
    """PostgreSQL's psycopg connection: the Session's (its transaction) or a pooled one in autocommit."""
    if isinstance(db, Session):
        yield db.connection().connection.driver_connection
    else:
        with _fastpath.autocommit(db.kw["bind"]) as dbapi:
            yield dbapi


@contextmanager
def _tx(db: Db) -> Iterator[Session]:
    if isinstance(db, Session):
        yield db
    else:
        with db.begin() as session:
            yield session


def _resolve(session: Session, model: type, ref: Any, **where: Any) -> Any:
    if ref is None or isinstance(ref, model):
        return ref
    if isinstance(ref, int):
        obj = session.get(model, ref)
    elif model is Site:
        obj = session.scalar(Site.by_name(ref))
    else:
        obj = session.scalar(
            select(model).where(model.name == ref, *[getattr(model, k) == v for k, v in where.items()])
        )
    if obj is None:
        raise NotFound(
            f"{model.__tablename__[:-1]} {ref!r} does not exist", details={model.__tablename__: ref}
        )
    return obj


def _check_payload(payload: Any) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ValidationError("job payload must be a mapping")

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValidationError(f"job payload key {path}{key!r} must be a string")
                if _SECRET_KEY_RE.search(key):
                    raise ValidationError(
                        f"job payload must not carry secrets ({path}{key}): use the secret store"
                    )
                walk(item, f"{path}{key}.")
        elif isinstance(value, list):
            for item in value:
                walk(item, path)
        elif not isinstance(value, str | int | float | bool | type(None)):
            raise ValidationError(f"job payload value at {path or '.'} is not JSON ({type(value).__name__})")

    walk(payload, "")
    return payload


def _holder_error(session: Session, lock_key: str, label: str) -> ConflictError:
    holder = session.scalar(select(Job).where(Job.lock_key == lock_key))
    if holder is None:
        return ConflictError(
            f"{label} is busy (a concurrent job was just enqueued)", details={"lock": lock_key}
        )
    return ConflictError(
        f"{label} is busy: job {holder.id} ({holder.type}, {holder.state}) holds it",
        details={"lock": lock_key, "job_id": holder.id, "job_type": holder.type, "job_state": holder.state},
    )


def _next_token(session: Session, site_id: int) -> int:
    return session.execute(
        update(Site)
        .where(Site.id == site_id)
        .values(last_fencing_token=Site.last_fencing_token + 1)
        .returning(Site.last_fencing_token),
        execution_options={"synchronize_session": False},
    ).scalar_one()


def enqueue(
    session: Session,
    type: str,
    *,
    site: Site | str | int | None = None,
    env: Environment | str | int | None = None,
    node: Node | str | int | None = None,
    payload: dict[str, Any] | None = None,
    actor: str | None = None,
    max_attempts: int | None = None,
    timeout: int | None = None,
    retry_of: int | None = None,
    variables: dict[str, Any] | None = None,
) -> Job:
    """Queue a job in the caller's transaction; ConflictError names the job holding the site/node.

    `payload` is what the control plane itself passes (pressluft_* keys); `variables` what a user set
    with `--var`, only the job type's allowlist (jobtypes.JobType.variables).
    retry_of (queue.retry): the job this one retries; its failed resource may then enter the job's state.
    """
    jt = jobtypes.get(type)
    payload = _check_payload(payload)
    jobtypes.check_payload_keys(jt, payload)
    variables = _check_payload(variables)
    jobtypes.check_payload_keys(jt, variables, user=True)
    payload = {**payload, **variables}
    site = _resolve(session, Site, site)
    if env is not None:
        if site is None and not isinstance(env, Environment | int):
            raise ValidationError("an environment given by name needs its site")
        env = _resolve(session, Environment, env, **({"site_id": site.id} if site else {}))
        site = site or env.site
        if env.site_id != site.id:
            raise ValidationError(f"environment {env.name} does not belong to site {site.name}")
    node = _resolve(session, Node, node)
    if jt.scope == "site":
        if site is None:
            raise ValidationError(f"job type {type} needs a site")
        lock_key, label, primary = f"site:{site.id}", f"site {site.name}", env or site
        node = node or site.node
    else:
        if node is None:
            raise ValidationError(f"job type {type} needs a node")
        lock_key, label, primary = f"node:{node.id}", f"node {node.name}", node
    for value, name in ((max_attempts, "max_attempts"), (timeout, "timeout")):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValidationError(f"{name} must be a positive integer")
    if session.scalar(select(Job.id).where(Job.lock_key == lock_key)) is not None:
        raise _holder_error(session, lock_key, label)
    try:
        with session.begin_nested():
            if jt.marks and primary.state != jt.marks:
                event = {"job_type": type, **({"retry_of": retry_of} if retry_of else {})}
                transition(session, primary, jt.marks, actor=actor, event=event, retry=retry_of is not None)
            job = Job(
                type=type,
                state=JobState.QUEUED,
                site_id=site.id if site else None,
                env_id=env.id if env else None,
                node_id=node.id if node else None,
                lock_key=lock_key,
                fencing_token=_next_token(session, site.id) if jt.scope == "site" else None,
                max_attempts=max_attempts or jt.max_attempts,
                timeout_seconds=timeout or jt.timeout,
                payload=payload,
                actor=actor,
                cancel_requested=False,
                attempts=0,
                event_seq=0,
            )
            session.add(job)
            session.flush()
            queued = {"from": None, "to": JobState.QUEUED, "actor": actor}
            if retry_of:
                queued["retry_of"] = retry_of
            add_job_event(session, job.id, "state", queued)
    except IntegrityError:
        raise _holder_error(session, lock_key, label) from None
    except ConflictError as exc:
        raise _holder_error(session, lock_key, label) from exc
    session.refresh(job)
    return job


def claim(session_factory: sessionmaker, worker_id: str, types: list[str] | None = None) -> Job | None:
    """Take the oldest due queued job under the claim id `worker_id`: one UPDATE (SKIP LOCKED on
    PostgreSQL, BEGIN IMMEDIATE on SQLite); named statement `claim` (storage/sql)."""
    now = utcnow()
    params: dict[str, Any] = {"worker": worker_id, "now": now, "all_types": not types}
    params["types"] = list(types or ())
    if _dialect(session_factory) != "sqlite":  # the statement also writes the state event
        with _pg(session_factory) as dbapi:
            job = _fastpath.pg_row(dbapi, "claim", params)
        return None if job is None else _fastpath.to_job(job)
    with _conn(session_factory) as conn:
        row = conn.execute(sql.sqlite("claim"), params).first()
        if row is None:
            return None
        event = {
            "from": JobState.QUEUED, "to": JobState.RUNNING, "worker_id": worker_id, "attempt": row.attempts
        }
        _fastpath.add_event(conn, row.id, row.event_seq, event, now)
    return _fastpath.to_job(row)


def heartbeat(db: Db, job: Job, worker_id: str) -> bool:
    """Record liveness of the attempt `job` (as claimed by `worker_id`); returns cancel_requested.

    ConflictError if the job is no longer that attempt's: not running, claimed again (a higher
    attempt number, even by the same worker), or running under another claim id."""
    params = {"id": job.id, "worker": worker_id, "attempt": job.attempts, "now": utcnow()}
    if _dialect(db) != "sqlite":
        with _pg(db) as dbapi, dbapi.cursor() as cur:
            row = cur.execute(sql.pg("heartbeat"), params, prepare=True).fetchone()
    else:
        with _conn(db) as conn:
            row = conn.execute(sql.sqlite("heartbeat"), params).first()
    if row is None:
        with _conn(db) as conn:
            raise _not_running(conn, job.id, worker_id, job.attempts)
    return bool(row[0])


def _settle(
    session: Session, job: Job, success: bool, actor: str | None = None, untouched: bool = False
) -> None:
    """Settle the job's resources; a job that ends here (cancel, stall, deadline) never returned data."""
    _fastpath.settle(session.connection(), job, success, utcnow(), actor, untouched)
    jt = jobtypes.JOB_TYPES.get(job.type)
    if jt is not None and job.state in (*JOB_TERMINAL, JobState.STALLED):
        jt.run_after(session, job, {})


def _not_running(conn: Connection, job_id: int, worker_id: str | None, attempt: int | None) -> Exception:
    current = conn.execute(select(Job.state, Job.worker_id, Job.attempts).where(Job.id == job_id)).first()
    if current is None:
        return NotFound(f"job {job_id} does not exist")
    mine = f"attempt {attempt} ({worker_id})" if worker_id else None
    if current.state == JobState.RUNNING and mine:
        now = f"is running attempt {current.attempts} ({current.worker_id})"
        return ConflictError(
            f"job {job_id} {now}, not {mine}",
            details={"job_id": job_id, "state": current.state, "attempt": current.attempts},
        )
    return ConflictError(
        f"job {job_id} is {current.state} (attempt {current.attempts}), not running"
        + (f": {mine} is no longer running" if mine else ""),
        details={"job_id": job_id, "state": current.state, "attempt": current.attempts},
    )


def finish(
    db: Db,
    job: Job | int,
    state: str,
    error_code: str | None = None,
    message: str | None = None,
    *,
    worker_id: str | None = None,
    event: dict[str, Any] | None = None,
) -> Job:
    """End a running job, release its lock and settle its resources.

    With worker_id (a claim id), only that claim's attempt may: `job` must then be the claimed Job,
    whose attempt number must still be the job's. Without, any running job (operator, tests)."""
    if state not in FINISH_STATES:
        raise ValidationError(f"a job finishes as one of {', '.join(FINISH_STATES)}, not {state!r}")
    job_id = job if isinstance(job, int) else job.id
    attempt = None
    if worker_id is not None:
        if not isinstance(job, Job):
            raise ValidationError("finishing as a worker needs the claimed job (its attempt number)")
        attempt = job.attempts
    now = utcnow()
    data = {
        "from": JobState.RUNNING,
        "to": state,
        **({"error_code": error_code} if error_code else {}),
        **(event or {}),
    }
    params = {
        "state": state,
        "now": now,
        "code": error_code,
        "msg": message,
        "id": job_id,
        "worker": worker_id,
        "attempt": attempt,
    }
    if _dialect(db) != "sqlite":  # one statement also writes the state event and settles resources
        rule = settle_map(state == "succeeded")
        params.update(data=_fastpath.json_param(data), settle=_fastpath.json_param(rule))
        params["node_types"] = _fastpath.node_types()
        with _pg(db) as dbapi:
            row = _fastpath.pg_row(dbapi, "finish", params)
        if row is None:
            with _conn(db) as conn:
                raise _not_running(conn, job_id, worker_id, attempt)
        return _fastpath.to_job(row)
    with _conn(db) as conn:
        row = conn.execute(sql.sqlite("finish"), params).first()
        if row is None:
            raise _not_running(conn, job_id, worker_id, attempt)
        done = _fastpath.to_job(row)
        _fastpath.add_event(conn, job_id, done.event_seq, data, now)
        _fastpath.settle(conn, done, state == JobState.SUCCEEDED, now)
    return done


def backoff(attempts: int, base: float = BACKOFF_BASE) -> timedelta:
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


RETRYABLE = (JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.STALLED)
# Job types that create or delete the site itself: a retry moves the failed site along with its env.
_SITE_MARKS = (ResourceState.CREATING, ResourceState.DELETING)


def retry(
    session: Session, job_id: int, *, actor: str | None = None, payload: dict[str, Any] | None = None
) -> Job:
    """Queue a new job with the type, target and payload (or `payload`) of a job that did not succeed.

    The new job takes a new fencing token, so a zombie run of the old one is refused on the node.
    ValidationError when the job cannot be retried: it is still active or succeeded, or its target
    moved on (the site was deleted or re-created, the node removed, or a newer job of the same type
    ran for the same target: retry that one).
    """
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
    refuse = f"job {job_id} ({job.type}) cannot be retried"
    if job.state not in RETRYABLE:
        raise ValidationError(
            f"{refuse}: it is {job.state}; only a failed, cancelled, timed_out or stalled job can be",
            details={"job_id": job_id, "state": job.state},
        )
    jt = jobtypes.get(job.type)
    site = session.get(Site, job.site_id) if job.site_id else None
    env = session.get(Environment, job.env_id) if job.env_id else None
    node = session.get(Node, job.node_id) if job.node_id else None
    if site is not None:
        live = session.scalar(Site.by_name(site.name))
        if site.state == ResourceState.DELETED or live is None or live.id != site.id:
            again = live is not None and live.id != site.id
            raise ValidationError(
                f"{refuse}: site {site.name} was deleted since"
                + (" and created again (a new incarnation)" if again else ""),
                details={"job_id": job_id, "site": site.name},
            )
    if node is not None and node.state == NodeState.REMOVED:
        raise ValidationError(f"{refuse}: node {node.name} was removed", details={"job_id": job_id})
    if jt.scope == "site":  # a later attempt of the same job, or a delete of the site, supersedes it
        env_match = Job.env_id.is_(None) if env is None else Job.env_id == env.id
        later = or_(and_(Job.type == job.type, env_match), Job.type == "site_delete")
        same_target = [Job.site_id == job.site_id, later]
    else:
        same_target = [Job.node_id == job.node_id, Job.type == job.type]
    newer = session.scalar(select(Job).where(Job.id > job.id, *same_target).order_by(Job.id.desc()).limit(1))
    if newer is not None:
        raise ValidationError(
            f"{refuse}: job {newer.id} ({newer.type}, {newer.state}) ran after it for the same target"
            + ("; retry that one" if newer.state in RETRYABLE else ""),
            details={"job_id": job_id, "newer_job_id": newer.id},
        )
    new = enqueue(
        session, job.type, site=site, env=env, node=node, actor=actor, retry_of=job.id,
        payload=dict(job.payload or {}) if payload is None else payload,
    )
    moves_site = site is not None and env is not None and jt.marks in _SITE_MARKS
    if moves_site and site.state == ResourceState.FAILED:
        event = {"job_id": new.id, "retry_of": job.id}
        transition(session, site, jt.marks, actor=actor, event=event, retry=True)
    if job.state == JobState.STALLED:  # the operator's retry is the decision fail_stalled() records
        values = {"lock_key": None, "finished_at": utcnow(), "error_message": f"retried as job {new.id}"}
        transition(session, job, JobState.FAILED, values=values, event={"actor": actor})
    add_job_event(session, job.id, "state", {"retried_as": new.id, "actor": actor})
    return new


def _requeue(session: Session, job: Job, now: datetime, backoff_base: float, reason: str) -> None:
    values: dict[str, Any] = {
        "not_before": now + backoff(job.attempts, backoff_base),
        "worker_id": None,
        "heartbeat_at": None,
        "deadline_at": None,
    }
    if job.site_id is not None:
        # A zombie worker of the old attempt must lose against the retry on the node.
        values["fencing_token"] = _next_token(session, job.site_id)
    event = {"reason": reason, "attempts": job.attempts}
    transition(session, job, JobState.QUEUED, values=values, event=event)


def detect_stalled(
    db: Db, heartbeat_timeout: float, *, backoff_base: float = BACKOFF_BASE, now: datetime | None = None
) -> list[tuple[int, str]]:
    """Running jobs without a heartbeat for `heartbeat_timeout` s become stalled; returns (job id, outcome).

    Outcomes: "requeued" (safe type, attempts left; keeps its lock, new fencing token, backoff),
    "failed" (safe type out of attempts), "stalled" (destructive: never retried, lock released,
    resources failed for an operator to inspect).
    """
    now = now or utcnow()
    out: list[tuple[int, str]] = []
    with _tx(db) as session:
        stmt = select(Job).where(
            Job.state == JobState.RUNNING, Job.heartbeat_at < now - timedelta(seconds=heartbeat_timeout)
        )
        if session.get_bind().dialect.name != "sqlite":
            stmt = stmt.with_for_update(skip_locked=True)
        for job in session.scalars(stmt.order_by(Job.id)).all():
            jt = jobtypes.JOB_TYPES.get(job.type)
            info = {"heartbeat_at": job.heartbeat_at.isoformat(), "worker_id": job.worker_id}
            if jt is None or jt.destructive:
                transition(
                    session, job, JobState.STALLED, values={"lock_key": None, "error_code": "stalled"},
                    event=info,
                )
                _settle(session, job, success=False)
                out.append((job.id, JobState.STALLED))
                continue
            transition(session, job, JobState.STALLED, event=info)
            if job.attempts < job.max_attempts:
                _requeue(session, job, now, backoff_base, "stalled")
                out.append((job.id, "requeued"))
            else:
                values = {"lock_key": None, "error_code": "stalled", "finished_at": now}
                values["error_message"] = f"stalled after {job.attempts} attempts"
                transition(session, job, JobState.FAILED, values=values)
                _settle(session, job, success=False)
                out.append((job.id, JobState.FAILED))
    return out


def expire_deadlines(db: Db, *, now: datetime | None = None) -> list[int]:
    """Running jobs past their deadline become timed_out (lock released, resources failed)."""
    now = now or utcnow()
    expired: list[int] = []
    with _tx(db) as session:
        stmt = select(Job).where(Job.state == JobState.RUNNING, Job.deadline_at < now)
        if session.get_bind().dialect.name != "sqlite":
            stmt = stmt.with_for_update(skip_locked=True)
        for job in session.scalars(stmt.order_by(Job.id)).all():
            values = {"lock_key": None, "error_code": "timeout", "finished_at": now}
            values["error_message"] = f"deadline of {job.timeout_seconds} s passed"
            event = {"deadline_at": job.deadline_at.isoformat()}
            transition(session, job, JobState.TIMED_OUT, values=values, event=event)
            _settle(session, job, success=False)
            expired.append(job.id)
    return expired


def sweep(db: Db, heartbeat_timeout: float, *, backoff_base: float = BACKOFF_BASE) -> dict[str, Any]:
    """Periodic housekeeping for workers: deadlines first, then stalls."""
    return {
        "timed_out": expire_deadlines(db),
        "stalled": detect_stalled(db, heartbeat_timeout, backoff_base=backoff_base),
    }


def request_cancel(db: Db, job: Job | int, *, actor: str | None = None) -> Job:
    """Queued -> cancelled at once; running -> cancel_requested (the runner stops and finishes it)."""
    job_id = job if isinstance(job, int) else job.id
    with _tx(db) as session:
        current = session.get(Job, job_id, populate_existing=True)
        if current is None:
            raise NotFound(f"job {job_id} does not exist")
        if current.state == JobState.QUEUED:
            transition(
                session,
                current,
                JobState.CANCELLED,
                values={"lock_key": None, "finished_at": utcnow()},
                event={"actor": actor},
            )
            _settle(session, current, success=False, actor=actor, untouched=True)
        elif current.state == JobState.RUNNING:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.RUNNING)
                .values(cancel_requested=True),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:
                raise ConflictError(f"job {job_id} changed state concurrently; retry")
            add_job_event(session, job_id, "state", {"cancel_requested": True, "actor": actor})
            current.cancel_requested = True
        else:
            raise TransitionError(
                f"job {job_id} is {current.state}: only queued or running jobs can be cancelled"
            )
    return current


def fail_stalled(db: Db, job: Job | int, *, actor: str | None = None, message: str | None = None) -> Job:
    """Operator acknowledgement: a stalled job (after inspection) becomes failed."""
    job_id = job if isinstance(job, int) else job.id
    with _tx(db) as session:
        current = session.get(Job, job_id, populate_existing=True)
        if current is None:
            raise NotFound(f"job {job_id} does not exist")
        values = {
            "lock_key": None,
            "finished_at": utcnow(),
            "error_message": message or "resolved by operator",
        }
        transition(session, current, JobState.FAILED, values=values, event={"actor": actor})
    return current


# What `reset` assumes of an attempt that recorded no lease (attempt.py): the worker defaults.
DEFAULT_LEASE = 60.0
DEFAULT_STOP_GRACE = 10.0
# Added to lease + grace: the poll of the lease, the last SIGKILL, and clocks of workers and CLI
# that differ by a few seconds.
RESET_MARGIN = 10.0


def may_still_run(session: Session, site: Site) -> str | None:
    """Why the site's last attempt that ended without its worker (stalled, timed out) may still be
    running, or None. Its worker stops it by itself `lease + stop grace` after its last heartbeat."""
    job = session.scalar(
        select(Job)
        .where(
            Job.site_id == site.id, Job.error_code.in_(("stalled", "timeout")), Job.heartbeat_at.is_not(None)
        )
        .order_by(Job.heartbeat_at.desc())
        .limit(1)
    )
    if job is None:
        return None
    lease, grace = DEFAULT_LEASE, DEFAULT_STOP_GRACE
    for e in events(session, job.id):
        if e.kind == "log" and e.data.get("event") == "attempt" and e.data.get("attempt") == job.attempts:
            lease, grace = float(e.data.get("lease_s", lease)), float(e.data.get("stop_grace_s", grace))
    until = job.heartbeat_at + timedelta(seconds=lease + grace + RESET_MARGIN)
    if utcnow() >= until:
        return None
    return (
        f"job {job.id} ({job.type}) ended as {job.state} ({job.error_code}) without its worker: attempt "
        f"{job.attempts} on {job.worker_id} may still be running until {until:%Y-%m-%d %H:%M:%S} UTC "
        f"(last heartbeat {job.heartbeat_at:%H:%M:%S} + heartbeat timeout {lease:g} s + stop grace "
        f"{grace:g} s + {RESET_MARGIN:g} s)"
    )


def _reset(session: Session, obj: Site | Environment, site: Site, actor: str | None, force: bool) -> Any:
    if session.scalar(select(Job.id).where(Job.lock_key == f"site:{site.id}")) is not None:
        raise _holder_error(session, f"site:{site.id}", f"site {site.name}")
    if obj.state != ResourceState.FAILED:
        raise TransitionError(
            f"{obj.__tablename__[:-1]} {obj.name} is {obj.state}: only a failed one can be reset"
        )
    running = may_still_run(session, site)
    if running is not None and not force:
        raise ConflictError(
            f"site {site.name}: {running}; reset it after that, or with --force once you know that "
            "worker is gone",
            details={"site": site.name},
        )
    event = {"reset": True, **({"forced": running} if running else {})}
    return transition(session, obj, ResourceState.ACTIVE, actor=actor, event=event)


def reset_site(db: Db, site: Site | str | int, *, actor: str | None = None, force: bool = False) -> Site:
    """failed -> active, after an operator checked the site.

    Refused while a job holds the site, and while the attempt of its last stalled or timed-out job
    may still be running (may_still_run), unless `force` (the audit event records what it overrode)."""
    with _tx(db) as session:
        obj = _resolve(session, Site, site)
        session.refresh(obj)
        return _reset(session, obj, obj, actor, force)


def reset_env(
    db: Db,
    site: Site | str | int,
    env: Environment | str | int,
    *,
    actor: str | None = None,
    force: bool = False,
) -> Environment:
    with _tx(db) as session:
        site_obj = _resolve(session, Site, site)
        obj = _resolve(session, Environment, env, site_id=site_obj.id)
        session.refresh(obj)
        return _reset(session, obj, site_obj, actor, force)


def check_fencing(session: Session, job: Job) -> None:
    """StaleFencingToken if a newer job (or retry) of the site took a higher token than this job's."""
    if job.site_id is None or job.fencing_token is None:
        return
    last = session.scalar(select(Site.last_fencing_token).where(Site.id == job.site_id))
    if last is not None and last > job.fencing_token:
        raise StaleFencingToken(
            f"job {job.id} holds fencing token {job.fencing_token}, site is at {last}",
            details={"job_id": job.id, "token": job.fencing_token, "current": last},
        )


def events(session: Session, job_id: int, after_seq: int = 0) -> list[JobEvent]:
    """Events of a job in order (for following a job: pass the last seq seen)."""
    return list(
        session.scalars(
            select(JobEvent)
            .where(and_(JobEvent.job_id == job_id, JobEvent.seq > after_seq))
            .order_by(JobEvent.seq)
        )
    )
