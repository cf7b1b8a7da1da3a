"""module_utils/_fencing.py with a real AnsibleModule, in process."""

from __future__ import annotations

import fcntl
import json
import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fencing


def _release_locks_now():
    """What the end of a module process does: close the descriptors, dropping their locks."""
    for fd in _fencing._HELD.values():
        os.close(fd)
    _fencing._HELD.clear()


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    _release_locks_now()


def run_fence(fencing_dir, token, site="shop", check=False):
    """fence() in a real AnsibleModule; returns ('ok', token) or ('failed', result dict)."""
    args = {"site": site, "fencing_dir": str(fencing_dir), "_ansible_check_mode": check}
    if token is not None:
        args["fencing_token"] = token
    with patch_module_args(args):
        spec = dict(site=dict(type="str", required=True), **_fencing.FENCING_ARGSPEC)
        module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
        try:
            return "ok", _fencing.fence(module, site)
        except SystemExit:
            return "failed", None


def failure(capsys):
    return json.loads(capsys.readouterr().out)


def test_no_token_does_nothing(tmp_path):
    d = tmp_path / "fencing"
    assert run_fence(d, None) == ("ok", None)
    assert not d.exists()


def test_records_and_refuses_stale(tmp_path, capsys):
    d = tmp_path / "fencing"
    assert run_fence(d, 5) == ("ok", 5)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert (d / "shop").read_text() == "5\n"
    assert stat.S_IMODE((d / "shop").stat().st_mode) == 0o600
    _release_locks_now()
    assert run_fence(d, 5) == ("ok", 5)  # the same job may run several tasks
    _release_locks_now()
    assert run_fence(d, 12) == ("ok", 12)
    assert (d / "shop").read_text() == "12\n"
    _release_locks_now()
    capsys.readouterr()
    assert run_fence(d, 11)[0] == "failed"
    result = failure(capsys)
    assert result["failed"] is True
    assert result["stale_fencing_token"] is True
    assert "stale fencing token 11" in result["msg"]
    assert (d / "shop").read_text() == "12\n"


def test_sites_are_independent(tmp_path):
    d = tmp_path / "fencing"
    assert run_fence(d, 9, site="shop") == ("ok", 9)
    assert run_fence(d, 1, site="blog") == ("ok", 1)
    assert (d / "blog").read_text() == "1\n"


def test_check_mode_compares_but_records_nothing(tmp_path, capsys):
    d = tmp_path / "fencing"
    assert run_fence(d, 3, check=True) == ("ok", 3)
    assert not d.exists()
    run_fence(d, 7)
    _release_locks_now()
    assert run_fence(d, 9, check=True) == ("ok", 9)
    assert (d / "shop").read_text() == "7\n"
    capsys.readouterr()
    assert run_fence(d, 6, check=True)[0] == "failed"
    assert failure(capsys)["stale_fencing_token"] is True


def test_lock_is_held_until_the_module_ends(tmp_path):
    d = tmp_path / "fencing"
    run_fence(d, 4)
    fd = os.open(d / "shop", os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A second fence call of the same module process does not deadlock on its own lock.
        assert run_fence(d, 4) == ("ok", 4)
        _release_locks_now()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


@pytest.mark.parametrize(("site", "token", "message"), [("../etc", 1, "invalid site name"),
                                                        ("root", 1, "reserved"),
                                                        ("shop", -1, "must not be negative")])
def test_bad_input_is_refused_without_changes(tmp_path, capsys, site, token, message):
    d = tmp_path / "fencing"
    assert run_fence(d, token, site=site)[0] == "failed"
    assert message in failure(capsys)["msg"]
    assert not d.exists()

