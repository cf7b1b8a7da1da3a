"""scripts/demo on this host (single-server mode): the README main job serves its site, and a second run
changes nothing. It installs nginx, PHP-FPM, MariaDB and Redis on the host (hardening stays off)."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request

import pytest

from tests.rig.ansible import ROOT

pytestmark = pytest.mark.local_node


def demo(home) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
           "PRESSLUFT_HOME": str(home)}
    env.pop("PRESSLUFT_DB", None)
    return subprocess.run([str(ROOT / "scripts" / "demo")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1800)


def test_demo_serves_the_site_and_is_idempotent(tmp_path):
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
