"""Shared fixtures: real podman systemd nodes that are always removed, even after a failed test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.rig import nodes as rig


@pytest.fixture(scope="session", autouse=True)
def _no_stale_nodes() -> Iterator[None]:
    if shutil.which("podman"):
        rig.remove_stale_nodes()
    yield


@pytest.fixture
def node_factory(tmp_path_factory) -> Iterator[Callable[..., list[rig.Node]]]:
    """node_factory(count=1, caps=(), memory=None) -> started nodes, all removed at teardown."""
    rig.require_podman()
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
    rig.require_podman()
    n = rig.start_node(tmp_path_factory.mktemp("nodes"))
    yield n
    rig.stop_nodes([n])


# The slowest files first, so that with `-n 2 --dist loadfile` the run does not end on one long file while the
# other worker idles (xdist's own order, most tests first, put the parametrized unit files ahead). Seconds
# per file from an idle run (2026-12-06, `scripts/test` prints them); files not listed follow in their
# usual order. Refresh when "time per test file" at the end of a run reorders the top.
SLOW_FIRST = (  # in tests/integration
    "test_deploy", "test_update", "test_env_create", "test_site_local", "test_rebuild",  # 193-122 s
    "test_control_plane", "test_domains", "test_node_provision", "test_site", "test_backup",  # 114-88 s
    "test_import", "test_execution_environment", "test_services", "test_node_hardening",  # 80-76 s
    "test_drift", "test_fleet", "test_cache", "test_worker_kill", "test_wp_site",  # 65-53 s
)


def pytest_collection_modifyitems(items) -> None:
    rank = {f"tests/integration/{name}.py": i for i, name in enumerate(SLOW_FIRST)}
    # A stable sort: the files not listed keep their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# Where the suite's time goes, per test file (setup + call + teardown, fixtures included): printed at
# the end of every run, so CI logs show which file grew.
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FILE_SECONDS:
        return
    terminalreporter.section("time per test file")
    ranked = sorted(_FILE_SECONDS.items(), key=lambda kv: kv[1], reverse=True)
    for path, seconds in ranked[:25]:
        terminalreporter.write_line(f"{seconds:8.1f}s  {path}")
    terminalreporter.write_line(f"{sum(_FILE_SECONDS.values()):8.1f}s  total over {len(ranked)} files")
