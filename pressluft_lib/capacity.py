"""Site capacity of a node: how many environments it may hold, and how many it holds.

The unit is the environment (a site with staging counts two): each one is a PHP-FPM pool, a database
and an nginx server block, which is what the node's limits and memory are spent on.

A node's capacity is its operator's override (`pressluft node capacity NAME N`) or, without one, derived
from what the last node_provision reported: the smaller of
- the environments its open-files limits allow (`limits_capacity`, computed on the node by
  playbooks/node_provision.yml: the PHP-FPM master holds one listening socket per pool, and past its
  limit a reload fails with "Too many open files" and takes down every site of that PHP version; nginx
  holds two log files per environment in every process), and
- the memory left after the shared services, at MB_PER_ENV per environment.
A node that reported nothing (added but not provisioned by this version) gets DEFAULT_CAPACITY, which
fits under the 1,024 descriptors Debian's php-fpm starts with.

Placement and the site_create guard call `usage(session, node)` / `usage_by_node(session)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pressluft_lib.errors import ValidationError
from pressluft_lib.states import ResourceState
from pressluft_lib.storage.models import Environment, Node, Site

DEFAULT_CAPACITY = 1000
# Memory for the OS, MariaDB's buffer pool, Redis and opcache before the first environment.
MEMORY_RESERVE_MB = 2048
MB_PER_ENV = 12
MAX_CAPACITY = 100_000


class CapacityExceeded(ValidationError):
    """A job would put more environments on a node than its capacity (refused when queued)."""

    code = "capacity_exceeded"


@dataclass(frozen=True)
class Usage:
    used: int
    capacity: int
    source: str  # "override", "derived" or "default"

    @property
    def free(self) -> int:
        return max(self.capacity - self.used, 0)

    def as_dict(self) -> dict[str, int | str]:
        return {"used": self.used, "capacity": self.capacity, "free": self.free, "source": self.source}


def derive(memory_mb: int | None, limits_capacity: int | None) -> int | None:
    """Capacity from the node's reported memory and limits; None when neither is known."""
    bounds = []
    if limits_capacity:
        bounds.append(limits_capacity)
    if memory_mb:
        bounds.append((memory_mb - MEMORY_RESERVE_MB) // MB_PER_ENV)
    return max(min(bounds), 0) if bounds else None


def capacity_of(node: Node) -> tuple[int, str]:
    if node.site_capacity is not None:
        return node.site_capacity, "override"
    derived = derive(node.memory_mb, node.limits_capacity)
    return (DEFAULT_CAPACITY, "default") if derived is None else (derived, "derived")


def _live_envs():
    return (
        select(Site.node_id, func.count(Environment.id))
        .join(Environment, Environment.site_id == Site.id)
        .where(Site.state != ResourceState.DELETED, Environment.state != ResourceState.DELETED)
        .group_by(Site.node_id)
    )


def usage(session: Session, node: Node) -> Usage:
    """Environments on `node` (not deleted) and its capacity."""
    row = session.execute(_live_envs().where(Site.node_id == node.id)).first()
    return Usage(row[1] if row else 0, *capacity_of(node))


def usage_by_node(session: Session) -> dict[int, Usage]:
    """Usage of every node by node id, in two queries (placement over many nodes)."""
    counts = dict(session.execute(_live_envs()).tuples().all())
    return {n.id: Usage(counts.get(n.id, 0), *capacity_of(n)) for n in session.scalars(select(Node))}


def check(session: Session, node: Node, adding: int = 1) -> Usage:
    """Refuse (CapacityExceeded, exit 2) when `adding` environments would pass the node's capacity."""
    u = usage(session, node)
    if u.used + adding > u.capacity:
        raise CapacityExceeded(
            f"node {node.name} is full: {u.used} of {u.capacity} environments ({u.source} capacity); "
            f"place the site on another node, or raise the capacity with "
            f"`pressluft node capacity {node.name} N` once the node's limits allow it",
            details={"node": node.name, **u.as_dict()},
        )
    return u


def parse_override(value: str | int | None) -> int | None:
    """`auto` (or None) clears the override; otherwise an integer 0..MAX_CAPACITY."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"capacity must be a number or 'auto', not {str(value)[:40]!r}") from None
    if isinstance(value, bool) or not 0 <= n <= MAX_CAPACITY:
        raise ValidationError(f"capacity must be between 0 and {MAX_CAPACITY}, not {n}")
    return n
