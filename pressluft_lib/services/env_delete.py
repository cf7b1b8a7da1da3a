"""ControlPlane method `env_delete`: queue env_delete (a final backup, then the environment removed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pressluft_lib import names, queue
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.jobs import backups
from pressluft_lib.jobs import environments as env_jobs
from pressluft_lib.services.backups import BackupsMixin
from pressluft_lib.states import ResourceState
from pressluft_lib.storage.models import Environment


class EnvDeleteMixin(BackupsMixin):
    """ControlPlane method for deleting an environment other than production."""

    def env_delete(self, site: str, env: str) -> dict[str, Any]:
        names.validate_site(site), names.validate_env(env)
        with self._mutation("env.delete", f"env:{site}_{env}") as (session, audit):
            site_row = self._site(session, site)
            rows = {e.name: e for e in session.scalars(select(Environment).where(
                Environment.site_id == site_row.id, Environment.state != ResourceState.DELETED))}
            if env == names.DEFAULT_ENV:
                others = sorted(n for n in rows if n != env)
                if others:
                    raise ValidationError(
                        f"production cannot be deleted while {site} has other environments "
                        f"({', '.join(others)}): delete them first", details={"environments": others})
                raise ValidationError(f"production goes with its site: `pressluft site delete {site}`",
                                      details={"env": env})
            row = rows.get(env)
            if row is None:
                raise NotFound(f"site {site} has no environment {env}", details={"site": site, "env": env})
            # A failed environment may be deleted (that is how one gets rid of a broken clone).
            if row.state not in (ResourceState.ACTIVE, ResourceState.FAILED):
                raise ConflictError(f"environment {site}/{env} is {row.state}: deleting needs it active or "
                                    "failed", details={"env": env, "state": row.state})
            repository = self._repository(session)
            final = backups.new_row(session, row, "full", "pre_delete", True, repository)  # with its release
            payload: dict[str, Any] = {env_jobs.DELETE_BACKUP_KEY: backups.make_id(final)}
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(session, env_jobs.DELETE_JOB_TYPE, site=site_row, env=row, payload=payload,
                                actor=self.actor)
            backups.set_job(session, final, job.id)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "backup_id": backups.make_id(final)}
