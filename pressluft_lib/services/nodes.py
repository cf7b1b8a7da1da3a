"""ControlPlane methods for nodes: add, list, show, remove, provision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from pressluft_lib import capacity, jobtypes, queue, schemas
from pressluft_lib.errors import ConflictError, ValidationError
from pressluft_lib.services.base import ServiceBase
from pressluft_lib.services.views import node_dict
from pressluft_lib.states import JOB_ACTIVE, NodeState, ResourceState
from pressluft_lib.storage.models import Job, Node, Site
from pressluft_lib.storage.transitions import transition


def _capacity_text(usage: capacity.Usage) -> str:
    return f"{usage.used}/{usage.capacity}"


class NodesMixin(ServiceBase):
    """ControlPlane methods for nodes."""

    def node_add(
        self,
        name: str,
        host: str | None = None,
        port: int = 22,
        user: str = "root",
        ssh_key: str | None = None,
        local: bool = False,
    ) -> dict[str, Any]:
        if ssh_key is not None:
            try:  # NUL or an unencodable name: not a file either
                key = Path(ssh_key).expanduser().absolute()
                usable = key.is_file()
            except (OSError, ValueError):
                usable = False
            if not usable:
                raise ValidationError(
                    f"SSH key {ssh_key!r} is not a readable file", details={"ssh_key": ssh_key}
                )
            ssh_key = str(key)
        if host is None and not local:
            raise ValidationError("a node needs --host (or --local for this machine)")
        spec = schemas.parse(
            schemas.NodeCreate,
            {
                "name": name,
                "host": host or "localhost",
                "port": port,
                "user": user,
                "ssh_key_path": ssh_key,
                "local": local,
                "provider": "local" if local else "static",
            },
        )
        with self._mutation("node.add", f"node:{name}") as (session, audit):
            if session.scalar(select(Node.id).where(Node.name == spec.name)) is not None:
                raise ConflictError(f"node {spec.name!r} already exists", details={"node": spec.name})
            node = Node(**spec.model_dump(), state=NodeState.PENDING)
            session.add(node)
            session.flush()
            audit["detail"] = {"host": spec.host, "port": spec.port, "local": spec.local}
            return node_dict(node)

    def node_list(self) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            counts = dict(
                session.execute(
                    select(Site.node_id, func.count())
                    .where(Site.state != ResourceState.DELETED)
                    .group_by(Site.node_id)
                ).all()
            )
            usage = capacity.usage_by_node(session)
            return [
                {**node_dict(n), "sites": counts.get(n.id, 0), "capacity": _capacity_text(usage[n.id])}
                for n in session.scalars(select(Node).order_by(Node.name))
            ]

    def node_show(self, name: str) -> dict[str, Any]:
        with self.session_factory() as session:
            node = self._node(session, name)
            sites = session.scalars(
                select(Site.name)
                .where(Site.node_id == node.id, Site.state != ResourceState.DELETED)
                .order_by(Site.name)
            ).all()
            usage = capacity.usage(session, node)
            return {
                **node_dict(node),
                "sites": list(sites),
                "capacity": _capacity_text(usage),
                "capacity_detail": usage.as_dict(),
                "memory_mb": node.memory_mb,
                "limits_capacity": node.limits_capacity,
            }

    def node_capacity(self, name: str, value: str | int | None) -> dict[str, Any]:
        """Set the node's site capacity (environments) to `value`, or back to derived with 'auto'."""
        override = capacity.parse_override(value)
        with self._mutation("node.capacity", f"node:{name}") as (session, audit):
            node = self._node(session, name)
            audit["detail"] = {"from": node.site_capacity, "to": override}
            node.site_capacity = override
            session.flush()
            return {"name": node.name, **capacity.usage(session, node).as_dict()}

    def node_remove(self, name: str) -> dict[str, Any]:
        with self._mutation("node.remove", f"node:{name}") as (session, audit):
            node = self._node(session, name)
            live = session.scalars(
                select(Site.name).where(Site.node_id == node.id, Site.state != ResourceState.DELETED)
            ).all()
            if live:
                raise ConflictError(
                    f"node {name} still hosts sites: {', '.join(sorted(live))}", details={"sites": list(live)}
                )
            busy = session.scalar(select(Job.id).where(Job.node_id == node.id, Job.state.in_(JOB_ACTIVE)))
            if busy is not None:
                raise ConflictError(f"node {name} has an active job ({busy})", details={"job_id": busy})
            referenced = session.scalar(select(func.count()).select_from(Job).where(Job.node_id == node.id))
            referenced += session.scalar(
                select(func.count()).select_from(Site).where(Site.node_id == node.id)
            )
            if referenced:  # keep the row for the job history
                transition(session, node, NodeState.REMOVED, actor=self.actor)
                audit["result"] = "removed"
            else:
                session.delete(node)
                audit["result"] = "deleted"
            return {"name": name, "state": NodeState.REMOVED}

    def node_provision(
        self, name: str, variables: dict[str, str] | None = None, **options: Any
    ) -> dict[str, Any]:
        """options: hardening (bool), wpcli_src (file), wpcli_sha512 (schemas.NodeOptions)."""
        payload, role_vars = schemas.parse(schemas.NodeOptions, options).split()
        variables = {**(variables or {}), **role_vars}
        jobtypes.check_payload_keys(jobtypes.get("node_provision"), variables, user=True)
        with self._mutation("node.provision", f"node:{name}") as (session, audit):
            node = self._node(session, name)
            if node.state == NodeState.REMOVED:
                raise ConflictError(f"node {name} is removed")
            job = queue.enqueue(
                session, "node_provision", node=node, payload=payload, variables=variables, actor=self.actor
            )
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "node": name}
