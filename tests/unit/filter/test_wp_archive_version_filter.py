"""pressluft.wordpress.wp_archive_version: the version from archives of each layout; unreadable ones fail."""

from __future__ import annotations

import io
import tarfile

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pressluft.wordpress.plugins.filter.wp_archive_version import wp_archive_version


def archive(path, members, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


VERSION_PHP = "<?php\n$wp_db_version = 53496;\n$wp_version = '6.5.2';\n"


@pytest.mark.parametrize("name,mode", [
    ("wordpress/wp-includes/version.php", "w:gz"), ("wp-includes/version.php", "w:bz2"),
    ("./wordpress/wp-includes/version.php", "w"),
])
def test_reads_the_version(tmp_path, name, mode):
    path = archive(tmp_path / "wp.tar", {"wordpress/index.php": "<?php", name: VERSION_PHP}, mode)
    assert wp_archive_version(str(path)) == "6.5.2"


def test_archive_without_core_gives_empty_string(tmp_path):
    members = {"wordpress/wp-content/plugins/x/wp-includes/version.php": VERSION_PHP, "readme.txt": "no core"}
    path = archive(tmp_path / "x.tar.gz", members)
    assert wp_archive_version(str(path)) == ""


@pytest.mark.parametrize("content", [None, b"not an archive at all"])
def test_unreadable_archive_fails_with_its_path(tmp_path, content):
    path = tmp_path / "broken.tar.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AnsibleFilterError, match=r"broken\.tar\.gz"):
        wp_archive_version(str(path))
