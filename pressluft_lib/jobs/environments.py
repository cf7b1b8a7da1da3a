"""Environments of a site on the control plane: the `after` hooks of env_create, env_sync and drift_check.

env_create (playbooks/env_create.yml) returns pressluft_clone: the source, the URLs and the rows each
search-replace pass rewrote. The hook keeps it as the job's `clone` event (`pressluft jobs show`), checked
first: it came from the node, so it is input.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib.jobs import backups, sites
from pressluft_lib.states import JobState
from pressluft_lib.storage.models import Environment, Job, JobEvent
from pressluft_lib.storage.transitions import add_job_event

JOB_TYPE = "env_create"
TABLE_RE = re.compile(r"[A-Za-z0-9_$]{1,64}")


def _int(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < 2**63 else None


def clone_result(artifacts: dict[str, Any]) -> dict[str, Any] | None:
    """The clone's summary from the playbook's stats, reduced to known keys and types."""
    clone = artifacts.get("pressluft_clone")
    if not isinstance(clone, dict):
        return None
    passes = []
    for p in clone.get("passes") or []:
        if isinstance(p, dict):
            passes.append({"search": str(p.get("search", ""))[:300],
                           "replace": str(p.get("replace", ""))[:300], "rows": _int(p.get("rows"))})
    return {
        "source_env": str(clone.get("source_env", ""))[:11],
        "source_url": str(clone.get("source_url", ""))[:300],
        "url": str(clone.get("url", ""))[:300],
        "release": str(clone.get("release", ""))[:64],
        "database_bytes": _int(clone.get("database_bytes")),
        "passes": passes,
        "total_rows": _int(clone.get("total_rows")),
        "rows": rows_of(clone.get("rows")),
    }


def rows_of(value: Any) -> dict[str, int]:
    """Rows per table at the snapshot (the baseline of production's later writes, jobs/promote.py)."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for name, n in list(value.items())[:5000]:
        count = _int(n)
        if isinstance(name, str) and TABLE_RE.fullmatch(name) and count is not None:
            out[name] = count
    return out


def after_env_create(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    if job.state != JobState.SUCCEEDED:
        return
    result = clone_result(artifacts)
    add_job_event(session, job.id, "clone", result or {"reason": "the playbook returned no clone"})


SYNC_JOB_TYPE = "env_sync"


def after_env_sync(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """The sync's summary as the job's `sync` event (the clone's keys plus what was copied)."""
    if job.state != JobState.SUCCEEDED:
        return
    sync = artifacts.get("pressluft_sync")
    result = clone_result({"pressluft_clone": sync})
    if result is not None:
        copied = sync.get("copied") if isinstance(sync.get("copied"), list) else []
        result["copied"] = [c for c in copied if c in ("database", "uploads")]
    add_job_event(session, job.id, "sync", result or {"reason": "the playbook returned no sync"})


DRIFT_JOB_TYPE = "drift_check"
MAX_REPORT_BYTES = 512 * 1024  # a report names tables, plugins and themes: far below this


def after_drift_check(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """Keep the node's report as the job's `drift` event (what `pressluft drift show` prints)."""
    if job.state != JobState.SUCCEEDED:
        return
    report = artifacts.get("pressluft_drift")
    if not isinstance(report, dict):
        add_job_event(session, job.id, "drift", {"error": "the playbook returned no report"})
        return
    size = len(json.dumps(report, default=str))
    if size > MAX_REPORT_BYTES:
        add_job_event(session, job.id, "drift", {"error": f"the report is too large ({size} bytes)"})
        return
    add_job_event(session, job.id, "drift", json.loads(json.dumps(report, default=str)))


def last_fill(session: Session, env: Environment) -> tuple[datetime | None, dict[str, int] | None]:
    """When the environment's database was last filled from its source (the newest successful env_create,
    or env_sync that copied the database), and the rows per table it got then (None if not recorded)."""
    found = session.execute(
        select(Job.finished_at, Job.payload, JobEvent.data).join(JobEvent, JobEvent.job_id == Job.id)
        .where(Job.env_id == env.id, Job.state == JobState.SUCCEEDED, Job.type.in_((JOB_TYPE, SYNC_JOB_TYPE)),
               JobEvent.kind.in_(("clone", "sync")))
        .order_by(Job.id.desc())
    )
    for finished, payload, data in found:
        if (payload or {}).get("pressluft_sync_db", True) is False:
            continue  # an uploads-only sync left the database as it was
        rows = data.get("rows") if isinstance(data, dict) else None
        return finished, rows if isinstance(rows, dict) and rows else None
    return None, None


DELETE_JOB_TYPE = "env_delete"
DELETE_BACKUP_KEY = "pressluft_pre_delete_backup_id"


def after_env_delete(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """The final backup's outcome; a deleted environment's domain rows go (its names are free again)."""
    final = backups._row_from_payload(session, job, DELETE_BACKUP_KEY)
    if final is not None:
        backups.record(session, final, job, artifacts.get("pressluft_backup"), trust_result=True)
    sites.after_site_delete(session, job, artifacts)
