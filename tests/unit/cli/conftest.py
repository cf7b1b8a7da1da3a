"""test_cli.py's control-plane fixtures for the other CLI test files; the fuzz tests' input count.

CLI tests run offline: sites get a WordPress core archive skeleton through PRESSLUFT_WORDPRESS (the
environment default of `site create --wordpress`); test_cli_wordpress.py checks the other sources.
"""

import time

import pytest

from tests.rig.wordpress import skeleton_archive
from tests.unit.cli.test_cli import active_node, env, upgraded  # noqa: F401

# test_cli_fuzz.py counts the inputs it ran; the count and the time are printed after the run.
FUZZ = {"inputs": 0, "started": 0.0}


@pytest.fixture(scope="session")
def wordpress_file(tmp_path_factory):
    return skeleton_archive(tmp_path_factory.mktemp("wordpress") / "wordpress-6.1.9.tar.gz")


@pytest.fixture(autouse=True)
def _offline_wordpress(wordpress_file, monkeypatch):
    monkeypatch.setenv("PRESSLUFT_WORDPRESS", str(wordpress_file))


def pytest_sessionstart(session) -> None:
    FUZZ["started"] = time.monotonic()


def pytest_terminal_summary(terminalreporter) -> None:
    if FUZZ["inputs"]:
        took = time.monotonic() - FUZZ["started"]
        terminalreporter.write_line(f"fuzz: {FUZZ['inputs']} generated inputs in {took:.0f} s")
