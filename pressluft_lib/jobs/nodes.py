"""Nodes on the control plane: the `after` hook of node_provision.

node_provision reports the node's memory and how many environments its open-files limits allow
(playbooks/node_provision.yml, set_stats pressluft_node_limits); the node's derived site capacity is
computed from them (pressluft_lib/capacity.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pressluft_lib.states import JobState
from pressluft_lib.storage.models import Job, Node


def _count(value: Any) -> int | None:
    """A positive int the node reported (it came from the node, so it is input), else None. Ansible's
    templating hands numbers over as strings of digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 11:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        return None
    return value


def after_node_provision(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    if job.state != JobState.SUCCEEDED or job.node_id is None:
        return
    limits = artifacts.get("pressluft_node_limits")
    if not isinstance(limits, dict):
        return
    node = session.get(Node, job.node_id)
    memory, allowed = _count(limits.get("memory_mb")), _count(limits.get("limits_capacity"))
    if memory is not None:
        node.memory_mb = memory
    if allowed is not None:
        node.limits_capacity = allowed
    session.flush()
