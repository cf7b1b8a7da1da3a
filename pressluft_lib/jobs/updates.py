"""Updates of core, plugins and themes on the control plane: the input checks of env_update and its
`after` hook (the ControlPlane method that enqueues it is in services/updates.py; docs/updates.md).

At enqueue an update gets, like a deploy, a release row (building, id `<queued at>-<job id>`), and,
like a restore, a pending pre-update backup row (scope db, trigger pre_update). The playbook returns
`pressluft_update` {state: live|nothing|failed|rolled_back, reason, phase, updates, backup, db_restored}
and, once it built a release, `pressluft_release` as env_deploy does. The hook settles both rows, keeps
the update's outcome in the release's `health.update`, and returns the environment to active when the
site serves what it served (nothing to do, a failure before the checks, or a healthy rollback).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import backups, releases
from pressluft_lib.states import BackupState, JobState, ReleaseState
from pressluft_lib.storage.models import AuditLog, Environment, Job, Release, utcnow

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
# Zip paths go to Ansible's copy as data; a conservative alphabet keeps them plain paths.
ZIP_PATH_RE = re.compile(r"/[A-Za-z0-9._/+@-]{1,1000}\.zip")
MAX_ITEMS = 200


def _slugs(values: list[str] | tuple[str, ...] | None, what: str, allow_all: bool) -> list[str]:
    out: list[str] = []
    for value in values or ():
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if not (SLUG_RE.fullmatch(part) or (allow_all and part == "all")):
                raise ValidationError(
                    f"invalid {what} {part[:100]!r}: a slug of lowercase letters, digits, . _ -"
                    + (" (or all)" if allow_all else ""),
                    details={what: part[:100]},
                )
            if part not in out:
                out.append(part)
    if "all" in out and len(out) > 1:
        raise ValidationError(f"{what}: give all or names, not both")
    if len(out) > MAX_ITEMS:
        raise ValidationError(f"{what}: at most {MAX_ITEMS}")
    return out


def _zips(paths: list[str] | tuple[str, ...] | None, what: str) -> list[str]:
    out = []
    for given in paths or ():
        path = Path(str(given)).expanduser().absolute()
        if not ZIP_PATH_RE.fullmatch(str(path)) or ".." in path.parts:
            raise ValidationError(
                f"invalid {what} {str(given)[:200]!r}: "
                "a .zip file whose path holds only letters, digits, . _ / + @ -",
                details={what: str(given)[:200]},
            )
        if not path.is_file():
            raise ValidationError(f"{what} {path} does not exist", details={what: str(path)})
        out.append(str(path))
    return out


def update_payload(
    core: bool = False,
    plugins: list[str] | None = None,
    themes: list[str] | None = None,
    minor_only: bool = False,
    exclude: list[str] | None = None,
    plugin_zips: list[str] | None = None,
    theme_zips: list[str] | None = None,
    core_zip: str | None = None,
) -> dict[str, Any]:
    """The env_update payload for what the user asked for; ValidationError when it is nothing or bad."""
    for name, flag in (("core", core), ("minor_only", minor_only)):
        if not isinstance(flag, bool):
            raise ValidationError(f"{name} must be true or false")
    payload: dict[str, Any] = {
        "pressluft_update_core": core or core_zip is not None,
        "pressluft_update_plugins": _slugs(plugins, "plugin", True),
        "pressluft_update_themes": _slugs(themes, "theme", True),
        "pressluft_update_exclude": _slugs(exclude, "exclude", False),
        "pressluft_update_minor_only": minor_only,
        "pressluft_update_plugin_zips": _zips(plugin_zips, "plugin zip"),
        "pressluft_update_theme_zips": _zips(theme_zips, "theme zip"),
    }
    if core_zip is not None:
        payload["pressluft_update_core_zip"] = _zips([core_zip], "core zip")[0]
    asked = [
        k
        for k in ("core", "plugins", "themes", "plugin_zips", "theme_zips")
        if payload[f"pressluft_update_{k}"]
    ]
    if not asked:
        raise ValidationError(
            "nothing to update: give --core, --plugins all|NAME, --themes all|NAME "
            "or a --plugin-zip/--theme-zip/--core-zip"
        )
    return payload


# -- policy (`pressluft update policy`, applied by `pressluft update schedule`) -------------------------
AUTO = ("off", "minor", "all")  # minor: minor and patch updates only (--minor-only)
POLICY_DEFAULTS: dict[str, Any] = {
    "auto": "off", "core": False, "plugins": ["all"], "themes": [], "exclude": [], "pins": {},
    "interval_hours": 24,
}


def check_policy(current: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """The policy after `changes` (None values keep the current setting); ValidationError when bad.

    A pin holds a slug at a version: the scheduler never updates it (it is excluded), and the pin's
    version documents what the environment runs on purpose."""
    policy = {**POLICY_DEFAULTS, **(current or {})}
    for key, value in changes.items():
        if value is None:
            continue
        if key == "auto":
            if value not in AUTO:
                raise ValidationError(f"auto must be one of {', '.join(AUTO)}, not {str(value)[:20]!r}")
        elif key == "core":
            if not isinstance(value, bool):
                raise ValidationError("core must be true or false")
        elif key in ("plugins", "themes"):
            value = _slugs(value, key[:-1], True)
        elif key == "exclude":
            value = _slugs(value, "exclude", False)
        elif key == "pins":
            value = _pins(value)
        elif key == "interval_hours":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 24 * 366:
                raise ValidationError("interval must be 1-8784 hours")
        else:
            raise ValidationError(f"unknown policy setting {key!r}")
        policy[key] = value
    return policy


def _pins(values: Any) -> dict[str, str]:
    """`NAME=VERSION` strings (or a dict) -> {slug: version}."""
    items = values.items() if isinstance(values, dict) else (str(v).partition("=")[::2] for v in values)
    out: dict[str, str] = {}
    for slug, version in items:
        if not SLUG_RE.fullmatch(str(slug)) or not VERSION_RE.fullmatch(str(version)):
            raise ValidationError(
                f"invalid pin {slug!s:.100}={version!s:.64}: use SLUG=VERSION, e.g. akismet=5.3"
            )
        out[str(slug)] = str(version)
    return out


def policy_update_args(policy: dict[str, Any]) -> dict[str, Any] | None:
    """The ControlPlane.update() arguments a policy asks for; None when automatic updates are off."""
    if policy.get("auto", "off") == "off":
        return None
    exclude = sorted(set(policy.get("exclude") or ()) | set(policy.get("pins") or {}))
    return {"core": bool(policy.get("core")), "plugins": list(policy.get("plugins") or ()),
            "themes": list(policy.get("themes") or ()), "minor_only": policy["auto"] == "minor",
            "exclude": exclude}


# -- after hook -------------------------------------------------------------------------------------
def after_update(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    payload = job.payload or {}
    result = artifacts.get("pressluft_update") if isinstance(artifacts.get("pressluft_update"), dict) else {}
    outcome = result.get("state")
    env = session.get(Environment, job.env_id) if job.env_id else None
    pre = backups._row_from_payload(session, job, "pressluft_pre_update_backup_id")
    release_id = payload.get("pressluft_release")
    row = releases.release_row(session, env, release_id) if env is not None and release_id else None
    if outcome == "nothing":
        # Nothing was built and no backup taken: the rows made at enqueue stand for nothing.
        for gone in (pre, row):
            if gone is not None and gone.state in (
                BackupState.PENDING,
                BackupState.RUNNING,
                ReleaseState.BUILDING,
            ):
                session.delete(gone)
        session.flush()
    else:
        if pre is not None:
            # The backup step reports its own outcome; the update after it may still fail.
            backups.record(session, pre, job, artifacts.get("pressluft_backup"), trust_result=True)
        if row is not None:
            touched = result.get("phase") in ("checks", "live") and job.state != JobState.SUCCEEDED
            if touched and not result.get("db_restored"):
                # The new code ran against the database and it was not put back: the environment stays
                # failed whatever the code's checks said (after_deploy would return it to active).
                rel = dict(artifacts.get("pressluft_release") or {})
                rel.update(rollback_healthy=False)
                if rel.get("state") == ReleaseState.FAILED:
                    rel["state"] = "failed_unrestored"
                artifacts = {**artifacts, "pressluft_release": rel}
            releases.after_deploy(session, job, artifacts)
            session.refresh(row)
            row.health = {**(row.health or {}), "update": _summary(result, payload)}
            session.flush()
    untouched = outcome == "nothing" or result.get("phase") in ("plan", "backup", "build")
    if job.state != JobState.SUCCEEDED and untouched:
        releases._reactivate(
            session, job, f"update failed before it changed the site ({result.get('phase')})"
        )
    target = f"env:{env.site.name}_{env.name}" if env else f"job:{job.id}"
    session.execute(
        insert(AuditLog).values(
            actor=job.actor,
            action="env.update",
            target=target,
            result=str(outcome or job.state)[:64],
            detail={"job_id": job.id, **_summary(result, payload)},
            created_at=utcnow(),
        )
    )


def _summary(result: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": result.get("state"),
        "reason": str(result.get("reason") or "")[:1000],
        "phase": result.get("phase"),
        "updates": result.get("updates") if isinstance(result.get("updates"), list) else [],
        "backup_id": result.get("backup") or None,
        "db_restored": bool(result.get("db_restored")),
        "requested_backup_id": payload.get("pressluft_pre_update_backup_id"),
    }


def update_dict(row: Release) -> dict[str, Any]:
    return {"release": row.release_id, "release_state": row.state, **((row.health or {}).get("update") or {})}
