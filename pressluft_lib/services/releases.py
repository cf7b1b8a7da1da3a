"""ControlPlane methods for releases: deploy, rollback, health check, history (jobs/releases.py checks
their input and records what the jobs returned)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pressluft_lib import queue
from pressluft_lib.errors import ConflictError, ValidationError
from pressluft_lib.jobs import env_rows, releases, require_active
from pressluft_lib.services.base import ServiceBase
from pressluft_lib.states import ReleaseState
from pressluft_lib.storage.models import Release


class ReleasesMixin(ServiceBase):
    """ControlPlane methods for releases."""

    def deploy(self, ref: str, source: str | None = None, git: str | None = None,
               git_ref: str | None = None, health_urls: list[str] | None = None, marker: str | None = None,
               keep: int | None = None) -> dict[str, Any]:
        site, env = releases.parse_env(ref)
        payload = releases.release_source(source, git, git_ref) | releases.check_health(health_urls, marker)
        if keep is not None:
            if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
                raise ValidationError("keep must be a positive integer")
            payload["pressluft_release_keep"] = keep
        detail = {"source": source or git}
        with self._mutation("release.deploy", f"env:{site}_{env}", detail) as (session, audit):
            site_row, env_row = env_rows(session, site, env)
            require_active(site_row, env_row, "a deploy needs it active")
            job = queue.enqueue(session, "env_deploy", site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            release_id = releases.plan_release(session, job, env_row, source or f"{git}#{git_ref or 'HEAD'}")
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "release": release_id}

    def rollback(self, ref: str, to: str | None = None) -> dict[str, Any]:
        site, env = releases.parse_env(ref)
        payload = {"pressluft_release": releases.check_release(to)} if to is not None else {}
        with self._mutation("release.rollback", f"env:{site}_{env}", {"to": to}) as (session, audit):
            _site, env_row = env_rows(session, site, env)
            require_active(_site, env_row, "a rollback needs it active")
            if to is not None:
                row = releases.release_row(session, env_row, to)
                if row is not None and row.state not in (ReleaseState.HEALTHY, ReleaseState.LIVE):
                    raise ConflictError(f"release {to} is {row.state}; roll back to a healthy release",
                                        details={"release": to, "state": row.state})
            job = queue.enqueue(
                session, "release_rollback", site=_site, env=env_row, payload=payload, actor=self.actor
            )
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "to": to}

    def health_check(self, ref: str, urls: list[str] | None = None, marker: str | None = None
                     ) -> dict[str, Any]:
        site, env = releases.parse_env(ref)
        payload = releases.check_health(urls, marker)
        with self._mutation("release.health_check", f"env:{site}_{env}") as (session, audit):
            _site, env_row = env_rows(session, site, env)
            job = queue.enqueue(session, "health_check", site=_site, env=env_row, payload=payload,
                                actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env}

    def release_list(self, ref: str) -> list[dict[str, Any]]:
        site, env = releases.parse_env(ref)
        with self.session_factory() as session:
            _site, env_row = env_rows(session, site, env)
            stmt = select(Release).where(Release.env_id == env_row.id).order_by(Release.id.desc())
            rows = session.scalars(stmt)
            return [releases.release_dict(r) for r in rows]
