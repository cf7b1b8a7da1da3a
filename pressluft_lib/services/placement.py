"""ControlPlane.site_place: the node a new site goes to when `site create` names none.

pressluft_lib/placement.py decides; this gathers the figures: capacity from the database, load, memory and
disk from a node status query of each active node (bounded and audited like every node query)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pressluft_lib import capacity, placement
from pressluft_lib.errors import PressluftError
from pressluft_lib.services.base import ServiceBase
from pressluft_lib.states import NodeState, ResourceState
from pressluft_lib.storage.models import Node, Site


class PlacementMixin(ServiceBase):
    def site_place(self, site: str | None = None) -> dict[str, Any]:
        """The node for a new site; for `site`, a live site already placed (a retried create), its node."""
        with self.session_factory() as session:
            existing = session.scalar(Site.by_name(site)) if site else None
            if existing is not None and existing.state != ResourceState.DELETED:
                name = existing.node.name
                return {
                    "node": name,
                    "reason": f"{name}: the site's node (retrying its creation)",
                    "candidates": [],
                }
            usage = capacity.usage_by_node(session)
            nodes = session.scalars(
                select(Node).where(Node.state == NodeState.ACTIVE).order_by(Node.name)
            ).all()
            candidates = [placement.Candidate(n.name, usage[n.id].used, usage[n.id].capacity) for n in nodes]
        for c in candidates:
            if c.used >= c.capacity:
                c.status = {}  # full: no need to ask it
                continue
            try:
                c.status = self.node_status(c.name)
            except PressluftError as exc:  # unreachable, slow, broken: not a candidate this time
                c.error = exc.message[:200]
        chosen, ranked = placement.choose(candidates)
        return {
            "node": chosen.name,
            "reason": placement.explain(chosen),
            "candidates": [
                {
                    "node": c.name,
                    "headroom": round(c.headroom, 3),
                    "shares": {k: round(v, 3) for k, v in c.shares.items()},
                    "used": c.used,
                    "capacity": c.capacity,
                    "error": c.error,
                    "explain": placement.explain(c),
                }
                for c in ranked
            ],
        }
