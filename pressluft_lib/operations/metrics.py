"""`pressluft metrics`: point-in-time gauges from the control-plane database.

JSON for scripts, or the Prometheus text exposition format (version 0.0.4) for node_exporter's
textfile collector, which reads every `*.prom` file of its directory: write_atomically() renames a
finished temporary file into place, so the collector never reads half a file.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pressluft_lib.states import BackupState, JobState, ResourceState
from pressluft_lib.storage.models import Backup, Domain, Environment, Job, Site, utcnow

FAILED_STATES = (JobState.FAILED, JobState.TIMED_OUT, JobState.STALLED)
# Certificate expiry: the Domain column domain_add/renewals keep (docs/domains.md); a name without a
# certificate has no sample rather than an invented one.
CERT_COLUMN = "tls_expires_at"

# name -> (type, help)
HELP = {
    "pressluft_jobs": ("gauge", "Jobs by type and state."),
    "pressluft_queue_depth": ("gauge", "Queued jobs (due or waiting for their backoff)."),
    "pressluft_queue_oldest_age_seconds": ("gauge", "Age of the oldest queued job (0 when none)."),
    "pressluft_jobs_failed_24h": ("gauge", "Jobs per type ended failed, timed_out or stalled in 24 h."),
    "pressluft_backup_last_success_age_seconds": (
        "gauge", "Seconds since the environment's newest completed backup (absent: never backed up)."),
    "pressluft_environments_without_backup": ("gauge", "Active environments with no completed backup."),
    "pressluft_certificate_expiry_timestamp_seconds": ("gauge", "Certificate notAfter (Unix time)."),
    "pressluft_metrics_generated_timestamp_seconds": ("gauge", "When these metrics were read (Unix time)."),
}


def _unix(value: datetime) -> float:
    return (value - datetime(1970, 1, 1)).total_seconds()  # naive UTC, as every stored time


def collect(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """The gauges as a JSON-ready dict."""
    now = now or utcnow()
    jobs = [
        {"type": t, "state": s, "count": n}
        for t, s, n in session.execute(
            select(Job.type, Job.state, func.count())
            .group_by(Job.type, Job.state)
            .order_by(Job.type, Job.state)
        )
    ]
    depth, oldest = session.execute(
        select(func.count(), func.min(Job.created_at)).where(Job.state == JobState.QUEUED)
    ).one()
    failed = dict(
        session.execute(
            select(Job.type, func.count())
            .where(Job.state.in_(FAILED_STATES))
            .where(func.coalesce(Job.finished_at, Job.updated_at) >= now - timedelta(hours=24))
            .group_by(Job.type)
        ).all()
    )
    last_good = (
        select(Backup.env_id, func.max(Backup.updated_at).label("at"))
        .where(Backup.state == BackupState.COMPLETED)
        .group_by(Backup.env_id)
        .subquery()
    )
    envs = session.execute(
        select(Site.name, Environment.name, last_good.c.at)
        .join(Site, Site.id == Environment.site_id)
        .outerjoin(last_good, last_good.c.env_id == Environment.id)
        .where(Environment.state != ResourceState.DELETED, Site.state != ResourceState.DELETED)
        .order_by(Site.name, Environment.name)
    ).all()
    backups = [
        {"site": s, "env": e, "age_seconds": None if at is None else round((now - at).total_seconds(), 1)}
        for s, e, at in envs
    ]
    certs = []
    column = getattr(Domain, CERT_COLUMN, None)
    if column is not None:
        certs = [
            {"domain": name, "not_after": round(_unix(at))}
            for name, at in session.execute(
                select(Domain.name, column).where(column.is_not(None)).order_by(Domain.name)
            )
        ]
    return {
        "generated_at": now.isoformat(timespec="seconds") + "Z",
        "generated_timestamp": round(_unix(now), 3),
        "jobs": jobs,
        "queue": {
            "depth": depth,
            "oldest_age_seconds": round((now - oldest).total_seconds(), 1) if oldest else 0,
        },
        "failed_24h": [{"type": t, "count": n} for t, n in sorted(failed.items())],
        "backups": backups,
        "certificates": certs,
        "certificates_tracked": column is not None,
    }


def _label(value: str) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(name: str, value: float, **labels: str) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    number = repr(float(value)) if isinstance(value, float) else str(value)
    return f"{name}{{{inner}}} {number}" if inner else f"{name} {number}"


def prometheus(data: dict[str, Any]) -> str:
    """The Prometheus text format: each family once, HELP and TYPE first, samples grouped."""
    samples: dict[str, list[str]] = {name: [] for name in HELP}

    def add(name: str, value: float, **labels: str) -> None:
        samples[name].append(_line(name, value, **labels))

    for j in data["jobs"]:
        add("pressluft_jobs", j["count"], type=j["type"], state=j["state"])
    add("pressluft_queue_depth", data["queue"]["depth"])
    add("pressluft_queue_oldest_age_seconds", float(data["queue"]["oldest_age_seconds"]))
    for f in data["failed_24h"]:
        add("pressluft_jobs_failed_24h", f["count"], type=f["type"])
    never = 0
    for b in data["backups"]:
        if b["age_seconds"] is None:
            never += 1
        else:
            age = float(b["age_seconds"])
            add("pressluft_backup_last_success_age_seconds", age, site=b["site"], env=b["env"])
    add("pressluft_environments_without_backup", never)
    for c in data["certificates"]:
        add("pressluft_certificate_expiry_timestamp_seconds", c["not_after"], domain=c["domain"])
    add("pressluft_metrics_generated_timestamp_seconds", float(data["generated_timestamp"]))
    out = []
    for name, (kind, text) in HELP.items():
        if not samples[name]:
            continue  # an empty family (no failures): no HELP/TYPE without samples
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(out) + "\n"


def write_atomically(path: Path, content: str) -> None:
    """Write beside `path` and rename over it (atomic on one file system); 0644: the collector
    usually runs as another user, and the file holds counts and site names only."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
