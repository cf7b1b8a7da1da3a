"""ControlPlane methods for updates: `pressluft update` and the update history (jobs/updates.py checks
the input and records what the job returned; docs/updates.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names, queue
from pressluft_lib.errors import ConflictError, NotFound, PressluftError, ValidationError
from pressluft_lib.jobs import backups, env_rows, releases, require_active, updates
from pressluft_lib.services.backups import BackupsMixin
from pressluft_lib.services.base import iso
from pressluft_lib.states import ResourceState
from pressluft_lib.storage.models import Environment, Job, Release, Site, UpdateReport, utcnow


class UpdatesMixin(BackupsMixin):
    """ControlPlane methods for updates."""

    def update(
        self,
        ref: str,
        core: bool = False,
        plugins: list[str] | None = None,
        themes: list[str] | None = None,
        minor_only: bool = False,
        exclude: list[str] | None = None,
        plugin_zips: list[str] | None = None,
        theme_zips: list[str] | None = None,
        core_zip: str | None = None,
        health_urls: list[str] | None = None,
        marker: str | None = None,
        safe: bool = False,
        max_diff: list[str] | None = None,
    ) -> dict[str, Any]:
        """Queue env_update; `safe` first tries the plan on a throwaway clone (report: update_report)."""
        site, env = releases.parse_env(ref)
        payload = updates.update_payload(
            core, plugins, themes, minor_only, exclude, plugin_zips, theme_zips, core_zip, safe, max_diff
        ) | releases.check_health(health_urls, marker)
        detail = {k.removeprefix("pressluft_update_"): v for k, v in payload.items() if v}
        with self._mutation("env.update", f"env:{site}_{env}", detail) as (session, audit):
            site_row, env_row = env_rows(session, site, env)
            require_active(site_row, env_row, "an update needs it active")
            repository = self._repository(session)
            pre = backups.new_row(session, env_row, "db", "pre_update", False, repository)
            payload["pressluft_pre_update_backup_id"] = backups.make_id(pre)
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(
                session, "env_update", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            release_id = releases.plan_release(session, job, env_row, "update")
            backups.set_job(session, pre, job.id)
            made = {"job_id": job.id, "site": site, "env": env, "release": release_id,
                    "backup_id": backups.make_id(pre)}
            if safe:
                made |= self._safe_clone(session, site_row, env_row, job)
            audit["result"] = f"job:{job.id}"
            return made

    def _safe_clone(self, session: Session, site_row: Site, env_row: Environment, job: Job) -> dict[str, Any]:
        """Name the safe update's throwaway environment and make its (pending) report row."""
        clone = updates.clone_name(job.id)
        taken = session.scalar(select(Environment.id).where(
            Environment.site_id == site_row.id, Environment.name == clone,
            Environment.state != ResourceState.DELETED))
        if taken is not None:
            raise ConflictError(f"site {site_row.name} has an environment {clone}, the name of this update's "
                                "throwaway clone: try again", details={"env": clone})
        job.payload = {**job.payload, "pressluft_update_clone_env": clone}
        report = UpdateReport(env_id=env_row.id, job_id=job.id, state="pending", clone=clone)
        session.add(report)
        session.flush()
        return {"safe": True, "clone": clone, "report_id": report.id}

    def update_report(self, report_id: int) -> dict[str, Any]:
        """A safe update's comparison: per URL the statuses, the changed fraction and the diff."""
        if isinstance(report_id, bool) or not isinstance(report_id, int) or report_id < 1:
            raise ValidationError("a report id is a positive number")
        with self.session_factory() as session:
            row = session.get(UpdateReport, report_id)
            if row is None:
                raise NotFound(f"no update report {report_id}", details={"report": report_id})
            env = session.get(Environment, row.env_id)
            return {"id": row.id, "job_id": row.job_id, "site": env.site.name, "env": env.name,
                    "state": row.state, "clone": row.clone, "created_at": iso(row.created_at),
                    **(row.report or {})}

    def update_list(self, ref: str) -> list[dict[str, Any]]:
        """The environment's updates, newest first: their outcome, items and pre-update backup."""
        site, env = releases.parse_env(ref)
        with self.session_factory() as session:
            _site, env_row = env_rows(session, site, env)
            rows = session.scalars(
                select(Release).where(Release.env_id == env_row.id).order_by(Release.id.desc())
            )
            return [updates.update_dict(r) for r in rows if (r.health or {}).get("source") == "update"]

    # -- policy and scheduling ------------------------------------------------------------------
    def update_policy(self, ref: str, auto: str | None = None, core: bool | None = None,
                      plugins: list[str] | None = None, themes: list[str] | None = None,
                      exclude: list[str] | None = None, pins: list[str] | None = None,
                      unpin: list[str] | None = None, interval_hours: int | None = None) -> dict[str, Any]:
        """Show (no changes) or change an environment's update policy; unset values stay as they are."""
        site, env = releases.parse_env(ref)
        changes = {"auto": auto, "core": core, "plugins": plugins, "themes": themes, "exclude": exclude,
                   "interval_hours": interval_hours}
        if not any(v is not None for v in (*changes.values(), pins, unpin)):
            with self.session_factory() as session:
                _site, env_row = env_rows(session, site, env)
                return {"site": site, "env": env, **updates.check_policy(env_row.update_policy, {})}
        with self._mutation("update.policy", f"env:{site}_{env}", {k: v for k, v in changes.items()
                                                                  if v is not None}) as (session, _audit):
            _site, env_row = env_rows(session, site, env)
            policy = updates.check_policy(env_row.update_policy, changes)
            held = {**policy["pins"], **updates.check_policy(None, {"pins": pins or []})["pins"]}
            for slug in updates.check_policy(None, {"exclude": unpin or []})["exclude"]:
                held.pop(slug, None)
            env_row.update_policy = {**policy, "pins": held}
            session.flush()
            return {"site": site, "env": env, **env_row.update_policy}

    def update_schedule(self, sites: list[str] | None = None, dry_run: bool = False,
                        now: datetime | None = None) -> dict[str, Any]:
        """Queue the updates environments' policies make due: at most one job per site per call.

        An environment is due when its policy's `auto` is not off and no env_update job of it was
        queued within the policy's interval (a failed one counts: the next try waits an interval).
        Busy or inactive sites are skipped, as the backup scheduler does."""
        for name in sites or ():
            names.validate_site(name)
        now = now or utcnow()
        with self.session_factory() as session:
            stmt = (select(Site.name, Environment.name, Environment.update_policy, Site.id)
                    .join(Environment, Environment.site_id == Site.id)
                    .where(Site.state != ResourceState.DELETED, Environment.update_policy.is_not(None))
                    .order_by(Site.name, Environment.name))
            if sites:
                stmt = stmt.where(Site.name.in_(sites))
            rows = session.execute(stmt).all()
        enqueued: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        done_sites: set[str] = set()
        for site, env, policy, site_id in rows:
            args = updates.policy_update_args(policy or {})
            if args is None or site in done_sites:
                continue
            with self.session_factory() as session:
                last = session.scalar(
                    select(Job.created_at).join(Environment, Environment.id == Job.env_id)
                    .where(Job.type == "env_update", Environment.site_id == site_id, Environment.name == env)
                    .order_by(Job.created_at.desc()).limit(1))
            interval = timedelta(hours=int(policy.get("interval_hours") or 24))
            if last is not None and now - last < interval:
                continue
            item = {"site": site, "env": env, "minor_only": args["minor_only"]}
            if dry_run:
                enqueued.append({**item, "job_id": None})
                done_sites.add(site)
                continue
            try:
                made = self.update(f"{site}/{env}", **args)
            except PressluftError as exc:  # busy, inactive, or the state changed meanwhile
                skipped.append({**item, "skipped": exc.code, "reason": exc.message})
                continue
            done_sites.add(site)
            enqueued.append({**item, "job_id": made["job_id"], "backup_id": made["backup_id"]})
        return {"enqueued": enqueued, "skipped": skipped, "dry_run": dry_run}
