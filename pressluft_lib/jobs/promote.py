"""Promotion (job env_promote): the checks `pressluft promote` makes before it queues anything, and the
job's `after` hook (docs/environments.md).

Code goes up: production gets a new release built from the staging environment's live release through the
release machinery. Content stays: production's database is only touched for tables named with `--tables`,
and only when the drift report shows production did not write to them since the clone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import backups, releases
from pressluft_lib.jobs import environments as env_jobs
from pressluft_lib.states import JOB_ACTIVE, JobState
from pressluft_lib.storage.models import AuditLog, Environment, Job, JobEvent, utcnow
from pressluft_lib.storage.transitions import add_job_event

JOB_TYPE = "env_promote"
BACKUP_KEY = "pressluft_pre_promote_backup_id"
# A table name as WordPress and plugins make them; anything else is refused before it reaches a node.
TABLE_RE = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_TABLES = 50
# Tables production's visitors write to: never pushed from staging unless --allow-protected. Matched as
# the name's suffix after the table prefix (wp_users, wp2_users, ...).
PROTECTED_TABLES = (
    "users", "usermeta",  # accounts
    "comments", "commentmeta",  # comments (WooCommerce reviews too)
    "woocommerce_order_items", "woocommerce_order_itemmeta", "woocommerce_sessions",  # orders, carts
    "wc_orders", "wc_orders_meta", "wc_order_addresses", "wc_order_operational_data",  # HPOS orders
    "wc_order_stats", "wc_order_product_lookup", "wc_order_tax_lookup", "wc_order_coupon_lookup",
    "wc_customer_lookup", "woocommerce_payment_tokens", "woocommerce_payment_tokenmeta",
    "newsletter", "newsletter_user_logs",  # Newsletter plugin's subscribers
    "mailpoet_subscribers", "mailpoet_subscriber_segment",  # MailPoet
    "fluentcrm_subscribers", "mc4wp_subscribers",
)
# Tables whose writes the drift report also sees by time (the newest post, comment or order of
# production at or after the clone), beyond row counts: an edited post keeps its table's count.
WRITES_BY_TIME = {"posts": ("post", "order"), "postmeta": ("post", "order"), "comments": ("comment",),
                  "commentmeta": ("comment",)}
# Jobs that change an environment's code or content: the newest one's end is the environment's last
# change, and a drift report must be newer (failed ones count: they may have changed something).
CHANGES = ("env_create", "env_sync", "env_deploy", "release_rollback", "env_update", "env_restore",
           "site_create", JOB_TYPE)


def protected(table: str) -> bool:
    return any(table == name or table.endswith("_" + name) for name in PROTECTED_TABLES)


def check_tables(tables: list[str] | tuple[str, ...] | None) -> list[str]:
    """The table names as given, checked against TABLE_RE (no quoting can make a bad name safe)."""
    out: list[str] = []
    for t in tables or ():
        if not isinstance(t, str) or not TABLE_RE.fullmatch(t):
            raise ValidationError(f"invalid table name {str(t)[:80]!r}: 1-64 letters, digits and _",
                                  details={"table": str(t)[:80]})
        if t not in out:
            out.append(t)
    if len(out) > MAX_TABLES:
        raise ValidationError(f"at most {MAX_TABLES} tables per promotion")
    return out


def last_change(session: Session, env: Environment) -> tuple[datetime | None, Job | None]:
    """(when the environment last changed, the job still queued or running that will change it)."""
    busy = session.scalar(select(Job).where(Job.env_id == env.id, Job.type.in_(CHANGES),
                                            Job.state.in_(JOB_ACTIVE)).limit(1))
    when = session.scalar(select(Job.finished_at).where(Job.env_id == env.id, Job.type.in_(CHANGES),
                                                        Job.finished_at.is_not(None))
                          .order_by(Job.finished_at.desc()).limit(1))
    return when, busy


def newest_report(session: Session, env: Environment) -> tuple[Job, dict[str, Any]] | None:
    found = session.execute(
        select(Job, JobEvent.data).join(JobEvent, JobEvent.job_id == Job.id)
        .where(Job.env_id == env.id, Job.type == env_jobs.DRIFT_JOB_TYPE, Job.state == JobState.SUCCEEDED,
               JobEvent.kind == "drift")
        .order_by(Job.id.desc()).limit(1)
    ).first()
    return (found[0], found[1]) if found else None


def baseline(session: Session, env: Environment) -> tuple[dict[str, int] | None, dict[str, str]]:
    """Production's rows per table at the clone (env_jobs.last_fill), renewed for every table a later
    successful promotion from `env` copied (its `baseline` event: production's rows right after the copy);
    and for those tables when that promotion started (UTC, the drift module's format), from which the
    time checks count production's writes to them instead of from the clone."""
    filled, rows = env_jobs.last_fill(session, env)
    pushed: dict[str, str] = {}
    found = session.execute(
        select(Job.started_at, Job.finished_at, JobEvent.data).join(JobEvent, JobEvent.job_id == Job.id)
        .where(Job.site_id == env.site_id, Job.type == JOB_TYPE, Job.state == JobState.SUCCEEDED,
               JobEvent.kind == "baseline")
        .order_by(Job.id)
    )
    for started, finished, data in found:
        if not isinstance(data, dict) or data.get("from") != env.name or started is None:
            continue
        if filled is not None and finished is not None and finished <= filled:
            continue  # a later clone or database sync copied everything again
        copied = env_jobs.rows_of(data.get("rows"))
        rows = {**(rows or {}), **copied}
        pushed.update(dict.fromkeys(copied, started.strftime("%Y-%m-%d %H:%M:%S")))
    return rows, pushed


def _newer(table: str, report: dict[str, Any], pushed: dict[str, str] | None) -> list[str]:
    """The kinds (post, order, comment) production wrote to `table` by time: at or after the clone, or,
    for a table a promotion copied, at or after that promotion."""
    writes = report.get("writes") or {}
    if table not in (pushed or {}):
        return sorted(set(writes.get("after_since") or ()) & set(_kinds(table)))
    newest = writes.get("newest") or {}
    return sorted(k for k in _kinds(table) if isinstance(newest.get(k), str) and newest[k] >= pushed[table])


def _kinds(table: str) -> tuple[str, ...]:
    """The newest-write kinds (post, order, comment) the drift report tells by time for this table."""
    return WRITES_BY_TIME.get(table.partition("_")[2] if "_" in table else table, ())


def _before(table: str, report: dict[str, Any], baseline: dict[str, int] | None) -> int | None:
    """Production's rows of `table` at the clone. Without a baseline (a clone older than this check, or a
    table created since) staging's count now stands in: any difference then counts as a write."""
    mine = (report.get("env") or {}).get("rows") or {}
    return (baseline or {}).get(table, mine.get(table))


def refusals(tables: list[str], report: dict[str, Any], baseline: dict[str, int] | None, force: bool,
             allow_protected: bool, pushed: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Why each table may not be pushed (empty: all may). Rows are production's, at the clone (or the last
    promotion that copied the table: `pushed`) and now."""
    env_tables = (report.get("env") or {}).get("tables") or {}
    now = (report.get("against") or {}).get("rows") or {}
    out = []
    for t in tables:
        if t not in env_tables:
            out.append({"table": t, "reason": "not in the drift report's tables of the environment"})
        elif protected(t) and not allow_protected:
            out.append({"table": t, "reason": "protected (production's visitors write it)",
                        "rows": now.get(t)})
        elif not force and t in now:  # a table production lacks is one it never wrote to
            before, by_time = _before(t, report, baseline), _newer(t, report, pushed)
            if before != now.get(t) or by_time:
                out.append({"table": t, "reason": "production wrote to it since the clone",
                            "rows_at_clone": before, "rows_now": now.get(t), "newer": by_time})
    return out


def guard(tables: list[str], report: dict[str, Any], baseline: dict[str, int] | None,
          force: bool, pushed: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """What the job checks again on the node before it changes anything (production may have written since
    the report): {table: {rows: production's rows at the clone (-1: production has no such table, and must
    still have none), newer: kinds that must not be newer, since: for a table a promotion copied, the time
    they must not be newer than (else the clone's)}}."""
    if force:
        return {}
    now = (report.get("against") or {}).get("rows") or {}
    out: dict[str, dict[str, Any]] = {}
    for t in tables:
        out[t] = {"rows": _before(t, report, baseline) if t in now else -1, "newer": list(_kinds(t))}
        if t in (pushed or {}) and _kinds(t):
            out[t]["since"] = pushed[t]
    return out


def describe(refused: list[dict[str, Any]]) -> str:
    parts = []
    for r in refused:
        if "rows_now" in r:
            newer = f", newer {'/'.join(r['newer'])}" if r["newer"] else ""
            parts.append(f"{r['table']} ({r['reason']}: {r['rows_at_clone']} rows then, {r['rows_now']} now"
                         f"{newer})")
        elif "rows" in r:
            parts.append(f"{r['table']} ({r['reason']}; {r['rows']} rows)")
        else:
            parts.append(f"{r['table']} ({r['reason']})")
    return "; ".join(parts)


# -- after hook --------------------------------------------------------------------------------------
def after_promote(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """The pre-promote backup and production's release rows; the environment is active again when
    production still serves what it served (the backup failed, or the release never went live)."""
    pre = backups._row_from_payload(session, job, BACKUP_KEY)
    if pre is not None:
        backups.record(session, pre, job, artifacts.get("pressluft_backup"), trust_result=True)
    env = session.get(Environment, job.env_id) if job.env_id else None
    payload = job.payload or {}
    result = artifacts.get("pressluft_promote")
    result = result if isinstance(result, dict) else {}
    row = releases.release_row(session, env, payload.get("pressluft_release", "")) if env else None
    if row is not None:
        releases.after_deploy(session, job, artifacts)
    if job.state != JobState.SUCCEEDED and result.get("phase") in ("check", "backup"):
        why = f"promotion failed before it changed production ({result['phase']})"
        releases._reactivate(session, job, why)
    copied = env_jobs.rows_of(result.get("rows"))
    tables = set(payload.get("pressluft_promote_tables") or ())
    if job.state == JobState.SUCCEEDED and tables:
        # Production's rows of the copied tables right after the copy: the next promotion's baseline.
        add_job_event(session, job.id, "baseline", {"from": payload.get("pressluft_promote_from"),
                                                    "rows": {t: n for t, n in copied.items() if t in tables}})
    target = f"env:{env.site.name}_{env.name}" if env else f"job:{job.id}"
    detail = {"job_id": job.id, "from": payload.get("pressluft_promote_from"),
              "release": payload.get("pressluft_release"),
              "tables": payload.get("pressluft_promote_tables", []),
              "phase": result.get("phase"), "backup": payload.get(BACKUP_KEY),
              "backup_state": pre.state if pre is not None else None}
    session.execute(insert(AuditLog).values(actor=job.actor, action="env.promote", target=target,
                                            result=str(result.get("state") or job.state)[:64], detail=detail,
                                            created_at=utcnow()))
