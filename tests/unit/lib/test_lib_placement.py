"""Placement's decision (pressluft_lib/placement.py) on node status answers of the node query's shape."""

from __future__ import annotations

import pytest

from pressluft_lib import placement
from pressluft_lib.errors import ConflictError

GB = 1 << 30


def status(load: float, cpus: int, mem_free: float, disk_free: float) -> dict:
    return {"cpus": cpus, "load": {"1m": load, "5m": load, "15m": load},
            "memory": {"total_bytes": 8 * GB, "available_bytes": int(8 * GB * mem_free)},
            "disk": [{"path": "/", "total_bytes": 100 * GB, "free_bytes": 90 * GB},
                     {"path": "/var/www", "total_bytes": 100 * GB, "free_bytes": int(100 * GB * disk_free)}]}


def cand(name, used=0, cap=100, st=None, error=None):
    return placement.Candidate(name, used, cap, status=st, error=error)


def test_the_scarcest_resource_decides():
    busy_cpu = cand("a", st=status(load=3.6, cpus=4, mem_free=0.9, disk_free=0.9))  # cpu 10% left
    low_disk = cand("b", st=status(load=0.4, cpus=4, mem_free=0.9, disk_free=0.2))  # /var/www 20% left
    balanced = cand("c", used=50, st=status(load=2.0, cpus=4, mem_free=0.5, disk_free=0.6))  # 50% left
    chosen, ranked = placement.choose([busy_cpu, low_disk, balanced])
    assert chosen.name == "c" and [c.name for c in ranked] == ["c", "b", "a"]
    assert chosen.bottleneck in ("cpu", "memory", "sites") and round(chosen.headroom, 2) == 0.5
    assert "scarcest: disk" in placement.explain(low_disk)
    assert low_disk.shares["disk"] == pytest.approx(0.2)  # /var/www, not /


def test_full_and_silent_nodes_are_skipped_and_named():
    full = cand("full", used=10, cap=10, st={})
    silent = cand("gone", error="node query timed out after 10 s")
    ok = cand("ok", st=status(load=3.9, cpus=4, mem_free=0.05, disk_free=0.05))
    chosen, ranked = placement.choose([full, silent, ok])
    assert chosen.name == "ok" and {c.name for c in ranked} == {"ok", "full", "gone"}
    assert "full (10/10" in placement.explain(full) and "timed out" in placement.explain(silent)
    with pytest.raises(ConflictError, match="gone: node query timed out"):
        placement.choose([full, silent])
    with pytest.raises(ConflictError, match="no active node"):
        placement.choose([])


def test_ties_go_to_fewer_sites_then_name():
    same = status(load=1.0, cpus=2, mem_free=0.5, disk_free=0.5)
    nodes = [cand("b", used=3, st=same), cand("a", used=5, st=same), cand("c", used=3, st=same)]
    chosen, _ = placement.choose(nodes)
    assert chosen.name == "b"
