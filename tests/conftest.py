"""Shared fixtures: real podman systemd nodes that are always removed, even after a failed test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.rig import nodes as rig


def _require_podman() -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run scripts/setup --tests (node tests never skip silently)")


@pytest.fixture(scope="session", autouse=True)
def _no_stale_nodes() -> Iterator[None]:
    if shutil.which("podman"):
        rig.remove_stale_nodes()
    yield


@pytest.fixture
def node_factory(tmp_path_factory) -> Iterator[Callable[..., list[rig.Node]]]:
    """node_factory(count=1, caps=(), memory=None) -> started nodes, all removed at teardown."""
    _require_podman()
    started: list[rig.Node] = []
    workdir = tmp_path_factory.mktemp("nodes")

    def factory(count: int = 1, caps=(), memory: str | None = None) -> list[rig.Node]:
        new = [rig.start_node(workdir, caps=caps, memory=memory) for _ in range(count)]
        started.extend(new)
        return new

    yield factory
    rig.stop_nodes(started)


@pytest.fixture
def node(node_factory) -> rig.Node:
    return node_factory(1)[0]


@pytest.fixture(scope="module")
def module_node(tmp_path_factory) -> Iterator[rig.Node]:
    """One node shared by the tests of a module (for slow set-ups such as a provisioned stack)."""
    _require_podman()
    n = rig.start_node(tmp_path_factory.mktemp("nodes"))
    yield n
    rig.stop_nodes([n])
