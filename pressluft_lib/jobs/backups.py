"""Backups on the control plane: job types, their `after` hooks, ids, repository settings, cleanup plans.

A backup row is created (pending) when its job is queued; the job's `after` hook records what the
playbook returned (set_stats `pressluft_backup`) through the BACKUP state machine:
pending -> running -> completed | failed; completed -> expired (retention) -> deleted (cleanup).
The `manifest` JSON column holds the control plane's data about the backup:
  backup_id, trigger (manual | schedule | pre_restore | pre_update | pre_move | pre_promote | pre_delete |
  pre_import), include_core, job_id, repository, manifest (the node's manifest), restic_snapshot,
  restic_data_added, completed_at, error, restore.
Backup ids are `<created_at as yyyymmddThhmmssZ>-<row id>`: unique, sortable, stable across retries.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.jobs.retention import DEFAULT_KEEP, PRE_RESTORE_GRACE, Candidate, Policy, expired
from pressluft_lib.states import JOB_TERMINAL, BackupState, JobState
from pressluft_lib.storage.models import AuditLog, Backup, Environment, Job, JobEvent, Node, Site, utcnow
from pressluft_lib.storage.transitions import transition

SCOPES = ("full", "db", "files")
TRIGGERS = ("manual", "schedule", "pre_restore", "pre_update", "pre_move", "pre_promote", "pre_delete",
            "pre_import")
# Backups taken before a change as its way back: kept through PRE_RESTORE_GRACE whatever the ladder says.
WAY_BACK = ("pre_restore", "pre_update", "pre_move", "pre_promote", "pre_delete", "pre_import")
# The payload key of the backup a job type takes itself (its `before` hook marks it running).
BACKUP_KEYS = {
    "backup_create": "pressluft_backup_id",
    "env_restore": "pressluft_pre_restore_backup_id",
    "env_update": "pressluft_pre_update_backup_id",
    "site_move": "pressluft_backup_id",
    "env_promote": "pressluft_pre_promote_backup_id",
    "env_delete": "pressluft_pre_delete_backup_id",
    "site_import": "pressluft_pre_import_backup_id",
}
# The restic repository's secrets (restic_password, s3_access_key_id, s3_secret_access_key) live in
# the secret store under names.BACKUP_SECRET_SCOPE; the runner passes them (as pressluft_<name>) to
# backup jobs only (their secret_scopes in the registry). The repository URL is not secret: it is
# stored beside them and goes into each job's payload, so every backup row records its repository.
REPO_SCOPE = "global:backup-repo"
REPO_URL = "restic_repository"
REPO_SECRETS = ("restic_password", "s3_access_key_id", "s3_secret_access_key")
_ID_RE = re.compile(r"(\d{8}T\d{6}Z)-([1-9]\d{0,17})")
_ROW_RE = re.compile(r"[1-9]\d{0,17}")
_ACTIVE_BACKUP = (BackupState.PENDING, BackupState.RUNNING)
# Rows a cleanup looks at: the ones that hold (or held) files.
_ON_DISK = (BackupState.COMPLETED, BackupState.EXPIRED, BackupState.FAILED)
MAX_REMOVE_PER_JOB = 25


def make_id(row: Backup) -> str:
    return f"{row.created_at:%Y%m%dT%H%M%SZ}-{row.id}"


def parse_ref(ref: object) -> tuple[int, str | None]:
    """A backup reference (`20261202T023000Z-5` or the row id `5`) -> (row id, timestamp part or None)."""
    text = str(ref) if isinstance(ref, int) and not isinstance(ref, bool) else ref
    if isinstance(text, str):
        if m := _ID_RE.fullmatch(text):
            return int(m.group(2)), m.group(1)
        if _ROW_RE.fullmatch(text):
            return int(text), None
    raise ValidationError(
        f"invalid backup id {ref!r}: expected e.g. 20261202T023000Z-5 (or its number, 5)",
        details={"backup_id": repr(ref)},
    )


def get_row(session: Session, ref: object) -> Backup:
    row_id, stamp = parse_ref(ref)
    row = session.get(Backup, row_id)
    if row is None or (stamp is not None and make_id(row) != ref):
        raise NotFound(f"backup {ref} does not exist", details={"backup_id": str(ref)})
    return row


def new_row(
    session: Session, env: Environment, scope: str, trigger: str, include_core: bool, repository: str | None
) -> Backup:
    """A pending backup row with its id (created_at to the second, so the id names it exactly)."""
    if scope not in SCOPES:
        raise ValidationError(f"invalid backup scope {scope!r}: one of {', '.join(SCOPES)}")
    created = utcnow().replace(microsecond=0)
    row = Backup(env_id=env.id, state=BackupState.PENDING, scope=scope, created_at=created)
    session.add(row)
    session.flush()
    row.manifest = {
        "backup_id": make_id(row),
        "trigger": trigger,
        "include_core": bool(include_core),
        "repository": repository,
    }
    session.flush()
    return row


def set_job(session: Session, row: Backup, job_id: int) -> None:
    row.manifest = {**(row.manifest or {}), "job_id": job_id}
    session.flush()


# -- after hooks (run in the transaction that finishes the job) --------------------------------------
def _failure_message(session: Session, job: Job) -> str:
    """The last failed task's message (already redacted by the runner), else the job's own error."""
    events = session.scalars(
        select(JobEvent.data)
        .where(JobEvent.job_id == job.id, JobEvent.kind == "runner")
        .order_by(JobEvent.seq.desc())
    )
    for data in events:
        if data.get("status") in ("failed", "unreachable") and data.get("msg"):
            return f"{data.get('task')}: {data['msg']}"[:2000]
    return job.error_message or job.error_code or f"job {job.state}"


def _row_from_payload(session: Session, job: Job, key: str) -> Backup | None:
    ref = (job.payload or {}).get(key)
    try:
        row = get_row(session, ref)
    except (ValidationError, NotFound):
        return None
    session.refresh(row)
    return row


def record(session: Session, row: Backup, job: Job, result: Any, trust_result: bool = False) -> None:
    """Settle a pending/running backup row from its job's end and the playbook's `pressluft_backup`.

    Completed when the playbook returned this backup without an `error` and the job succeeded (or,
    with `trust_result`, whatever came after the backup step: env_restore's restore may fail later).
    """
    if row.state not in _ACTIVE_BACKUP:
        return
    result = result if isinstance(result, dict) and result.get("id") == make_id(row) else None
    data = dict(row.manifest or {}, job_id=job.id)
    if result is not None:
        data.update(
            manifest=result.get("manifest"),
            restic_snapshot=result.get("restic_snapshot"),
            restic_data_added=result.get("restic_data_added"),
        )
    values = {"manifest": data, "location": (result or {}).get("location")}
    good = result is not None and not result.get("error")
    if good and (trust_result or job.state == JobState.SUCCEEDED):
        # start_backup did not see it (a run started by an older version)
        if row.state == BackupState.PENDING:
            transition(session, row, BackupState.RUNNING, event={"job_id": job.id})
        data["completed_at"] = utcnow().isoformat(timespec="seconds") + "Z"
        transition(session, row, BackupState.COMPLETED, values=values, event={"job_id": job.id})
        return
    if result is not None and result.get("error"):
        data["error"] = str(result["error"])[:2000]
    elif job.state == JobState.FAILED:
        data["error"] = _failure_message(session, job)
    elif job.state != JobState.SUCCEEDED:
        data["error"] = f"the job ended {job.state}"
    else:
        data["error"] = "the playbook returned no result for this backup"
    event = {"job_id": job.id, "job_state": job.state}
    transition(session, row, BackupState.FAILED, values=values, event=event)


def start_backup(session: Session, job: Job) -> None:
    """The run starts: its backup (env_restore: the pre-restore one) is running from now on."""
    key = BACKUP_KEYS.get(job.type, "pressluft_pre_restore_backup_id")
    row = _row_from_payload(session, job, key)
    if row is not None and row.state == BackupState.PENDING:  # a retry finds it running already
        transition(session, row, BackupState.RUNNING, event={"job_id": job.id})


def after_backup_create(session: Session, job: Job, artifacts: dict) -> None:
    row = _row_from_payload(session, job, "pressluft_backup_id")
    if row is not None:
        record(session, row, job, artifacts.get("pressluft_backup"))


def after_backup_cleanup(session: Session, job: Job, artifacts: dict) -> None:
    asked = set((job.payload or {}).get("pressluft_backup_remove") or ())
    removed = artifacts.get("pressluft_backup_removed") or []
    for ref in removed if isinstance(removed, list) else ():
        if ref not in asked:
            continue
        try:
            row = get_row(session, ref)
        except (ValidationError, NotFound):
            continue
        session.refresh(row)
        if row.state in _ON_DISK:
            transition(session, row, BackupState.DELETED, event={"job_id": job.id})


def after_env_restore(session: Session, job: Job, artifacts: dict) -> None:
    pre = _row_from_payload(session, job, "pressluft_pre_restore_backup_id")
    restore = artifacts.get("pressluft_restore")
    source = (job.payload or {}).get("pressluft_backup_id")
    restored = bool(isinstance(restore, dict) and restore.get("id") == source and restore.get("restored"))
    restored = restored and job.state == JobState.SUCCEEDED
    if pre is not None:
        # The pre-restore backup step reports its own outcome; the restore after it may still fail.
        record(session, pre, job, artifacts.get("pressluft_backup"), trust_result=True)
        info = {"job_id": job.id, "source": source, "restored": restored, "job_state": job.state}
        pre.manifest = {**(pre.manifest or {}), "restore": info}
        session.flush()
    env = session.get(Environment, job.env_id) if job.env_id else None
    target = f"env:{env.site.name}_{env.name}" if env else f"job:{job.id}"
    session.execute(
        insert(AuditLog).values(
            actor=job.actor,
            action="env.restore",
            target=target,
            result="restored" if restored else job.state,
            detail={
                "job_id": job.id,
                "source": source,
                "pre_restore_backup": (job.payload or {}).get("pressluft_pre_restore_backup_id"),
            },
            created_at=utcnow(),
        )
    )


def check_restore_source(row: Backup, env: Environment) -> None:
    """A backup `env` can be restored from: its own and completed. Raises before anything is queued."""
    ref = make_id(row)
    if row.env_id != env.id:
        other = row.environment
        raise ValidationError(
            f"backup {ref} belongs to {other.site.name}/{other.name}, not {env.site.name}/{env.name}",
            details={"backup_id": ref},
        )
    if row.state != BackupState.COMPLETED:
        raise ConflictError(
            f"backup {ref} is {row.state}: only a completed backup is restored",
            details={"backup_id": ref, "state": row.state},
        )


def check_rebuild_source(row: Backup, env: Environment) -> None:
    """A backup env_rebuild can rebuild `env` from: a restorable one (check_restore_source), full, with
    its release (core.tar), sent off-site. Raises before anything is queued."""
    check_restore_source(row, env)
    ref = make_id(row)
    data = row.manifest or {}
    node_manifest = data.get("manifest") if isinstance(data.get("manifest"), dict) else {}
    have = {a.get("name") for a in node_manifest.get("artifacts") or () if isinstance(a, dict)}
    missing = sorted({"db.sql.gz", "uploads.tar", "core.tar"} - have)
    if row.scope != "full" or missing:
        raise ValidationError(
            f"backup {ref} cannot rebuild an environment: it lacks {', '.join(missing) or 'nothing'} "
            f"(scope {row.scope}); take a full backup (it includes the live release)",
            details={"backup_id": ref, "missing": missing},
        )
    if not data.get("restic_snapshot"):
        raise ValidationError(
            f"backup {ref} has no off-site copy (restic snapshot): it cannot be read without its node",
            details={"backup_id": ref},
        )


def after_env_rebuild(session: Session, job: Job, artifacts: dict) -> None:
    """The site now lives on the job's node when the playbook rebuilt it there; audited either way."""
    env = session.get(Environment, job.env_id) if job.env_id else None
    result = artifacts.get("pressluft_rebuild")
    source = (job.payload or {}).get("pressluft_backup_id")
    node = session.get(Node, job.node_id) if job.node_id else None
    rebuilt = (
        job.state == JobState.SUCCEEDED
        and isinstance(result, dict)
        and result.get("id") == source
        and result.get("restored") is True
        and node is not None
        and result.get("node") == node.name
    )
    site = env.site if env is not None else None
    moved_from = site.node.name if site is not None else None
    if rebuilt and site is not None:
        site.node = node
        session.flush()
    session.execute(
        insert(AuditLog).values(
            actor=job.actor,
            action="env.rebuild",
            target=f"env:{site.name}_{env.name}" if site else f"job:{job.id}",
            result="rebuilt" if rebuilt else job.state,
            detail={
                "job_id": job.id,
                "source": source,
                "from_node": moved_from,
                "node": node.name if node else None,
                "release": (result or {}).get("release") if isinstance(result, dict) else None,
            },
            created_at=utcnow(),
        )
    )


def _audit(session: Session, job: Job, action: str, target: str, result: str, detail: dict) -> None:
    session.execute(
        insert(AuditLog).values(
            actor=job.actor, action=action, target=target, result=result, detail=detail, created_at=utcnow()
        )
    )


def after_site_move(session: Session, job: Job, artifacts: dict) -> None:
    """Settle the final backup; when the target reported the rebuild, the site lives there from now on."""
    payload = job.payload or {}
    row = _row_from_payload(session, job, "pressluft_backup_id")
    if row is not None:
        # The backup step reports its own outcome; the rebuild after it may still fail.
        record(session, row, job, artifacts.get("pressluft_backup"), trust_result=True)
    result = artifacts.get("pressluft_move")
    target = session.scalar(select(Node).where(Node.name == payload.get("pressluft_move_target")))
    moved = (
        job.state == JobState.SUCCEEDED
        and isinstance(result, dict)
        and result.get("moved") is True
        and result.get("id") == payload.get("pressluft_backup_id")
        and target is not None
        and result.get("node") == target.name
    )
    site = session.get(Site, job.site_id)
    if moved:
        site.node = target
        session.flush()
    detail = {
        "job_id": job.id,
        "from_node": payload.get("pressluft_move_source"),
        "node": payload.get("pressluft_move_target"),
        "backup": payload.get("pressluft_backup_id"),
        "release": result.get("release") if isinstance(result, dict) else None,
    }
    _audit(session, job, "site.move", f"site:{site.name}", "moved" if moved else job.state, detail)


def after_site_move_confirm(session: Session, job: Job, artifacts: dict) -> None:
    site = session.get(Site, job.site_id)
    node = session.get(Node, job.node_id) if job.node_id else None
    detail = {"job_id": job.id, "move_job": (job.payload or {}).get("pressluft_move_job"),
              "node": node.name if node else None}
    _audit(session, job, "site.move.confirm", f"site:{site.name}", job.state, detail)


def unconfirmed_move(session: Session, site: Site) -> Job | None:
    """The site's newest site_move that moved it and whose old copy no site_move_confirm removed yet."""
    move = session.scalar(
        select(Job)
        .where(Job.site_id == site.id, Job.type == "site_move", Job.state == JobState.SUCCEEDED)
        .order_by(Job.id.desc())
        .limit(1)
    )
    if move is None:
        return None
    confirms = session.scalars(
        select(Job).where(
            Job.site_id == site.id, Job.type == "site_move_confirm", Job.state == JobState.SUCCEEDED,
            Job.id > move.id,
        )
    ).all()
    if any((c.payload or {}).get("pressluft_move_job") == move.id for c in confirms):
        return None
    return move


# -- reconciliation and retention ------------------------------------------------------------------
def reconcile(session: Session, actor: str | None = None) -> list[str]:
    """Fail pending/running backups whose job ended without settling them; returns their ids.

    The hooks settle rows at every job end the runner and the queue see; this catches the rest
    (e.g. a job removed by hand) so that a row never stays pending forever.
    """
    out = []
    for row in session.scalars(select(Backup).where(Backup.state.in_(_ACTIVE_BACKUP))).all():
        job_id = (row.manifest or {}).get("job_id")
        job = session.get(Job, job_id) if isinstance(job_id, int) else None
        if job is None or job.state in JOB_TERMINAL:
            if row.state == BackupState.PENDING:
                transition(session, row, BackupState.RUNNING, actor=actor, event={"reconcile": True})
            data = {**(row.manifest or {}), "error": f"job {job_id} ended without a result"}
            transition(
                session,
                row,
                BackupState.FAILED,
                actor=actor,
                values={"manifest": data},
                event={"reconcile": True, "job_id": job_id},
            )
            out.append(make_id(row))
    return out


def policy(site: Site) -> Policy:
    d, w, m = DEFAULT_KEEP
    return Policy(
        d if site.backup_keep_daily is None else site.backup_keep_daily,
        w if site.backup_keep_weekly is None else site.backup_keep_weekly,
        m if site.backup_keep_monthly is None else site.backup_keep_monthly,
    )


def cleanup_plan(
    session: Session, site: Site, env: Environment, now: datetime | None = None
) -> tuple[list[Backup], list[Backup]]:
    """(completed backups the ladder expires now, every backup a cleanup should remove).

    Removed: expired ones (also those a previous cleanup did not get to) and failed ones older than
    PRE_RESTORE_GRACE with a newer completed backup (they may have left local artifacts behind).
    """
    now = now or utcnow()
    rows = session.scalars(
        select(Backup)
        .where(Backup.env_id == env.id, Backup.state.in_(_ON_DISK))
        .order_by(Backup.id)
    ).all()
    completed = [r for r in rows if r.state == BackupState.COMPLETED]
    expiring: set[int] = set()
    rule = policy(site)
    for scope in SCOPES:
        candidates = [
            Candidate(r.id, r.created_at, (r.manifest or {}).get("trigger") in WAY_BACK)
            for r in completed
            if r.scope == scope
        ]
        expiring |= expired(candidates, rule, now)
    newest = max((r.created_at for r in completed), default=None)
    remove = [
        r
        for r in rows
        if r.state == BackupState.EXPIRED
        or r.id in expiring
        or (
            r.state == BackupState.FAILED
            and newest is not None
            and r.created_at < newest
            and now - r.created_at >= PRE_RESTORE_GRACE
        )
    ]
    # Oldest first, at most MAX_REMOVE_PER_JOB: each removal is a restic forget + prune on the node,
    # and a first cleanup after a retention change may face a year of backups. The rest stay for the
    # next cleanup (the ladder's verdict on them does not change).
    remove = sorted(remove, key=lambda r: (r.created_at, r.id))[:MAX_REMOVE_PER_JOB]
    batch = {r.id for r in remove}
    return [r for r in completed if r.id in expiring and r.id in batch], remove


def last_backup_at(session: Session, env: Environment) -> datetime | None:
    """When the newest full backup that counts (pending, running or completed) was taken."""
    return session.scalar(
        select(Backup.created_at)
        .where(
            Backup.env_id == env.id,
            Backup.scope == "full",
            Backup.state.in_((BackupState.PENDING, BackupState.RUNNING, BackupState.COMPLETED)),
        )
        .order_by(Backup.created_at.desc())
        .limit(1)
    )


def due(session: Session, env: Environment, interval: timedelta, now: datetime) -> bool:
    last = last_backup_at(session, env)
    return last is None or now - last >= interval
