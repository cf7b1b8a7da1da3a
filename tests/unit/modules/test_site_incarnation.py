"""site_incarnation and site_incarnation_info: main() in process against a fencing dir under tmp_path."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fencing
from ansible_collections.pressluft.wordpress.plugins.modules import site_incarnation, site_incarnation_info

from tests.rig.ansible import run_module


def _end_module_process():
    """What the end of a module process does: close the descriptors, dropping their locks."""
    for fd in _fencing._HELD.values():
        os.close(fd)
    _fencing._HELD.clear()


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    _end_module_process()


def test_retire_then_read(tmp_path, capsys):
    d = str(tmp_path / "fencing")
    info = run_module(site_incarnation_info, capsys, tmp_path, {"site": "shop", "fencing_dir": d})
    assert info == {"changed": False, "record": None, "invocation": info["invocation"]}
    args = {
        "site": "shop",
        "fencing_dir": d,
        "fencing_token": 3,
        "fencing_incarnation": "abc",
        "fencing_run": "r",
    }
    done = run_module(site_incarnation, capsys, tmp_path, {**args, "state": "retired"})
    assert (done["changed"], done["record"]) == (True, None)
    again = run_module(site_incarnation, capsys, tmp_path, {**args, "state": "retired"})
    assert again["changed"] is False
    info = run_module(site_incarnation_info, capsys, tmp_path, {"site": "shop", "fencing_dir": d})
    assert info["record"] == {"token": 3, "incarnation": "abc", "run": "r", "retired": True}


def test_retire_needs_a_token_and_checks_it(tmp_path, capsys):
    d = str(tmp_path / "fencing")
    failed = run_module(
        site_incarnation, capsys, tmp_path, {"site": "shop", "fencing_dir": d, "state": "retired"}
    )
    assert failed["failed"] and "fencing_token" in failed["msg"]
    base = {"site": "shop", "fencing_dir": d, "fencing_incarnation": "abc"}
    run_module(site_incarnation, capsys, tmp_path, {**base, "fencing_token": 5})
    _end_module_process()
    stale = run_module(site_incarnation, capsys, tmp_path, {**base, "fencing_token": 4, "state": "retired"})
    assert stale["failed"] and stale["stale_fencing_token"] is True
    info = run_module(site_incarnation_info, capsys, tmp_path, {"site": "shop", "fencing_dir": d})
    assert info["record"]["retired"] is False


def test_info_refuses_a_bad_site_name(tmp_path, capsys):
    bad = run_module(
        site_incarnation_info, capsys, tmp_path, {"site": "../etc", "fencing_dir": str(tmp_path)}
    )
    assert bad["failed"] and "invalid site name" in bad["msg"]
