"""test_cli.py's control-plane fixtures for the other CLI test files.

CLI tests run offline: sites get a WordPress core archive skeleton through PRESSLUFT_WORDPRESS (the
environment default of `site create --wordpress`); test_cli_wordpress.py checks the other sources.
"""

import pytest

from tests.rig.wordpress import skeleton_archive
from tests.unit.cli.test_cli import active_node, env, upgraded  # noqa: F401


@pytest.fixture(scope="session")
def wordpress_file(tmp_path_factory):
    return skeleton_archive(tmp_path_factory.mktemp("wordpress") / "wordpress-6.1.9.tar.gz")


@pytest.fixture(autouse=True)
def _offline_wordpress(wordpress_file, monkeypatch):
    monkeypatch.setenv("PRESSLUFT_WORDPRESS", str(wordpress_file))
