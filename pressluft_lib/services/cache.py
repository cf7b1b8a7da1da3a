"""ControlPlane methods for the caches: switch the page or object cache on or off, purge the page cache
(jobs/cache.py checks the input)."""

from __future__ import annotations

from typing import Any

from pressluft_lib import queue
from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import cache, env_rows, require_active
from pressluft_lib.jobs.releases import parse_env, plan_release
from pressluft_lib.services.base import ServiceBase


class CacheMixin(ServiceBase):
    """ControlPlane methods for the page cache."""

    def cache_toggle(self, ref: str, enabled: bool, kind: str = cache.PAGE,
                     plugin_zip: str | None = None) -> dict[str, Any]:
        """Queue env_cache_toggle. kind object builds a release with the Redis Object Cache plugin (from
        plugin_zip, a zip on this machine, else downloaded by the node) and its drop-in, or without."""
        site, env = parse_env(ref)  # refused input leaves no audit row
        state = "enabled" if enabled is True else "disabled" if enabled is False else None
        if state is None:
            raise ValidationError("enabled must be true or false")
        payload = {"pressluft_cache_state": state} | cache.check_kind(kind, state, plugin_zip)
        with self._mutation("cache.toggle", f"env:{site}_{env}", {"state": state, "kind": kind}) as (
                session, audit):
            site_row, env_row = env_rows(session, site, env)
            if kind == cache.OBJECT:
                require_active(site_row, env_row, "the object cache needs it active")
            job = queue.enqueue(session, cache.TOGGLE, site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            out = {"job_id": job.id, "site": site, "env": env, "state": state, "kind": kind}
            if kind == cache.OBJECT:
                # Like a deploy: the release the job may build has its row from the start.
                out["release"] = plan_release(session, job, env_row, f"object cache {state}")
            audit["result"] = f"job:{job.id}"
            return out

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
