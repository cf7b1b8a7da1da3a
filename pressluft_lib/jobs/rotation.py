"""Secret rotation on the control plane: checks, the after hook of secrets_rotate, the scheduler's ages.

The node generates the new secrets and keeps them until every phase is done (a re-run completes a
half-done rotation with the same values); the playbook returns the new DB (and admin) password with
set_stats, sealed to the control plane's key (`pressluft_secrets_sealed`, so AWX's or Semaphore's
artifacts show nothing readable), and after_rotate stores them only when the job succeeded, i.e. when
the node uses them. The age of an environment's secrets is the last change of its `db_password` in the
secret store (set at site creation, replaced by each rotation).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names
from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import active_env_rows
from pressluft_lib.states import JobState, ResourceState
from pressluft_lib.storage.models import Environment, Job, Secret, Site
from pressluft_lib.storage.secret_store import SecretStore
from pressluft_lib.storage.transitions import add_job_event

JOB_TYPE = "secrets_rotate"
# What the node returns -> the secret store's name in scope env:<site>_<env>.
STORED = {"db_password": "db_password", "wordpress_admin_password": "wordpress_admin_password"}
AGE_SECRET = "db_password"
MAX_AGE_DAYS_LIMIT = 3660


def after_rotate(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """Store the new passwords once the node uses them; the event names them, never shows them."""
    if job.state != JobState.SUCCEEDED or job.env_id is None:
        return
    env = session.get(Environment, job.env_id)
    sealed = artifacts.get("pressluft_secrets_sealed")
    if env is None or not isinstance(sealed, str):
        add_job_event(session, job.id, "rotation", {"stored": [], "reason": "the playbook returned none"})
        return
    store = SecretStore(url=session.get_bind().url.render_as_string(hide_password=False))
    returned = store.unseal(sealed)
    if not isinstance(returned, dict):
        add_job_event(session, job.id, "rotation", {"stored": [], "reason": "the sealed value is no mapping"})
        return
    stored = []
    for key, name in STORED.items():
        value = returned.get(key)
        if isinstance(value, str) and len(value) >= 16:
            store.put(session, names.env_secret_scope(env.site.name, env.name), name, value)
            stored.append(name)
    add_job_event(session, job.id, "rotation", {"stored": stored})


def env_rows(session: Session, site: str, env: str) -> tuple[Site, Environment]:
    return active_env_rows(session, site, env, "a secret rotation needs it active")


def check_max_age(max_age_days: object) -> timedelta:
    if (
        not isinstance(max_age_days, int | float)
        or isinstance(max_age_days, bool)
        or not 0 < max_age_days <= MAX_AGE_DAYS_LIMIT
    ):
        raise ValidationError(f"max age must be between 0 and {MAX_AGE_DAYS_LIMIT} days")
    return timedelta(days=max_age_days)


def age(session: Session, site: str, env: str, now: datetime) -> timedelta | None:
    """How long ago the environment's DB password changed (None: the store holds none)."""
    changed = session.scalar(
        select(Secret.updated_at).where(Secret.scope == names.env_secret_scope(site, env),
                                        Secret.name == AGE_SECRET)
    )
    return None if changed is None else now - changed


def candidates(session: Session, sites: list[str] | None, now: datetime) -> list[dict[str, Any]]:
    """Per site: its state, the job holding its lock, and (env, state, age) of its environments."""
    stmt = select(Site).where(Site.state != ResourceState.DELETED).order_by(Site.name)
    if sites:
        stmt = stmt.where(Site.name.in_(sites))
    out = []
    for s in session.scalars(stmt):
        envs = session.scalars(
            select(Environment).where(Environment.site_id == s.id, Environment.state != ResourceState.DELETED)
        ).all()
        envs = sorted(envs, key=lambda e: (e.name != names.DEFAULT_ENV, e.name))
        holder = session.scalar(select(Job).where(Job.lock_key == f"site:{s.id}"))
        out.append({
            "site": s.name, "state": s.state,
            "holder": holder and f"job {holder.id} ({holder.type}, {holder.state})",
            "envs": [(e.name, e.state, age(session, s.name, e.name, now)) for e in envs],
        })
    return out
