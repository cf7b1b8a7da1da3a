"""Placement: which active node a new site goes to when `site create` names none.

Each candidate's headroom is the share left of its scarcest resource: CPU (1 - 1-minute load per CPU),
memory (available / total), disk (free / total of /var/www, else /) from the node status query, and site
capacity (free / capacity, pressluft_lib/capacity.py). The node whose scarcest resource has the most left
wins; a node that is full or does not answer is not a candidate. Ties go to the node with fewer sites,
then to the name. Data in, decision out: the caller runs the queries (services/placement.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pressluft_lib.errors import ConflictError


@dataclass
class Candidate:
    name: str
    used: int  # environments on the node
    capacity: int
    status: dict[str, Any] | None = None  # the node status query's answer; None: it did not answer
    error: str | None = None
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def headroom(self) -> float:
        return min(self.shares.values()) if self.shares else 0.0

    @property
    def bottleneck(self) -> str:
        return min(self.shares, key=self.shares.get) if self.shares else "-"


def _share(free: float, total: float) -> float:
    return max(0.0, min(1.0, free / total)) if total > 0 else 0.0


def shares(c: Candidate) -> dict[str, float]:
    s = c.status or {}
    out = {"sites": _share(c.capacity - c.used, c.capacity)}
    cpus, load = s.get("cpus") or 0, (s.get("load") or {}).get("1m")
    if cpus and load is not None:
        out["cpu"] = max(0.0, 1.0 - float(load) / cpus)
    mem = s.get("memory") or {}
    if mem.get("total_bytes"):
        out["memory"] = _share(mem.get("available_bytes", 0), mem["total_bytes"])
    disks = {d.get("path"): d for d in s.get("disk") or [] if isinstance(d, dict)}
    disk = disks.get("/var/www") or disks.get("/")
    if disk and disk.get("total_bytes"):
        out["disk"] = _share(disk.get("free_bytes", 0), disk["total_bytes"])
    return out


def choose(candidates: list[Candidate]) -> tuple[Candidate, list[Candidate]]:
    """(the chosen node, every candidate ranked best first); ConflictError when none can take a site."""
    for c in candidates:
        c.shares = shares(c) if c.status is not None else {}
    usable = [c for c in candidates if c.status is not None and c.used < c.capacity]
    ranked = sorted(usable, key=lambda c: (-round(c.headroom, 3), c.used, c.name))
    if not ranked:
        why = "; ".join(f"{c.name}: {c.error or 'full'}" for c in candidates) or "no active node"
        raise ConflictError(
            f"no node can take the site ({why}); add one or name it with --node",
            details={"candidates": [c.name for c in candidates]},
        )
    return ranked[0], ranked + [c for c in candidates if c not in ranked]


def explain(c: Candidate) -> str:
    if c.status is None:
        return f"{c.name}: no answer ({c.error})"
    if c.used >= c.capacity:
        return f"{c.name}: full ({c.used}/{c.capacity} environments)"
    parts = ", ".join(f"{k} {v:.0%}" for k, v in sorted(c.shares.items()))
    return f"{c.name}: headroom {c.headroom:.0%} (free: {parts}; scarcest: {c.bottleneck})"
