"""Node queries for front ends: login links, site info, node status (pressluft_lib/nodequery)."""

from __future__ import annotations

from typing import Any

from pressluft_lib.nodequery.queries import NodeQueries
from pressluft_lib.services.base import ServiceBase
from pressluft_lib.storage.db import data_dir


class NodeQueriesMixin(ServiceBase):
    def _queries(self) -> NodeQueries:
        return NodeQueries(self.session_factory, self.actor, data_dir())

    def login(self, site: str, env: str, *, user: str | None = None, ttl: int = 300,
              redirect: str | None = None) -> dict[str, Any]:
        return self._queries().login(site, env, user=user, ttl=ttl, redirect=redirect)

    def site_info(self, site: str, env: str) -> dict[str, Any]:
        return self._queries().site_info(site, env)

    def node_status(self, name: str) -> dict[str, Any]:
        return self._queries().node_status(name)
