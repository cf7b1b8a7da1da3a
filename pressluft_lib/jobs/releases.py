"""Releases on the control plane: the input checks of the deploy, rollback and health_check job types
and their `after` hooks (the ControlPlane methods that enqueue them are in services/releases.py).

A release row is created (building) when its env_deploy job is queued; the job's `after` hook records
what playbooks/env_deploy.yml returned (set_stats `pressluft_release`) through the RELEASE machine:
building -> checking -> healthy -> live; live -> healthy when superseded, live -> rolled_back;
failed. The `health` JSON column holds: job_id, source, reason, checks (last health check), checked_at.
Release ids are `<queued at as yyyymmddThhmmssZ>-<job id>`: unique, sortable, stable across retries.

The environment is `deploying` while a deploy or rollback runs. A deploy that failed but left the site
serving a healthy release (never switched, or rolled back to a release that passed its health check)
returns the environment to active: the job failed, the site did not.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names, urls
from pressluft_lib.errors import ConflictError, ValidationError
from pressluft_lib.states import JOB_TERMINAL, RELEASE, ReleaseState, ResourceState
from pressluft_lib.storage.models import Environment, Job, Release, utcnow
from pressluft_lib.storage.transitions import allowed, transition

RELEASE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
GIT_URL_RE = re.compile(r"(https?|ssh|git|file)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+")
GIT_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
URL_PATH_RE = re.compile(r"/[^\s]*")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def _env_ref(ref: str) -> tuple[str, str]:
    """`SITE` or `SITE/ENV` -> (site, env); env defaults to production."""
    if not isinstance(ref, str) or ref.count("/") > 1 or not ref:
        raise ValidationError(f"invalid environment {ref!r}: use SITE or SITE/ENV", details={"env": str(ref)})
    site, _sep, env = ref.partition("/")
    return site, env or names.DEFAULT_ENV


def parse_env(ref: str) -> tuple[str, str]:
    site, env = _env_ref(ref)
    return names.validate_site(site), names.validate_env(env)


def check_release(name: str) -> str:
    if not isinstance(name, str) or not RELEASE_RE.fullmatch(name) or ".." in name:
        raise ValidationError(
            f"invalid release {name!r}: 1-64 letters, digits, dots, dashes, underscores",
            details={"release": str(name)},
        )
    return name


def check_health(urls: list[str] | None, marker: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if urls:
        bad = [u for u in urls if not isinstance(u, str) or not URL_PATH_RE.fullmatch(u)]
        if bad:
            raise ValidationError(f"health URLs are paths starting with / without spaces: {bad}")
        out["pressluft_health_urls"] = list(urls)
    if marker is not None:
        if not isinstance(marker, str) or not marker or "\n" in marker:
            raise ValidationError("the health marker must be a non-empty single-line string")
        out["pressluft_health_marker"] = marker
    return out


def release_source(source: str | None, git: str | None, ref: str | None) -> dict[str, Any]:
    if (source is None) == (git is None):
        raise ValidationError("give exactly one source: --source PATH or --git URL")
    if source is not None:
        path = Path(source).expanduser().absolute()
        if not path.exists():
            raise ValidationError(f"source {path} does not exist", details={"source": str(path)})
        if not path.is_dir() and not str(path).endswith(ARCHIVE_SUFFIXES):
            kinds = ", ".join(ARCHIVE_SUFFIXES)
            raise ValidationError(f"source {path} must be a directory or a {kinds} archive")
        if ref is not None:
            raise ValidationError("--ref goes with --git only")
        return {"pressluft_release_src": str(path)}
    if isinstance(git, str):
        urls.refuse_credentials(git, "git URL", "use an SSH key (ssh://git@host/repo) or a public URL")
    if not isinstance(git, str) or not GIT_URL_RE.fullmatch(git):
        raise ValidationError(
            f"invalid git URL {urls.shown(str(git))}: "
            "use https://, ssh://, git://, file:// or user@host:path",
            details={"git": urls.shown(str(git))},
        )
    if ref is not None and not GIT_REF_RE.fullmatch(ref):
        raise ValidationError(f"invalid git ref {ref!r}")
    return {"pressluft_release_git": git, "pressluft_release_git_version": ref or "HEAD"}


def plan_release(session: Session, job: Job, env: Environment, source: str) -> str:
    """The release a just-queued job builds: its id (the job's creation time and id) goes into the job's
    payload, and its row exists in state building from the start (release list shows it while it waits)."""
    release_id = f"{job.created_at:%Y%m%dT%H%M%SZ}-{job.id}"
    job.payload = {**job.payload, "pressluft_release": release_id}
    session.add(Release(env_id=env.id, release_id=release_id, state=ReleaseState.BUILDING,
                        health={"job_id": job.id, "source": source}))
    session.flush()
    return release_id


def release_dict(r: Release) -> dict[str, Any]:
    health = r.health or {}
    return {
        "release": r.release_id,
        "state": r.state,
        "job_id": health.get("job_id"),
        "source": health.get("source"),
        "reason": health.get("reason"),
        "healthy": health.get("healthy"),
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "updated_at": r.updated_at.isoformat() if r.updated_at else None,
    }


# -- after hooks ------------------------------------------------------------------------------------
def release_row(session: Session, env: Environment, release_id: str) -> Release | None:
    return session.scalar(select(Release).where(Release.env_id == env.id, Release.release_id == release_id))


def _walk(session: Session, row: Release, target: str, event: dict[str, Any]) -> None:
    """Move a release to `target` through the RELEASE machine (shortest path, every step audited)."""
    if row.state == target:
        return
    paths, seen = deque([[row.state]]), {row.state}
    while paths:
        path = paths.popleft()
        for nxt in sorted(RELEASE.get(path[-1], ())):
            if nxt in seen:
                continue
            if nxt == target:
                for step in [*path[1:], nxt]:
                    transition(session, row, step, event=event)
                return
            seen.add(nxt)
            paths.append([*path, nxt])
    raise ConflictError(f"release {row.release_id} cannot go from {row.state} to {target}")


def _adopt(session: Session, env: Environment, release_id: str, event: dict[str, Any]) -> Release:
    """The row of a release the node has and the control plane never built (the first one)."""
    row = release_row(session, env, release_id)
    if row is None:
        row = Release(
            env_id=env.id, release_id=release_id, state=ReleaseState.BUILDING, health={"adopted": True}
        )
        session.add(row)
        session.flush()
    return row


def _health(row: Release, **values: Any) -> None:
    row.health = {**(row.health or {}), **{k: v for k, v in values.items() if v is not None}}


def _live_rows(session: Session, env_id: int) -> list[Release]:
    stmt = select(Release).where(Release.env_id == env_id, Release.state == ReleaseState.LIVE)
    return list(session.scalars(stmt))


def _make_live(session: Session, env: Environment, row: Release, event: dict[str, Any]) -> None:
    for old in _live_rows(session, env.id):
        if old.id != row.id:
            _walk(session, old, ReleaseState.HEALTHY, {**event, "superseded_by": row.release_id})
    _walk(session, row, ReleaseState.LIVE, event)


def _reactivate(session: Session, job: Job, reason: str) -> None:
    """The deploy failed but the site serves a healthy release: the environment is active again."""
    env = session.get(Environment, job.env_id, populate_existing=True)
    if env is not None and env.state == ResourceState.FAILED:
        transition(session, env, ResourceState.ACTIVE, event={"job_id": job.id, "reason": reason})


def after_deploy(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    if job.state not in JOB_TERMINAL or job.env_id is None:
        return
    env = session.get(Environment, job.env_id)
    release_id = (job.payload or {}).get("pressluft_release")
    if env is None or not release_id:
        return
    row = _adopt(session, env, release_id, {})
    data = artifacts.get("pressluft_release") or {}
    event = {"job_id": job.id}
    outcome = data.get("state") if data.get("id") == release_id else None
    now = utcnow().isoformat()
    if outcome == ReleaseState.LIVE:
        _health(row, job_id=job.id, reason="", healthy=True, checks=data.get("health"), checked_at=now)
        _make_live(session, env, row, event)
        for gone in data.get("removed") or []:
            old = release_row(session, env, gone)
            if old is not None and allowed(Release, old.state, ReleaseState.PRUNED):
                transition(session, old, ReleaseState.PRUNED, event=event)
    elif outcome == ReleaseState.ROLLED_BACK:
        _health(row, job_id=job.id, reason=data.get("reason"), healthy=False, checked_at=now)
        if row.state != ReleaseState.LIVE:
            _walk(session, row, ReleaseState.LIVE, event)
        transition(session, row, ReleaseState.ROLLED_BACK, event={**event, "reason": data.get("reason")})
        back = data.get("previous")
        if back:
            _make_live(session, env, _adopt(session, env, back, event), event)
        if data.get("rollback_healthy") is True:
            _reactivate(session, job, f"release {release_id} rolled back to {back}")
    elif row.state in (ReleaseState.BUILDING, ReleaseState.CHECKING):
        reason = data.get("reason") or job.error_message or f"job {job.state}"
        _health(row, job_id=job.id, reason=reason, healthy=False)
        transition(session, row, ReleaseState.FAILED, event={**event, "reason": reason})
        if outcome == ReleaseState.FAILED:  # the pre-switch checks refused it: never live, the site unchanged
            _reactivate(session, job, f"release {release_id} failed its pre-switch checks")


def after_rollback(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    data = artifacts.get("pressluft_release") or {}
    if job.state not in JOB_TERMINAL or job.env_id is None or not data.get("id"):
        return
    env = session.get(Environment, job.env_id)
    event = {"job_id": job.id, "rollback": True}
    target = _adopt(session, env, data["id"], event)
    gone = data.get("rolled_back")
    if gone and gone != data["id"]:
        old = release_row(session, env, gone)
        if old is not None and old.state == ReleaseState.LIVE:
            why = {**event, "reason": "rollback requested"}
            transition(session, old, ReleaseState.ROLLED_BACK, event=why)
    if target.state in (ReleaseState.ROLLED_BACK, ReleaseState.FAILED, ReleaseState.PRUNED):
        return  # the node switched to it; the history keeps its verdict
    _health(target, healthy=data.get("healthy"), reason=data.get("reason"), checks=data.get("health"),
            checked_at=utcnow().isoformat())
    _make_live(session, env, target, event)


def after_health_check(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    data = artifacts.get("pressluft_health") or {}
    if job.env_id is None or not data.get("release"):
        return
    env = session.get(Environment, job.env_id)
    row = release_row(session, env, data["release"])
    if row is not None:
        _health(row, healthy=data.get("healthy"), reason=data.get("reason"), checks=data.get("checks"),
                checked_at=utcnow().isoformat(), health_job_id=job.id)
