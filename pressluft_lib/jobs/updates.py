"""Updates of core, plugins and themes on the control plane: the input checks of env_update and its
`after` hook (the ControlPlane method that enqueues it is in services/updates.py; docs/updates.md).

At enqueue an update gets, like a deploy, a release row (building, id `<queued at>-<job id>`), and,
like a restore, a pending pre-update backup row (scope db, trigger pre_update). The playbook returns
`pressluft_update` {state: live|nothing|failed|rolled_back|discarded, reason, phase, updates, backup,
db_restored} and, once it built a release, `pressluft_release` as env_deploy does. The hook settles both
rows, keeps the update's outcome in the release's `health.update`, and returns the environment to active
when the site serves what it served (nothing to do, a failure before the checks, or a healthy rollback).
A safe update (`--safe`) also has an update_reports row made at enqueue; the hook fills it with the
playbook's `pressluft_update_report` (the clone's comparison).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import backups, releases
from pressluft_lib.states import BackupState, JobState, ReleaseState
from pressluft_lib.storage.models import AuditLog, Environment, Job, Release, UpdateReport, utcnow

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
    safe: bool = False,
    max_diff: list[str] | None = None,
) -> dict[str, Any]:
    """The env_update payload for what the user asked for; ValidationError when it is nothing or bad."""
    if not isinstance(safe, bool):
        raise ValidationError("safe must be true or false")
    if max_diff and not safe:
        raise ValidationError("--max-diff sets the comparison of a safe update: give --safe too")
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
    if safe:
        payload["pressluft_update_safe"] = True
        if max_diff:
            payload["pressluft_update_safe_max_diff"] = check_max_diff(max_diff)
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


# -- safe updates (`pressluft update SITE --safe`, `pressluft update report ID`) ---------------------
# The kinds of compared paths (module env_compare) and the changed fraction each tolerates by default.
COMPARE_KINDS = {"home": 0.01, "sitemap": 0.01, "rest": 0.1, "login": 0.02, "feed": 0.02}
MAX_REPORT_BYTES = 256 * 1024


def check_max_diff(values: list[str] | dict[str, Any]) -> dict[str, float]:
    """`KIND=FRACTION` strings (or a dict) -> {kind: fraction}; ValidationError when bad."""
    items = values.items() if isinstance(values, dict) else (str(v).partition("=")[::2] for v in values)
    out: dict[str, float] = {}
    for kind, value in items:
        try:
            fraction = float(value)
        except (TypeError, ValueError):
            fraction = -1.0
        if kind not in COMPARE_KINDS or not 0 <= fraction <= 1:
            raise ValidationError(
                f"invalid --max-diff {kind!s:.20}={value!s:.20}: KIND=FRACTION with KIND one of "
                f"{', '.join(COMPARE_KINDS)} and FRACTION 0-1 (e.g. home=0.05)"
            )
        out[str(kind)] = fraction
    return out


def clone_name(job_id: int) -> str:
    """The throwaway environment's name: an environment name (2-11 characters) unique per job."""
    return f"safe{job_id % 10**7}"


def report_from(artifacts: dict[str, Any]) -> dict[str, Any] | None:
    """The comparison the playbook returned, reduced to known keys; None when there is none."""
    rep = artifacts.get("pressluft_update_report")
    if not isinstance(rep, dict):
        return None
    urls = []
    for u in rep.get("urls") if isinstance(rep.get("urls"), list) else []:
        if isinstance(u, dict):
            urls.append({
                "path": str(u.get("path", ""))[:500], "kind": str(u.get("kind", ""))[:16],
                "status": u.get("status"), "clone_status": u.get("clone_status"),
                "changed": u.get("changed"), "max_diff": u.get("max_diff"), "ok": bool(u.get("ok")),
                "reason": str(u.get("reason", ""))[:500],
                "diff": [str(line)[:300] for line in (u.get("diff") or [])[:60]],
            })
    errors = rep.get("php_errors") if isinstance(rep.get("php_errors"), dict) else {}
    times = rep.get("timings") if isinstance(rep.get("timings"), dict) else {}
    marks = {}
    for key, value in times.items():
        try:
            marks[str(key)[:16]] = float(value)
        except (TypeError, ValueError):
            continue
    out = {
        "clone": str(rep.get("clone", ""))[:16],
        "passed": rep.get("passed") in (True, "True", "true"),
        "reason": str(rep.get("reason") or "")[:2000],
        "urls": urls,
        "php_errors": {"lines": [str(x)[:500] for x in (errors.get("lines") or [])[:20]],
                       "counts": {str(k)[:32]: v for k, v in (errors.get("counts") or {}).items()}},
        "timings": phase_seconds(marks),
    }
    if len(json.dumps(out, default=str)) > MAX_REPORT_BYTES:
        out["urls"] = [{**u, "diff": u["diff"][:10]} for u in urls]
    return json.loads(json.dumps(out, default=str))


def phase_seconds(marks: dict[str, float]) -> dict[str, float]:
    """Seconds spent per phase from the playbook's time marks (start, cloned, updated, compared, removed,
    end): clone, update, compare, remove, and apply (production's update after the clone was removed)."""
    order = [
        ("clone", "start", "cloned"), ("update", "cloned", "updated"), ("compare", "updated", "compared"),
        ("remove", "compared", "removed"), ("apply", "removed", "end"),
    ]
    return {name: round(marks[b] - marks[a], 2) for name, a, b in order if a in marks and b in marks}


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
    _settle_report(session, job, artifacts, result)
    untouched = outcome == "nothing" or result.get("phase") in ("plan", "safe", "backup", "build")
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


def _settle_report(session: Session, job: Job, artifacts: dict[str, Any], result: dict[str, Any]) -> None:
    """Fill the safe update's report row made at enqueue (none for a plain update)."""
    row = session.scalar(select(UpdateReport).where(UpdateReport.job_id == job.id))
    if row is None:
        return
    report = report_from(artifacts)
    if report is None:  # nothing to do, or the job stopped before the clone was compared
        reason = str(result.get("reason") or job.error_message or f"job {job.state}")[:2000]
        report = {"clone": row.clone, "passed": False, "reason": reason, "urls": [], "php_errors": {},
                  "timings": {}}
        row.state = "nothing" if result.get("state") == "nothing" else "failed"
    else:
        row.state = "passed" if report["passed"] else "failed"
    report["update"] = {"state": result.get("state"), "phase": result.get("phase"),
                        "updates": result.get("updates") if isinstance(result.get("updates"), list) else []}
    row.report = report
    session.flush()


def _summary(result: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": result.get("state"),
        "reason": str(result.get("reason") or "")[:1000],
        "phase": result.get("phase"),
        "updates": result.get("updates") if isinstance(result.get("updates"), list) else [],
        "backup_id": result.get("backup") or None,
        "db_restored": bool(result.get("db_restored")),
        "requested_backup_id": payload.get("pressluft_pre_update_backup_id"),
        "safe": bool(payload.get("pressluft_update_safe")),
    }


def update_dict(row: Release) -> dict[str, Any]:
    return {"release": row.release_id, "release_state": row.state, **((row.health or {}).get("update") or {})}
