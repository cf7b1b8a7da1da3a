"""Fixtures shared by the integration tests: a provisioned node, and a control plane of the module's own.

Drive the control plane with tests/rig/control_plane.py (run, js, work, add_node).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import nodes as rig
from tests.rig import provisioned


@pytest.fixture(scope="module")
def provisioned_node(tmp_path_factory) -> Iterator[rig.Node]:
    """A node started from the provisioned image (node_provision.yml applied, hardening off): for
    tests that need the stack but do not test provisioning. Built once per recipe hash."""
    rig.require_podman()
    node = provisioned.start(tmp_path_factory.mktemp("nodes"))
    yield node
    rig.stop_nodes([node])


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory) -> Iterator[Path]:
    """The module's own control plane: PRESSLUFT_HOME in a temporary directory, a migrated SQLite
    database, the secret key generated there. Yields PRESSLUFT_HOME."""
    from tests.rig.control_plane import run

    home = tmp_path_factory.mktemp("cp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRESSLUFT_HOME", str(home))
        mp.setenv("PRESSLUFT_DB", f"sqlite:///{home / 'pressluft.db'}")
        mp.delenv("PRESSLUFT_SECRET_KEY", raising=False)
        run("db", "upgrade")
        yield home
