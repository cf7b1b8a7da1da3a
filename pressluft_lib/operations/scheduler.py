"""The scheduler: one list of periodic tasks, run by `pressluft scheduler run` from a systemd timer.

Add periodic work here, and only here: one `Task` in TASKS (a name, how often, a function taking a
`Tick`). The timer fires every few minutes; each run does the tasks that are due. When a task last
ran is its newest `scheduler.<name>` audit row, so no extra table is needed and an operator sees
every run in `pressluft audit list`. A task that raises is recorded with its error; the others
still run; the command exits non-zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from pressluft_lib.errors import PressluftError
from pressluft_lib.storage.models import AuditLog, utcnow

log = logging.getLogger(__name__)


@dataclass
class Tick:
    """What a task gets: the control plane, the time of this run, and the run's options."""

    cp: Any  # services.ControlPlane
    now: datetime
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # e.g. metrics_file


@dataclass(frozen=True)
class Task:
    name: str
    every: timedelta
    run: Callable[[Tick], dict[str, Any]]
    help: str


def _backups(tick: Tick) -> dict[str, Any]:
    r = tick.cp.backup_schedule(tick.options.get("backup_interval_hours", 24), dry_run=tick.dry_run)
    return {"enqueued": len(r["enqueued"]), "skipped": len(r["skipped"])}


def _secrets(tick: Tick) -> dict[str, Any]:
    r = tick.cp.secrets_schedule(tick.options.get("secret_max_age_days", 90), dry_run=tick.dry_run)
    return {"enqueued": len(r["enqueued"]), "skipped": len(r["skipped"])}


def _domains(tick: Tick) -> dict[str, Any]:
    r = tick.cp.domain_schedule(dry_run=tick.dry_run)
    return {"enqueued": len(r["enqueued"]), "skipped": len(r["skipped"])}


def _updates(tick: Tick) -> dict[str, Any]:
    r = tick.cp.update_schedule(dry_run=tick.dry_run, now=tick.now)
    return {"enqueued": len(r["enqueued"]), "skipped": len(r["skipped"])}


def _metrics(tick: Tick) -> dict[str, Any]:
    target = tick.options.get("metrics_file")
    if not target:
        return {"skipped": "no --metrics-file"}
    from pressluft_lib.operations import metrics

    with tick.cp.session_factory() as session:
        data = metrics.collect(session, tick.now)
    if not tick.dry_run:
        metrics.write_atomically(Path(target), metrics.prometheus(data))
    return {"file": str(target), "queue_depth": data["queue"]["depth"]}


def _drift(tick: Tick) -> dict[str, Any]:
    from pressluft_lib.operations import drift

    if tick.dry_run:
        return {"skipped": "dry run"}
    results = drift.check_all(tick.cp, actor="scheduler")
    return {"checked": {r["target"]: r["status"] for r in results}}


# Order matters only for reading the log: cheap tasks first, slow ones (drift checks) last.
TASKS: tuple[Task, ...] = (
    Task("backups", timedelta(minutes=10), _backups, "queue due backups and retention cleanups"),
    Task("secrets", timedelta(hours=24), _secrets, "queue rotations of secrets older than 90 days"),
    Task("domains", timedelta(hours=12), _domains, "queue renewals of certificates expiring within 30 days"),
    Task("updates", timedelta(hours=1), _updates, "queue the updates environment policies make due"),
    Task("metrics", timedelta(0), _metrics, "write the Prometheus textfile (--metrics-file)"),
    Task("drift", timedelta(hours=24), _drift, "check mode + diff of every active node and environment"),
)
BY_NAME = {t.name: t for t in TASKS}


def last_run(session, name: str) -> datetime | None:
    return session.scalar(
        select(AuditLog.created_at)
        .where(AuditLog.action == f"scheduler.{name}", AuditLog.result == "ok")
        .order_by(AuditLog.id.desc())
        .limit(1)
    )


def run(cp, *, only: list[str] | None = None, force: bool = False, dry_run: bool = False,
        options: dict[str, Any] | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Run the due tasks (all named in `only` with force); one result per task."""
    now = now or utcnow()
    tick = Tick(cp, now, dry_run, dict(options or {}))
    results = []
    for task in TASKS:
        if only and task.name not in only:
            continue
        with cp.session_factory() as session:
            last = last_run(session, task.name)
        if not force and last is not None and now - last < task.every:
            results.append({"task": task.name, "status": "not_due", "last_run": last.isoformat() + "Z"})
            continue
        try:
            detail, status = task.run(tick), "ok"
        except PressluftError as exc:
            detail, status = {"error": exc.message, "code": exc.code}, "failed"
        except Exception as exc:  # one broken task must not stop the others
            log.exception("scheduler task %s", task.name)
            detail, status = {"error": f"{type(exc).__name__}: {exc}"[:500]}, "failed"
        if not dry_run:
            with cp.session_factory.begin() as session:
                session.execute(insert(AuditLog).values(
                    actor="scheduler", action=f"scheduler.{task.name}", target="scheduler",
                    result=status, detail=detail, created_at=utcnow(),
                ))
        results.append({"task": task.name, "status": status, **detail})
    return results
