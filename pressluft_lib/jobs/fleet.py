"""Nodes created from a provider: the `after` hooks of node_create and site_ip.

The playbook (playbooks/node_create.yml) returns the server's id and public IPv4 with set_stats; they
came from the provider's API, so they are checked as input before the node row takes them. Then the
node is provisioned: node_provision is queued with the options `node create` was given (not after a
rerun on a node that was active: it becomes active again).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pressluft_lib import queue
from pressluft_lib.states import JobState, NodeState
from pressluft_lib.storage.models import FloatingIp, Job, Node, Site
from pressluft_lib.storage.transitions import add_job_event, transition


def _server(artifacts: dict[str, Any]) -> tuple[int, str] | None:
    server = artifacts.get("pressluft_server")
    if not isinstance(server, dict):
        return None
    sid, ip = server.get("id"), server.get("ipv4")
    if not isinstance(sid, int) or isinstance(sid, bool) or sid <= 0:
        return None
    try:
        return sid, str(ipaddress.IPv4Address(ip))
    except (ipaddress.AddressValueError, TypeError, ValueError):
        return None


def after_node_create(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    if job.state != JobState.SUCCEEDED or job.node_id is None:
        return
    node = session.get(Node, job.node_id)
    session.refresh(node)
    server = _server(artifacts)
    if server is None:  # the playbook succeeded without saying where: the node stays pending, say why
        add_job_event(
            session,
            job.id,
            "log",
            {
                "event": "no_server",
                "msg": "the playbook returned no valid server id and IPv4 address: node_provision not queued",
            },
        )
        return
    node.host = server[1]
    node.cloud = {**(node.cloud or {}), "server_id": server[0]}
    session.flush()
    provision = (job.payload or {}).get("pressluft_provision")
    if provision is None:  # a rerun on an active node: the server converged, the stack is in place
        transition(session, node, NodeState.ACTIVE, actor=job.actor, event={"job_id": job.id})
        return
    queue.enqueue(
        session,
        "node_provision",
        node=node,
        payload=provision.get("payload") or {},
        variables=provision.get("variables") or {},
        actor=job.actor,
    )


def after_site_ip(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """Link the floating IP the playbook reported to the site (its address came from the provider's API:
    checked as input before the row takes it); after a release the playbook reported, unlink it."""
    if job.state != JobState.SUCCEEDED:
        return
    got = artifacts.get("pressluft_floating_ip")
    name = (job.payload or {}).get("pressluft_floating_ip")
    site = session.get(Site, job.site_id)
    if (job.payload or {}).get("pressluft_floating_ip_state") == "absent":
        if isinstance(got, dict) and got.get("name") == name and got.get("released") is True:
            session.execute(delete(FloatingIp).where(FloatingIp.site_id == site.id, FloatingIp.name == name))
        return
    node = session.get(Node, job.node_id) if job.node_id else None
    address = got.get("address") if isinstance(got, dict) else None
    try:
        address = str(ipaddress.IPv4Address(address))
    except (ipaddress.AddressValueError, TypeError, ValueError):
        address = None
    if address is None or got.get("name") != name or node is None or node.provider_id is None:
        add_job_event(session, job.id, "log", {
            "event": "no_floating_ip", "msg": "the playbook returned no valid floating IP: the site has none",
        })
        return
    row = session.scalar(select(FloatingIp).where(FloatingIp.site_id == site.id))
    if row is None:
        row = FloatingIp(site_id=site.id, provider_id=node.provider_id, name=name)
        session.add(row)
    row.name, row.address, row.provider_id = name, address, node.provider_id
    session.flush()
