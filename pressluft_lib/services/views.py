"""Rows as the JSON-ready dicts the services return."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib.services.base import iso
from pressluft_lib.storage.models import Environment, Job, JobEvent, Node, Site


def node_dict(n: Node) -> dict[str, Any]:
    return {
        "name": n.name,
        "host": n.host,
        "port": n.port,
        "user": n.user,
        "ssh_key_path": n.ssh_key_path,
        "local": n.local,
        "provider": n.provider,
        "roles": list(n.roles or []),
        "state": n.state,
        "created_at": iso(n.created_at),
    }


def job_dict(j: Job, session: Session | None = None) -> dict[str, Any]:
    out = {
        "id": j.id,
        "type": j.type,
        "state": j.state,
        "attempts": j.attempts,
        "worker_id": j.worker_id,
        "fencing_token": j.fencing_token,
        "cancel_requested": j.cancel_requested,
        "error_code": j.error_code,
        "error_message": j.error_message,
        "actor": j.actor,
        "payload": j.payload or {},
        "created_at": iso(j.created_at),
        "started_at": iso(j.started_at),
        "finished_at": iso(j.finished_at),
    }
    if session is not None:
        out["site"] = session.scalar(select(Site.name).where(Site.id == j.site_id)) if j.site_id else None
        out["env"] = (
            session.scalar(select(Environment.name).where(Environment.id == j.env_id)) if j.env_id else None
        )
        out["node"] = session.scalar(select(Node.name).where(Node.id == j.node_id)) if j.node_id else None
    return out


def event_dict(e: JobEvent) -> dict[str, Any]:
    return {"seq": e.seq, "kind": e.kind, "data": e.data, "created_at": iso(e.created_at)}
