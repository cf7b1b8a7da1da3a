"""module_utils/_wp_release.py: atomic release directories from real archives, in a real AnsibleModule."""

from __future__ import annotations

import os
import tarfile

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_release import (
    ReleaseError,
    ensure_release,
    release_version,
)


def core_tree(base, version="6.1.9", uploads_file=False):
    """A minimal core tree like a wordpress.org archive's wordpress/ directory."""
    core = base / "wordpress"
    (core / "wp-includes").mkdir(parents=True)
    (core / "wp-content" / "uploads").mkdir(parents=True)
    (core / "wp-load.php").write_text("<?php\n")
    (core / "wp-includes" / "version.php").write_text(f"<?php\n$wp_version = '{version}';\n")
    if uploads_file:
        (core / "wp-content" / "uploads" / "old.jpg").write_text("x")
    return core


def archive(tmp_path, **kw):
    src = tmp_path / "src"
    core = core_tree(src, **kw)
    path = tmp_path / "wordpress.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(core, arcname="wordpress")
    return path


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "env"
    (root / "releases").mkdir(parents=True)
    (root / "shared" / "uploads").mkdir(parents=True)
    names = {"wp_config": str(root / "shared" / "wp-config.php"), "uploads": str(root / "shared" / "uploads")}
    return root, names


def make_release(src, release_dir, version, names):
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
        ensure_release(module, str(src), str(release_dir), version, names)


def test_archive_becomes_a_complete_release(tmp_path, env):
    root, names = env
    release = root / "releases" / "6.1.9"
    make_release(archive(tmp_path), release, "6.1.9", names)
    assert release_version(str(release)) == "6.1.9"
    assert os.readlink(release / "wp-config.php") == names["wp_config"]
    assert os.readlink(release / "wp-content" / "uploads") == names["uploads"]
    assert oct((release / "wp-load.php").stat().st_mode & 0o777) == "0o644"
    assert oct(release.stat().st_mode & 0o777) == "0o755"
    assert sorted(os.listdir(root / "releases")) == ["6.1.9"]


def test_directory_source(tmp_path, env):
    root, names = env
    core = core_tree(tmp_path / "dir")
    make_release(core.parent, root / "releases" / "r1", "6.1.9", names)
    assert release_version(str(root / "releases" / "r1")) == "6.1.9"
    assert (core / "wp-load.php").exists(), "the source directory must stay untouched"


@pytest.mark.parametrize(
    ("kw", "version", "message"),
    [
        ({}, "6.2", "holds WordPress 6.1.9, not 6.2"),
        ({"uploads_file": True}, "6.1.9", "is not empty"),
    ],
)
def test_failures_leave_nothing_behind(tmp_path, env, kw, version, message):
    root, names = env
    with pytest.raises(ReleaseError, match=message):
        make_release(archive(tmp_path, **kw), root / "releases" / "x", version, names)
    assert os.listdir(root / "releases") == []


def test_not_wordpress(tmp_path, env):
    root, names = env
    junk = tmp_path / "junk.tar.gz"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "readme.txt").write_text("x")
    with tarfile.open(junk, "w:gz") as tar:
        tar.add(tmp_path / "a", arcname="a")
    with pytest.raises(ReleaseError, match="no WordPress core"):
        make_release(junk, root / "releases" / "x", "6.1.9", names)
    with pytest.raises(ReleaseError, match="does not exist on the node"):
        make_release(tmp_path / "missing.tar.gz", root / "releases" / "x", "6.1.9", names)
    assert os.listdir(root / "releases") == []


def test_release_version_of_a_non_release(tmp_path):
    assert release_version(str(tmp_path)) is None
