"""ControlPlane method `promote`: queue env_promote after its checks (jobs/promote.py holds them)."""

from __future__ import annotations

from typing import Any

from pressluft_lib import names, queue
from pressluft_lib.errors import ConflictError, ValidationError
from pressluft_lib.jobs import backups, releases
from pressluft_lib.jobs import promote as promote_jobs
from pressluft_lib.services.backups import BackupsMixin
from pressluft_lib.services.base import iso
from pressluft_lib.services.environments import _active_envs
from pressluft_lib.states import ResourceState


class PromoteMixin(BackupsMixin):
    """ControlPlane method for promotion (code up; named tables only on request)."""

    def promote(
        self, site: str, env: str, tables: list[str] | None = None, force: bool = False,
        allow_protected: bool = False, health_urls: list[str] | None = None, marker: str | None = None,
    ) -> dict[str, Any]:
        """Queue env_promote: production gets a release built from `env`'s live release, after a fresh
        production backup; `tables` are copied from `env` too. Requires a drift report newer than the
        environment's last change."""
        names.validate_site(site), names.validate_env(env)
        target = names.DEFAULT_ENV
        if env == target:
            raise ValidationError(f"{site}/{env} cannot be promoted onto itself: promote a staging "
                                  "environment (SITE/ENV) into production", details={"env": env})
        if not all(isinstance(v, bool) for v in (force, allow_protected)):
            raise ValidationError("force and allow_protected must be true or false")
        tables = promote_jobs.check_tables(tables)
        health = releases.check_health(health_urls, marker)
        detail = {"from": env, "tables": tables, "force": force, "allow_protected": allow_protected}
        with self._mutation("env.promote", f"env:{site}_{target}", detail) as (session, audit):
            site_row = self._site(session, site)
            if site_row.state != ResourceState.ACTIVE:
                raise ConflictError(f"site {site} is {site_row.state}: a promotion needs it active",
                                    details={"state": site_row.state})
            rows = _active_envs(session, site_row, (env, target), "a promotion needs it active")
            source, prod = rows[env], rows[target]
            changed, busy = promote_jobs.last_change(session, source)
            if busy is not None:
                raise ConflictError(f"job {busy.id} ({busy.type}) is still to change {site}/{env}: promote "
                                    "after it and a drift check", details={"job_id": busy.id})
            found = promote_jobs.newest_report(session, source)
            if found is None:
                raise ValidationError(f"no drift report for {site}/{env}: run `pressluft drift {site}/{env}` "
                                      "first", details={"site": site, "env": env})
            drift_job, report = found
            against = (report.get("against") or {}).get("name")
            if against != target or not (report.get("env") or {}).get("release"):
                raise ValidationError(f"the newest drift report of {site}/{env} (job {drift_job.id}) is not "
                                      f"against {target}: run `pressluft drift {site}/{env}`",
                                      details={"drift_job": drift_job.id})
            if changed is not None and (drift_job.started_at is None or drift_job.started_at <= changed):
                raise ValidationError(
                    f"the drift report of {site}/{env} (job {drift_job.id}, {iso(drift_job.started_at)}) is "
                    f"older than the environment's last change ({iso(changed)}): run `pressluft drift "
                    f"{site}/{env}` again", details={"drift_job": drift_job.id, "changed_at": iso(changed)})
            baseline, pushed = promote_jobs.baseline(session, source)
            refused = promote_jobs.refusals(tables, report, baseline, force, allow_protected, pushed)
            if refused:
                raise ValidationError(f"tables refused: {promote_jobs.describe(refused)}",
                                      details={"refused": refused})
            repository = self._repository(session)
            pre = backups.new_row(session, prod, "db", "pre_promote", False, repository)
            payload: dict[str, Any] = {
                "pressluft_promote_from": env, "pressluft_promote_release": report["env"]["release"],
                "pressluft_promote_tables": tables, promote_jobs.BACKUP_KEY: backups.make_id(pre), **health,
            }
            checked = promote_jobs.guard(tables, report, baseline, force, pushed)
            if checked:
                payload["pressluft_promote_guard"] = checked
                since = (report.get("writes") or {}).get("since")
                if since:
                    payload["pressluft_promote_since"] = str(since)
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(session, promote_jobs.JOB_TYPE, site=site_row, env=prod, payload=payload,
                                actor=self.actor)
            release_id = releases.plan_release(session, job, prod, f"promote:{env}")
            backups.set_job(session, pre, job.id)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": target, "from": env,
                    "from_release": report["env"]["release"], "release": release_id, "tables": tables,
                    "backup_id": backups.make_id(pre), "drift_job": drift_job.id}
