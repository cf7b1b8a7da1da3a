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


def run_fence(fencing_dir, token, site="shop", check=False, incarnation=None, run=None, retire=False):
    """fence() in a real AnsibleModule; returns ('ok', token) or ('failed', None) (result on stdout)."""
    args = {"site": site, "fencing_dir": str(fencing_dir), "_ansible_check_mode": check}
    for key, value in (("fencing_token", token), ("fencing_incarnation", incarnation), ("fencing_run", run)):
        if value is not None:
            args[key] = value
    with patch_module_args(args):
        spec = dict(site=dict(type="str", required=True), **_fencing.FENCING_ARGSPEC)
        module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
        try:
            return "ok", _fencing.fence(module, site, retire=retire)
        except SystemExit:
            return "failed", None


def record(path):
    return _fencing.parse_record(path.read_text())


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
    assert record(d / "shop") == {"token": 5, "incarnation": None, "run": None, "retired": False}
    assert stat.S_IMODE((d / "shop").stat().st_mode) == 0o600
    _release_locks_now()
    assert run_fence(d, 5) == ("ok", 5)  # the same job may run several tasks
    _release_locks_now()
    assert run_fence(d, 12) == ("ok", 12)
    assert record(d / "shop")["token"] == 12
    _release_locks_now()
    capsys.readouterr()
    assert run_fence(d, 11)[0] == "failed"
    result = failure(capsys)
    assert result["failed"] is True
    assert result["stale_fencing_token"] is True
    assert "stale fencing token 11" in result["msg"]
    assert record(d / "shop")["token"] == 12


def test_sites_are_independent(tmp_path):
    d = tmp_path / "fencing"
    assert run_fence(d, 9, site="shop") == ("ok", 9)
    assert run_fence(d, 1, site="blog") == ("ok", 1)
    assert record(d / "blog")["token"] == 1


def test_check_mode_compares_but_records_nothing(tmp_path, capsys):
    d = tmp_path / "fencing"
    assert run_fence(d, 3, check=True) == ("ok", 3)
    assert not d.exists()
    run_fence(d, 7)
    _release_locks_now()
    assert run_fence(d, 9, check=True) == ("ok", 9)
    assert record(d / "shop")["token"] == 7
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



# -- site incarnations (docs/contracts.md, "Fencing") ---------------------------------------------


def refused(capsys, *args, **kw):
    capsys.readouterr()
    assert run_fence(*args, **kw)[0] == "failed"
    _release_locks_now()
    result = failure(capsys)
    assert result["stale_fencing_token"] is True
    return result


def test_a_stale_token_of_the_same_incarnation_is_refused(tmp_path, capsys):
    d = tmp_path / "fencing"
    assert run_fence(d, 5, incarnation="inc1", run="r5") == ("ok", 5)
    _release_locks_now()
    assert run_fence(d, 5, incarnation="inc1", run="r5") == ("ok", 5)  # later tasks of the same run
    _release_locks_now()
    result = refused(capsys, d, 4, incarnation="inc1", run="r4")
    assert "stale fencing token 4 for site shop: token 5 was already applied" in result["msg"]
    assert "pressluft site adopt shop" in result["msg"]
    # An equal token from another run: a control plane restored from an older copy issues it again.
    result = refused(capsys, d, 5, incarnation="inc1", run="other")
    assert "already applied by another run" in result["msg"]
    assert record(d / "shop") == {"token": 5, "incarnation": "inc1", "run": "r5", "retired": False}


def test_a_live_incarnation_refuses_another_one_whatever_its_token(tmp_path, capsys):
    d = tmp_path / "fencing"
    assert run_fence(d, 2, incarnation="cp1", run="a") == ("ok", 2)
    _release_locks_now()
    for token in (1, 2, 1000):
        result = refused(capsys, d, token, incarnation="cp2", run="b")
        assert "site shop on this node is incarnation cp1 (token 2), not incarnation cp2" in result["msg"]
        assert "pressluft site adopt shop" in result["msg"]
        assert result["recorded_fencing_incarnation"] == "cp1"
    result = refused(capsys, d, 3, run="b")  # plain Ansible with a token but no incarnation
    assert "not incarnation (none)" in result["msg"]
    result = refused(capsys, d, 3, incarnation="cp2", check=True)
    assert record(d / "shop")["incarnation"] == "cp1"


def test_a_retired_incarnation_hands_the_name_to_a_new_one(tmp_path, capsys):
    d = tmp_path / "fencing"
    assert run_fence(d, 7, incarnation="old", run="del") == ("ok", 7)
    assert run_fence(d, 7, incarnation="old", run="del", retire=True) == ("ok", 7)  # end of the delete
    _release_locks_now()
    assert record(d / "shop")["retired"] is True
    assert run_fence(d, 1, incarnation="new", run="c", check=True) == ("ok", 1)
    assert run_fence(d, 1, incarnation="new", run="c") == ("ok", 1)
    _release_locks_now()
    assert record(d / "shop") == {"token": 1, "incarnation": "new", "run": "c", "retired": False}
    # A late job of the deleted incarnation stays refused, whatever its token.
    refused(capsys, d, 6, incarnation="old", run="late")
    refused(capsys, d, 8, incarnation="old", run="late")


def test_a_record_from_before_incarnations_is_claimed_by_the_token_rule(tmp_path, capsys):
    d = tmp_path / "fencing"
    d.mkdir(mode=0o700)
    (d / "shop").write_text("4\n")  # what older versions wrote
    refused(capsys, d, 3, incarnation="inc1", run="x")
    assert run_fence(d, 4, incarnation="inc1", run="x") == ("ok", 4)
    _release_locks_now()
    assert record(d / "shop") == {"token": 4, "incarnation": "inc1", "run": "x", "retired": False}


def test_records_are_rewritten_in_place_at_one_size(tmp_path):
    d = tmp_path / "fencing"
    run_fence(d, 123456789, incarnation="i" * 64, run="r" * 64)
    inode = (d / "shop").stat().st_ino
    _release_locks_now()
    run_fence(d, 123456790, incarnation="i" * 64, run="s")
    assert (d / "shop").stat().st_ino == inode
    assert (d / "shop").stat().st_size == _fencing._RECORD_SIZE
    assert record(d / "shop")["run"] == "s"


@pytest.mark.parametrize("raw", ["", "junk", '{"token": "7"}', '{"token": 7, "incarnation": "../x"}',
                                 '{"token": true}'])
def test_unreadable_records_are_no_record(raw):
    assert _fencing.parse_record(raw) is None


@pytest.mark.parametrize(("kw", "message"), [({"incarnation": "a b"}, "fencing_incarnation must be"),
                                             ({"run": "x" * 65}, "fencing_run must be"),
                                             ({"retire": True, "token": None}, "needs fencing_token")])
def test_bad_incarnation_input_is_refused_without_changes(tmp_path, capsys, kw, message):
    d = tmp_path / "fencing"
    token = kw.pop("token", 1)
    assert run_fence(d, token, **kw)[0] == "failed"
    assert message in failure(capsys)["msg"]
    assert not d.exists()
