"""release_build: main() in process on source trees under tmp_path (root: it chowns to root)."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import release_build

from tests.rig.ansible import run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="release_build chowns to root: run as root")


@pytest.fixture
def env(tmp_path):
    shared = tmp_path / "shared"
    (shared / "uploads").mkdir(parents=True)
    (shared / "wp-config.php").write_text("<?php\n")
    os.chown(shared / "uploads", 1000, 1000)
    releases = tmp_path / "releases"
    releases.mkdir()
    return tmp_path


def source(build, top="", files=None):
    files = {"wp-load.php": "<?php\n", "wp-admin/run.sh": "#!/bin/sh\n", **(files or {})}
    for rel, text in files.items():
        path = build / top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (build / top / "wp-admin" / "run.sh").chmod(0o700)
    os.chown(build / top / "wp-load.php", 1000, 1000)
    return build


def run(capsys, env, build, **extra):
    args = {"build": str(build), "dest": str(env / "releases" / "r1"),
            "wp_config": str(env / "shared" / "wp-config.php"), "uploads": str(env / "shared" / "uploads"),
            **extra}
    return run_module(release_build, capsys, env, args)


@pytest.mark.parametrize("top", ["", "wordpress"])
def test_the_tree_becomes_a_root_owned_read_only_release_with_the_shared_links(capsys, env, top):
    build = source(env / "releases" / ".build-r1", top, {".git/HEAD": "ref\n"})
    archive = env / "release.tar.gz"
    archive.write_bytes(b"x")
    out = run(capsys, env, build, remove=[str(archive)])
    rel = env / "releases" / "r1"
    assert (out["changed"], out["tree"]) == (True, top or ".")
    assert not build.exists() and not archive.exists() and not (rel / ".git").exists()
    assert os.readlink(rel / "wp-config.php") == str(env / "shared" / "wp-config.php")
    assert os.readlink(rel / "wp-content" / "uploads") == str(env / "shared" / "uploads")
    modes = {p.relative_to(rel).as_posix(): (stat.S_IMODE(p.lstat().st_mode), p.lstat().st_uid)
             for p in [rel, *rel.rglob("*")] if not p.is_symlink()}
    assert modes == {".": (0o755, 0), "wp-load.php": (0o644, 0), "wp-admin": (0o755, 0),
                     "wp-admin/run.sh": (0o755, 0), "wp-content": (0o755, 0)}
    # The shared files behind the links are left alone.
    assert (env / "shared" / "uploads").stat().st_uid == 1000
    again = run(capsys, env, source(env / "releases" / ".build-r1"))
    assert again == {"changed": False, "invocation": again["invocation"]}


@pytest.mark.parametrize("layout", ["two top directories", "no wp-load.php", "no build"])
def test_a_source_without_a_wordpress_tree_fails_and_changes_nothing(capsys, env, layout):
    build = env / "releases" / ".build-r1"
    if layout == "two top directories":
        source(build, "a")
        source(build, "b")
    elif layout == "no wp-load.php":
        (build / "wordpress").mkdir(parents=True)
    out = run(capsys, env, build)
    assert out["failed"] and "no WordPress tree (wp-load.php)" in out["msg"]
    assert not (env / "releases" / "r1").exists()


def test_uploads_in_the_source_and_a_linked_wp_content_are_refused(capsys, env):
    build = source(env / "releases" / ".build-r1", "", {"wp-content/uploads/2024/a.jpg": "jpeg"})
    out = run(capsys, env, build)
    assert out["failed"] and "uploads are data" in out["msg"]
    assert not (env / "releases" / "r1").exists()
    linked = source(env / "releases" / ".build-r1b")
    (linked / "wp-content").symlink_to("/etc")
    out = run(capsys, env, linked)
    assert out["failed"] and "wp-content in the source is a symbolic link" in out["msg"]
    assert not (env / "releases" / "r1").exists() and not os.path.lexists("/etc/uploads")
