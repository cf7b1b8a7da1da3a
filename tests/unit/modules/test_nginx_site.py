"""pressluft.wordpress.nginx_site run in process: the server block file, check and diff modes, removal.

The content a role renders is checked by a real nginx in tests/integration/test_site.py; here the module's
own promises: one atomic write only when the content differs, root-owned 0644, nothing in check mode.
"""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fencing
from ansible_collections.pressluft.wordpress.plugins.modules import nginx_site

from tests.rig.ansible import run_module

BLOCK = "server {\n    listen 80;\n    server_name shop.example;\n}\n"


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    for fd in _fencing._HELD.values():
        os.close(fd)
    _fencing._HELD.clear()


@pytest.fixture
def sites(tmp_path):
    path = tmp_path / "pressluft-sites"
    path.mkdir()
    return path


def run(capsys, sites, **args):
    return run_module(nginx_site, capsys, sites.parent, {
        "site": "shop", "sites_dir": str(sites), "fencing_dir": str(sites.parent / "fencing"), **args})


def test_writes_the_block_once_root_owned_0644(capsys, sites):
    path = sites / "shop_production.conf"
    out = run(capsys, sites, content=BLOCK)
    assert out["changed"] is True and out["path"] == str(path)
    assert path.read_text() == BLOCK
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o644 and (os.geteuid() != 0 or (st.st_uid, st.st_gid) == (0, 0))
    inode = st.st_ino
    assert run(capsys, sites, content=BLOCK)["changed"] is False
    assert path.stat().st_ino == inode  # not rewritten
    changed = run(capsys, sites, content=BLOCK.replace("80", "8080"))
    assert changed["changed"] is True and "8080" in path.read_text()
    assert [p.name for p in sites.iterdir()] == ["shop_production.conf"]  # no temporary file left


def test_environment_names_the_file(capsys, sites):
    out = run(capsys, sites, env="staging", content=BLOCK)
    assert out["path"] == str(sites / "shop_staging.conf") and (sites / "shop_staging.conf").exists()


def test_check_mode_writes_nothing_and_diff_shows_the_change(capsys, sites):
    out = run(capsys, sites, content=BLOCK, _ansible_check_mode=True, _ansible_diff=True)
    assert out["changed"] is True and not list(sites.iterdir())
    assert out["diff"]["before"] == "" and out["diff"]["after"] == BLOCK
    run(capsys, sites, content=BLOCK)
    out = run(capsys, sites, content=BLOCK + "# more\n", _ansible_diff=True)
    assert out["diff"]["before"] == BLOCK and out["diff"]["after"] == BLOCK + "# more\n"


def test_absent_removes_the_block(capsys, sites):
    run(capsys, sites, content=BLOCK)
    assert run(capsys, sites, state="absent", _ansible_check_mode=True)["changed"] is True
    assert (sites / "shop_production.conf").exists()
    out = run(capsys, sites, state="absent", _ansible_diff=True)
    assert out["changed"] is True and out["diff"]["after"] == "" and not list(sites.iterdir())
    assert run(capsys, sites, state="absent")["changed"] is False


@pytest.mark.parametrize(("args", "message"), [
    ({"content": BLOCK, "site": "../etc"}, "invalid site name"),
    ({"content": BLOCK, "env": "prod/x"}, "invalid environment name"),
    ({}, "state is present but all of the following are missing: content"),
])
def test_bad_input_is_refused(capsys, sites, args, message):
    out = run(capsys, sites, **args)
    assert out.get("failed") is True and message in out["msg"], out
    assert not list(sites.iterdir())


def test_an_unprovisioned_node_is_refused(capsys, tmp_path):
    out = run(capsys, tmp_path / "missing", content=BLOCK)
    assert out.get("failed") is True and "provision the node first" in out["msg"], out
    assert not (tmp_path / "missing").exists()
