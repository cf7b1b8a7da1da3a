"""scripts/demo on this host (single-server mode): the README main job serves its site, and a second run
changes nothing. It installs nginx, PHP-FPM, MariaDB and Redis on the host (hardening stays off).

This host's PID 1 is not systemd (RIG.md), like containers, WSL and CI sandboxes where people first try a
tool: the demo is the test that services are driven through the host's service manager (service(8)).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.rig.ansible import ROOT, run_playbook

pytestmark = pytest.mark.local_node


def demo(home) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
           "PRESSLUFT_HOME": str(home)}
    env.pop("PRESSLUFT_DB", None)
    return subprocess.run([str(ROOT / "scripts" / "demo")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1800)


FENCING_DIR = Path("/var/lib/pressluft/fencing")


def remove_site_left_on_host(site: str, tmp_path: Path) -> None:
    """Delete `site` from this host through the collection's own site_delete playbook, as the
    incarnation the node remembers (the next token of its record), so the host forgets it.

    This host outlives test runs (CI runs on the session's machine): a demo site left by an earlier run
    belongs to another control plane's data directory, and the node refuses it to a new one.
    """
    record_file = FENCING_DIR / site
    if not record_file.is_file():
        return
    record = json.loads(record_file.read_text())
    if record.get("retired"):
        return
    # The machine may have been restored from a snapshot: files of the last run, none of its processes.
    # site_delete needs MariaDB and Redis; their init scripts start them past a stale pidfile.
    for service in ("mariadb", "redis-server"):
        if Path("/etc/init.d", service).exists():
            subprocess.run(["service", service, "start"], capture_output=True, check=False, timeout=120)
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    extravars = {"pressluft_target": "local", "pressluft_site": site, "pressluft_env": "production",
                 "pressluft_php_version": "8.2", "pressluft_fencing_token": int(record["token"]) + 1,
                 "pressluft_fencing_incarnation": record["incarnation"],
                 "pressluft_fencing_run": "testcleanup"}
    result = run_playbook("site_delete.yml", {"all": {"hosts": {"local": local}}}, tmp_path, extravars)
    assert result.rc == 0, result.explain()


@pytest.fixture
def no_demo_site(tmp_path_factory):
    """The demo's site is absent from this host before the test and after it."""
    remove_site_left_on_host("demo", tmp_path_factory.mktemp("cleanup"))
    yield
    remove_site_left_on_host("demo", tmp_path_factory.mktemp("cleanup"))


def test_demo_serves_the_site_and_is_idempotent(tmp_path, no_demo_site):
    if os.geteuid() != 0:
        pytest.skip("scripts/demo provisions this host: run as root")
    first = demo(tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "Site demo is live: http://demo.localhost/  (HTTP 200" in first.stdout, first.stdout
    assert "site_create: job" in first.stderr, "the site is created through the control plane's queue"
    req = urllib.request.Request("http://127.0.0.1/", headers={"Host": "demo.localhost"})
    with urllib.request.urlopen(req, timeout=15) as resp:
        assert resp.status == 200
        assert "<title>Pressluft demo" in resp.read().decode()
    second = demo(tmp_path)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert re.search(r"^changed tasks in this run: 0$", second.stdout, re.M), second.stdout
    assert "site demo exists" in second.stderr


def _pid1_is_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def test_reload_marker_reloads_through_this_hosts_service_manager(tmp_path):
    """The module that reloads nginx and PHP-FPM for site jobs uses service(8) here, not systemctl."""
    if os.geteuid() != 0:
        pytest.skip("reloads a service of this host: run as root")
    if _pid1_is_systemd():
        pytest.skip("PID 1 is systemd here; the systemctl path runs on every podman node test")
    pid_file = Path("/run/nginx.pid")
    if not pid_file.is_file():
        pytest.skip("nginx does not run on this host: the demo test above installs and starts it")
    master = pid_file.read_text().strip()
    watched = tmp_path / "watched"
    watched.mkdir()
    task = {"pressluft.wordpress.reload_marker": {
        "watch": {"nginx": [str(watched)]}, "reload": ["nginx"], "validate": {"nginx": ["nginx", "-t", "-q"]},
        "marker_dir": str(tmp_path / "markers")}, "register": "out"}
    playbook = tmp_path / "reload.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = {"all": {"hosts": {"localhost": local}}}
    result = run_playbook(playbook, inventory, tmp_path)
    assert result.rc == 0, result.explain()
    out = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert out["reloaded"] == ["nginx"] and out["service_manager"] == "service", out
    # A reload, not a restart: the same master process re-read its configuration.
    assert pid_file.read_text().strip() == master
    assert (tmp_path / "markers" / "nginx.reloaded").is_file()
