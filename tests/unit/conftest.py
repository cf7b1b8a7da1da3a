"""Unit tests run offline: `site create` gets a WordPress core archive skeleton through
PRESSLUFT_WORDPRESS (the environment default of `--wordpress`); test_cli_wordpress.py checks the
other sources. This checkout is importable as ansible_collections.pressluft.wordpress, so modules, filters
and module_utils run in process."""

import sys

import pytest

from tests.rig.ansible import collections_path
from tests.rig.wordpress import skeleton_archive

if str(collections_path()) not in sys.path:
    sys.path.insert(0, str(collections_path()))


@pytest.fixture(scope="session")
def wordpress_file(tmp_path_factory):
    return skeleton_archive(tmp_path_factory.mktemp("wordpress") / "wordpress-6.1.9.tar.gz")


@pytest.fixture(autouse=True)
def _offline_wordpress(wordpress_file, monkeypatch):
    monkeypatch.setenv("PRESSLUFT_WORDPRESS", str(wordpress_file))
