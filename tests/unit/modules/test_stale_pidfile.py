"""stale_pidfile: main() in process against pidfiles under tmp_path naming real processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import stale_pidfile

from tests.rig.ansible import run_module


@pytest.fixture
def sleeper():
    """A live process that is not the daemon: what a reused process ID points at."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def run(capsys, tmp_path, pidfile, executable, check=False):
    args = {"path": str(pidfile), "executable": executable}
    if check:
        args["_ansible_check_mode"] = True
    return run_module(stale_pidfile, capsys, tmp_path, args)


def test_a_pidfile_naming_another_program_is_removed(capsys, tmp_path, sleeper):
    pidfile = tmp_path / "redis.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    predicted = run(capsys, tmp_path, pidfile, "/usr/bin/redis-server", check=True)
    assert (predicted["changed"], predicted["running"], pidfile.exists()) == (True, False, True)
    out = run(capsys, tmp_path, pidfile, "/usr/bin/redis-server")
    assert (out["changed"], out["pid"], out["running"]) == (True, sleeper.pid, False)
    assert not pidfile.exists()
    assert sleeper.poll() is None, "the process the pidfile named is left alone"


def test_the_live_daemons_pidfile_stays(capsys, tmp_path):
    pidfile = tmp_path / "self.pid"
    pidfile.write_text(str(os.getpid()))
    out = run(capsys, tmp_path, pidfile, sys.executable)
    assert (out["changed"], out["running"], pidfile.exists()) == (False, True, True)


@pytest.mark.parametrize("content", ["", "garbage", "0", "-1"])
def test_a_pidfile_naming_no_process_is_removed(capsys, tmp_path, content):
    pidfile = tmp_path / "nginx.pid"
    pidfile.write_text(content)
    out = run(capsys, tmp_path, pidfile, "/usr/sbin/nginx")
    assert (out["changed"], out["pid"], pidfile.exists()) == (True, None, False)


def test_a_dead_process_and_no_pidfile(capsys, tmp_path):
    proc = subprocess.Popen(["true"])
    proc.wait()
    pidfile = tmp_path / "dead.pid"
    pidfile.write_text(str(proc.pid))
    out = run(capsys, tmp_path, pidfile, "/usr/sbin/nginx")
    assert (out["changed"], out["running"], pidfile.exists()) == (True, False, False)
    again = run(capsys, tmp_path, pidfile, "/usr/sbin/nginx")
    assert (again["changed"], again["pid"]) == (False, None)
