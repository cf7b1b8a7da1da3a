"""Environments of a site on the control plane: the `after` hooks of env_create, env_sync and drift_check.

env_create (playbooks/env_create.yml) returns pressluft_clone: the source, the URLs and the rows each
search-replace pass rewrote. The hook keeps it as the job's `clone` event (`pressluft jobs show`), checked
first: it came from the node, so it is input.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from pressluft_lib.states import JobState
from pressluft_lib.storage.models import Job
from pressluft_lib.storage.transitions import add_job_event

JOB_TYPE = "env_create"


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
    }


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
