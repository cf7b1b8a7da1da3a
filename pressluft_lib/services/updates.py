"""ControlPlane methods for updates: `pressluft update` and the update history (jobs/updates.py checks
the input and records what the job returned; docs/updates.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pressluft_lib import queue
from pressluft_lib.jobs import backups, releases, updates
from pressluft_lib.services.backups import BackupsMixin
from pressluft_lib.states import ReleaseState
from pressluft_lib.storage.models import Release


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
    ) -> dict[str, Any]:
        site, env = releases.parse_env(ref)
        payload = updates.update_payload(
            core, plugins, themes, minor_only, exclude, plugin_zips, theme_zips, core_zip
        ) | releases.check_health(health_urls, marker)
        detail = {k.removeprefix("pressluft_update_"): v for k, v in payload.items() if v}
        with self._mutation("env.update", f"env:{site}_{env}", detail) as (session, audit):
            site_row, env_row = releases.env_rows(session, site, env)
            self._require_active(site_row, env_row, "an update")
            repository = self._repository(session)
            pre = backups.new_row(session, env_row, "db", "pre_update", False, repository)
            payload["pressluft_pre_update_backup_id"] = backups.make_id(pre)
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(
                session, "env_update", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            release_id = f"{job.created_at:%Y%m%dT%H%M%SZ}-{job.id}"
            job.payload = {**payload, "pressluft_release": release_id}
            session.add(
                Release(
                    env_id=env_row.id,
                    release_id=release_id,
                    state=ReleaseState.BUILDING,
                    health={"job_id": job.id, "source": "update"},
                )
            )
            backups.set_job(session, pre, job.id)
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "site": site,
                "env": env,
                "release": release_id,
                "backup_id": backups.make_id(pre),
            }

    def update_list(self, ref: str) -> list[dict[str, Any]]:
        """The environment's updates, newest first: their outcome, items and pre-update backup."""
        site, env = releases.parse_env(ref)
        with self.session_factory() as session:
            _site, env_row = releases.env_rows(session, site, env)
            rows = session.scalars(
                select(Release).where(Release.env_id == env_row.id).order_by(Release.id.desc())
            )
            return [updates.update_dict(r) for r in rows if (r.health or {}).get("source") == "update"]
