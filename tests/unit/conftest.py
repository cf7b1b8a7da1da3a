"""Unit tests run offline: `site create` gets a WordPress core archive skeleton through
PRESSLUFT_WORDPRESS (the environment default of `--wordpress`); test_cli_wordpress.py checks the
other sources."""

import pytest

from tests.rig.wordpress import skeleton_archive


@pytest.fixture(scope="session")
def wordpress_file(tmp_path_factory):
    return skeleton_archive(tmp_path_factory.mktemp("wordpress") / "wordpress-6.1.9.tar.gz")


@pytest.fixture(autouse=True)
def _offline_wordpress(wordpress_file, monkeypatch):
    monkeypatch.setenv("PRESSLUFT_WORDPRESS", str(wordpress_file))
