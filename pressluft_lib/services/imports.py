"""ControlPlane method for `pressluft import` (jobs/imports.py checks the input and records what the job
returned; docs/import.md)."""

from __future__ import annotations

from typing import Any

from pressluft_lib import queue
from pressluft_lib.errors import NotFound, ValidationError
from pressluft_lib.jobs import backups, env_rows, imports, releases, require_active
from pressluft_lib.services.backups import BackupsMixin


class ImportsMixin(BackupsMixin):
    """ControlPlane methods for site imports."""

    def site_import(self, ref: str, archive: str | None = None, allow_http: bool = False,
                    max_bytes: int | None = None, health_urls: list[str] | None = None,
                    marker: str | None = None, from_: str | None = None, ssh_key: str | None = None,
                    accept_new_host_key: bool = False,
                    keep_constants: list[str] | None = None) -> dict[str, Any]:
        """Queue site_import from an archive (a file here or a URL) or, with from_, over SSH."""
        site, env = releases.parse_env(ref)
        if (archive is None) == (from_ is None):
            raise ValidationError("give exactly one of --archive FILE|URL and --from ssh://USER@HOST/PATH")
        if from_ is not None:
            payload = imports.pull_payload(from_, ssh_key, accept_new_host_key)
        else:
            payload = imports.import_payload(archive, allow_http, max_bytes)
        payload |= releases.check_health(health_urls, marker)
        payload |= imports.keep_constants_payload(keep_constants)
        source = from_ or payload.get("pressluft_import_url") or payload.get("pressluft_import_archive")
        with self._mutation("site.import", f"env:{site}_{env}", {"archive": source}) as (session, audit):
            site_row, env_row = _target(session, site, env)
            require_active(site_row, env_row, "an import needs it active")
            repository = self._repository(session)
            pre = backups.new_row(session, env_row, "full", "pre_import", False, repository)
            payload["pressluft_pre_import_backup_id"] = backups.make_id(pre)
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(session, "site_import", site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            release_id = releases.plan_release(session, job, env_row, "import")
            backups.set_job(session, pre, job.id)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "release": release_id,
                    "backup_id": backups.make_id(pre)}


def _target(session, site: str, env: str):
    """env_rows, or NotFound naming the command that creates the target. An import never creates it: that
    takes choices (node, PHP version, domains) the import does not have, and a mistyped name would become a
    new site."""
    try:
        return env_rows(session, site, env)
    except NotFound as exc:
        if "has no environment" in str(exc):
            how = f"pressluft env create {site}/{env}"
        else:
            how = f"pressluft site create {site} --node NODE"
            how += f" --env {env}" if env != "production" else ""
        raise NotFound(f"{exc}: create it first ({how}), then import into it", details=exc.details) from None
