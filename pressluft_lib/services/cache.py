"""ControlPlane methods for the page cache: switch it on or off, purge it (jobs/cache.py checks the input)."""

from __future__ import annotations

from typing import Any

from pressluft_lib import queue
from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import cache
from pressluft_lib.jobs.releases import env_rows, parse_env
from pressluft_lib.services.base import ServiceBase


class CacheMixin(ServiceBase):
    """ControlPlane methods for the page cache."""

    def cache_toggle(self, ref: str, enabled: bool) -> dict[str, Any]:
        site, env = parse_env(ref)  # refused input leaves no audit row
        state = "enabled" if enabled is True else "disabled" if enabled is False else None
        if state is None:
            raise ValidationError("enabled must be true or false")
        with self._mutation("cache.toggle", f"env:{site}_{env}", {"state": state}) as (session, audit):
            site_row, env_row = env_rows(session, site, env)
            job = queue.enqueue(session, cache.TOGGLE, site=site_row, env=env_row,
                                payload={"pressluft_cache_state": state}, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "state": state}

    def cache_purge(self, ref: str, urls: list[str] | None = None) -> dict[str, Any]:
        site, env = parse_env(ref)
        with self._mutation("cache.purge", f"env:{site}_{env}", {"urls": list(urls or ())[:10]}) as (
                session, audit):
            site_row, env_row = env_rows(session, site, env)
            checked = cache.check_urls(urls, cache.served_names(session, site_row, env_row))
            payload = {"pressluft_cache_urls": checked} if checked else {}
            job = queue.enqueue(session, cache.PURGE, site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "urls": checked}
