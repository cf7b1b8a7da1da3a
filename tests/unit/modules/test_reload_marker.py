"""pressluft.wordpress.reload_marker run in process: which services are pending, marks, refused input.

The reloads themselves (the service manager, the wait for a socket) run on real nodes in
tests/integration/test_site.py and test_node_provision.py; here what decides them.
"""

from __future__ import annotations

import os
import time

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fpm
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


@pytest.fixture
def fpm(tmp_path, monkeypatch):
    """A PHP-FPM configuration in tmp_path (php-fpm -t runs on it for real) whose rlimit_files leaves room
    for three pools; `fpm(n)` writes n pool files."""
    (tmp_path / "pool.d").mkdir()
    conf = tmp_path / "php-fpm.conf"
    conf.write_text(f"[global]\npid = {tmp_path}/fpm.pid\nerror_log = {tmp_path}/fpm.log\n"
                    f"rlimit_files = {_fpm.RESERVE + 3}\ninclude = {tmp_path}/pool.d/*.conf\n")
    monkeypatch.setattr(_fpm, "CONF", str(conf))
    monkeypatch.setattr(_fpm, "POOLS", str(tmp_path / "pool.d" / "*.conf"))
    monkeypatch.setattr(_fpm, "PID_FILE", str(tmp_path / "fpm.pid"))

    def pools(n: int) -> None:
        for i in range(n):
            (tmp_path / "pool.d" / f"p{i}.conf").write_text(
                f"[p{i}]\nuser = www-data\ngroup = www-data\nlisten = {tmp_path}/p{i}.sock\n"
                "pm = ondemand\npm.max_children = 1\n")
    return pools


def test_fpm_budget_counts_pools_against_rlimit_files(fpm, tmp_path):
    fpm(3)
    assert _fpm.pool_count("8.2") == 3 and _fpm.nofile_limit("8.2") == _fpm.RESERVE + 3
    assert _fpm.budget_problem("8.2") is None
    problem = _fpm.budget_problem("8.2", adding=1)
    assert f"would hold 4 pools, but its open-files limit is {_fpm.RESERVE + 3}" in problem
    assert _fpm.error_log("8.2") == f"{tmp_path}/fpm.log"


def test_fpm_budget_without_rlimit_files_uses_the_running_masters_limit(fpm, tmp_path):
    conf = tmp_path / "php-fpm.conf"
    conf.write_text("\n".join(line for line in conf.read_text().splitlines() if "rlimit" not in line))
    assert _fpm.nofile_limit("8.2") is None, "no master running: unknown, nothing refused"
    (tmp_path / "fpm.pid").write_text(f"{os.getpid()}\n")
    import resource
    assert _fpm.nofile_limit("8.2") == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_an_fpm_reload_past_the_open_files_limit_is_refused(capsys, tree, fpm, tmp_path):
    """php-fpm -t passes this configuration; the reload would have stopped every pool (issue 21)."""
    fpm(4)
    # A service no host has: without the check, the reload fails here instead of touching a real FPM.
    service = "pressluft-test-fpm"
    out = run(capsys, tree, watch={service: [str(tmp_path / "pool.d")]}, reload=[service],
              fpm={service: "8.2"})
    assert out.get("failed") is True and "nothing reloaded" in out["msg"], out
    assert "would hold 4 pools" in out["msg"] and out["reloaded"] == [], out
    assert not (tree / "markers").exists()


@pytest.mark.parametrize("version", ["8", "8.2; id", 8.2])
def test_fpm_needs_a_php_version(capsys, tree, version):
    out = run(capsys, tree, watch={"php8.2-fpm": []}, fpm={"php8.2-fpm": version})
    assert out.get("failed") is True and "needs a PHP version" in out["msg"], out


def test_validate_commands_run_with_the_soft_open_files_limit_raised(capsys, tree):
    """nginx -t opens two log files per environment: a session's soft 1,024 failed it at ~510."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A session's 1,024, or just above what this process holds open: an xdist worker that ran integration
    # files first may hold more than 1,024 descriptors, and a lower limit would fail this process itself.
    low = max(1024, len(os.listdir("/proc/self/fd")) + 256)
    if low >= hard:
        pytest.skip(f"the hard open-files limit {hard} leaves no lower soft limit to raise from")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        out = run(capsys, tree, watch={"nginx": [str(tree / "sites")]}, reload=["nginx"],
                  validate={"nginx": ["sh", "-c", 'echo "limits $(ulimit -n) $(ulimit -Hn)" >&2; exit 1']})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert f"limits {hard} {hard}" in out["msg"], out
