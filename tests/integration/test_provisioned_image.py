"""Nodes started from the provisioned image (tests/rig/provisioned.py) are whole, separate nodes: the
stack runs after boot and is enabled, and what must differ per node (SSH host keys, authorized key,
machine id, node name) does. That sites can be created on them is what test_site.py and the other
users of `provisioned_node` do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.rig import nodes as rig
from tests.rig import provisioned

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    rig.require_podman()
    work = tmp_path_factory.mktemp("nodes")
    started = []
    try:
        for _ in range(2):
            started.append(provisioned.start(work))
        yield started
    finally:
        rig.stop_nodes(started)


def test_the_stack_runs_after_boot_and_is_enabled(two):
    for node in two:
        for unit in provisioned.SERVICES:
            assert node.unit_active(unit), node.sh(f"systemctl status {unit}", check=False)
        enabled = node.exec("systemctl", "is-enabled", *provisioned.SERVICES).stdout.split()
        assert enabled == ["enabled"] * len(provisioned.SERVICES)
        assert node.exec("mysql", "-N", "-e", "SELECT 1").stdout.strip() == "1"
        assert node.exec("systemctl", "is-system-running", check=False).stdout.strip() == "running"


def test_per_node_identity_is_not_baked(two):
    def ident(node: rig.Node) -> dict:
        return {
            "host_key": node.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1],
            "machine_id": node.exec("cat", "/etc/machine-id").stdout.strip(),
            "authorized": node.exec("cat", "/home/pressluft/.ssh/authorized_keys").stdout.strip(),
        }

    a, b = (ident(n) for n in two)
    for key in a:
        assert a[key] != b[key], key
    for node, got in zip(two, (a, b), strict=True):
        assert re.fullmatch(r"[0-9a-f]{32}", got["machine_id"])
        assert got["authorized"] == Path(f"{node.key_file}.pub").read_text().strip()
        assert f"node: \"{node.name}\"" in node.exec("cat", "/etc/pressluft/node.yml").stdout
