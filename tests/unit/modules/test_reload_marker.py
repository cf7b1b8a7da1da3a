"""pressluft.wordpress.reload_marker run in process: which services are pending, marks, refused input.

The reloads themselves (the service manager, the wait for a socket) run on real nodes in
tests/integration/test_site.py and test_node_provision.py; here what decides them.
"""

from __future__ import annotations

import os
import time

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import reload_marker

from tests.rig.ansible import run_module


@pytest.fixture
def tree(tmp_path):
    conf = tmp_path / "sites"
    conf.mkdir()
    (conf / "a.conf").write_text("a\n")
    return tmp_path


def run(capsys, tree, **args):
    return run_module(reload_marker, capsys, tree, {"marker_dir": str(tree / "markers"), **args})


def age(path, seconds):
    """Make path look modified `seconds` ago (negative: in the future)."""
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_unmarked_services_are_pending_until_marked(capsys, tree):
    watch = {"nginx": [str(tree / "sites")], "php8.2-fpm": [str(tree / "nope")]}
    out = run(capsys, tree, watch=watch)
    # No marker yet: pending, even when every watched path is missing.
    assert out["pending"] == ["nginx", "php8.2-fpm"] and out["reloaded"] == [] and out["changed"] is False
    assert run(capsys, tree, mark=["nginx", "php8.2-fpm"])["changed"] is True
    assert (tree / "markers" / "nginx.reloaded").exists()
    age(tree / "sites", 60)
    age(tree / "sites" / "a.conf", 60)
    assert run(capsys, tree, watch=watch)["pending"] == []


@pytest.mark.parametrize("change", ["edit", "add", "remove"])
def test_a_change_after_the_mark_is_pending(capsys, tree, change):
    watch = {"nginx": [str(tree / "sites")]}
    age(tree / "sites" / "a.conf", 60)
    age(tree / "sites", 60)
    run(capsys, tree, mark=["nginx"])
    age(tree / "markers" / "nginx.reloaded", 30)
    assert run(capsys, tree, watch=watch)["pending"] == []
    if change == "edit":
        (tree / "sites" / "a.conf").write_text("b\n")  # a file directly inside a watched directory
    elif change == "add":
        (tree / "sites" / "b.conf").write_text("b\n")  # the directory's mtime changes
    else:
        (tree / "sites" / "a.conf").unlink()
    assert run(capsys, tree, watch=watch)["pending"] == ["nginx"]


def test_a_single_path_may_be_a_string(capsys, tree):
    run(capsys, tree, mark=["nginx"])
    age(tree / "markers" / "nginx.reloaded", 30)
    age(tree / "sites" / "a.conf", -30)  # newer than the mark
    assert run(capsys, tree, watch={"nginx": str(tree / "sites" / "a.conf")})["pending"] == ["nginx"]


def test_check_mode_marks_nothing(capsys, tree):
    out = run(capsys, tree, mark=["nginx"], _ansible_check_mode=True)
    assert out["changed"] is True and not (tree / "markers").exists()


def test_a_failed_validation_reloads_nothing(capsys, tree):
    watch = {"nginx": [str(tree / "sites")], "php8.2-fpm": [str(tree / "sites")]}
    out = run(capsys, tree, watch=watch, reload=["php8.2-fpm", "nginx"],
              validate={"nginx": ["sh", "-c", "echo 'emerg: bad directive' >&2; exit 1"]})
    assert out.get("failed") is True and "nothing reloaded" in out["msg"] and "bad directive" in out["msg"]
    assert out["reloaded"] == [] and not (tree / "markers").exists()


def test_check_mode_reports_the_reloads_without_doing_them(capsys, tree):
    watch = {"nginx": [str(tree / "sites")], "redis": [str(tree / "sites")]}
    out = run(capsys, tree, watch=watch, reload=["nginx"], _ansible_check_mode=True,
              validate={"nginx": ["false"]})  # validation runs only for real reloads
    assert out["changed"] is True and out["reloaded"] == ["nginx"] and out["pending"] == ["nginx", "redis"]
    assert not (tree / "markers").exists()


@pytest.mark.parametrize(("args", "message"), [
    ({"mark": ["nginx; reboot"]}, "invalid service name"),
    ({"watch": {"../etc/passwd": []}}, "invalid service name"),
    ({"watch": {"nginx": []}, "reload": ["nginx"], "mark": ["nginx"]}, "mutually exclusive"),
    ({"watch": {"nginx": []}, "reload": ["nginx"], "validate": {"nginx": "nginx -t"}}, "argument list"),
])
def test_bad_input_is_refused(capsys, tree, args, message):
    out = run(capsys, tree, **args)
    assert out.get("failed") is True and message in out["msg"], out
    assert not (tree / "markers").exists()
