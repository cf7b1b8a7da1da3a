"""The AWX execution environment image (scripts/build-ee, docs/awx.md) runs the collection against a
provisioned podman node. Inside the image, with only PRESSLUFT_DB and the data directory given (as the
AWX credential type injects them): the inventory source awx/inventory/nodes.pressluft.yml lists the
control plane's node, and `pressluft worker --once` of the image's wheel runs site_create on the node
through the image's ansible-runner, collection and inventory plugin; the site answers over HTTP.
Then the Semaphore reference layout (semaphore/, docs/semaphore.md) runs a real task on the same node
with the commands Semaphore runs: the collection installed from collections/requirements.yml (the
tarball the image was built from), ansible-playbook with the file inventory of the plugin config.

The fixture builds the image or finds it by the hash of its inputs (a code change rebuilds only the last
layers; a cold build, when the dependencies changed, takes minutes: benchmarks/README.md). The
container uses the host's network to reach the node's SSH port published on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.rig import nodes as rig
from tests.rig.control_plane import add_node, http_get, js
from tests.rig.nodes import SSH_USER
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = "/usr/share/ansible/collections"  # where the image's collection is installed


@pytest.fixture(scope="module")
def ee_image() -> str:
    rig.require_podman()
    r = subprocess.run([str(ROOT / "scripts" / "build-ee")], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.split()[-1]


@pytest.fixture(scope="module")
def stack(control_plane, provisioned_node, ee_image):
    add_node(provisioned_node)
    return control_plane, provisioned_node, ee_image


def in_ee(image: str, mounts: list[Path], *argv: str) -> subprocess.CompletedProcess:
    """argv inside the image, the control plane's database and data directory at their host paths."""
    args = ["podman", "run", "--rm", "--network", "host", "--user", "0",
            "-e", f"PRESSLUFT_DB={os.environ['PRESSLUFT_DB']}",
            "-e", f"PRESSLUFT_HOME={os.environ['PRESSLUFT_HOME']}",
            "-e", f"PRESSLUFT_COLLECTIONS_PATH={COLLECTIONS}"]
    for path in mounts:
        args += ["-v", f"{path}:{path}"]
    return subprocess.run([*args, image, *argv], capture_output=True, text=True, timeout=600, check=False)


def test_the_image_lists_the_node_and_runs_site_create_on_it(stack):
    home, node, image = stack
    mounts = [home, node.key_file.parent, ROOT / "awx" / "inventory"]

    # The AWX inventory source: the plugin in the image reads the database it is given.
    r = in_ee(image, mounts, "ansible-inventory", "-i", str(ROOT / "awx/inventory/nodes.pressluft.yml"),
              "--list")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["_meta"]["hostvars"][node.name]["ansible_port"] == node.ssh_port

    archive = wordpress_archive()
    js("site", "create", "shop", "--node", node.name, "--domain", "shop.example.test",
       "--wordpress", str(archive))
    r = in_ee(image, [*mounts, archive.parent], "pressluft", "worker", "--once", "--json")
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    (job,) = json.loads(r.stdout)["jobs"]
    shown = js("jobs", "show", str(job["id"]))
    failed = [e["data"] for e in shown["events"] if e["data"].get("status") in ("failed", "unreachable")]
    assert job["state"] == "succeeded", (job, failed)
    assert job["type"] == "site_create"
    # The image's playbook returned the environment with set_stats, as an AWX workflow chains on it.
    assert "pressluft_site_created" in shown["events"][-1]["data"].get("returned", [])
    status, body = http_get(node, "shop.example.test")
    assert status == 200 and "<html" in body.lower(), (status, body[:300])


def test_semaphore_runs_health_check_on_the_node(stack, tmp_path):
    _home, node, _image = stack
    # SSH's control socket lives under HOME by default: a pytest-xdist tmp_path made its path longer than a
    # Unix socket may be (108 bytes), and every run was UNREACHABLE in CI while it passed without xdist.
    control = Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
           "ANSIBLE_HOST_KEY_CHECKING": "False", "HOME": str(tmp_path),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
           "ANSIBLE_SHOW_CUSTOM_STATS": "True"}  # what the playbook returned (set_stats), printed at the end
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "semaphore", repo)
    req = repo / "collections" / "requirements.yml"
    data = yaml.safe_load(req.read_text())
    (tarball,) = (ROOT / "build" / "ee" / "src" / "dist").glob("pressluft-wordpress-*.tar.gz")
    data["collections"][0]["name"] = str(tarball)
    req.write_text(yaml.safe_dump(data))

    def sh(*argv: str) -> subprocess.CompletedProcess:
        r = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, (argv, r.stdout[-3000:], r.stderr[-2000:])
        return r

    sh("ansible-galaxy", "collection", "install", "-r", "collections/requirements.yml",
       "-p", str(tmp_path / "collections"))
    extra = json.dumps({"pressluft_target": node.name, "pressluft_site": "shop",
                        "pressluft_env": "production", "pressluft_domains": ["shop.example.test"]})
    try:
        out = sh("ansible-playbook", "playbooks/health_check.yml", "-i", "inventory/nodes.pressluft.yml",
                 "--extra-vars", extra, "--private-key", str(node.key_file), "--user", SSH_USER).stdout
    finally:
        shutil.rmtree(control, ignore_errors=True)
    recap = out[out.index("PLAY RECAP"):]
    assert f"{node.name}" in recap and "failed=0" in recap and "unreachable=0" in recap, recap
    # health_check reports an unhealthy site without failing the run: what it returned says which, and
    # which live release it checked.
    health = json.loads(out[out.index("RUN:", out.index("CUSTOM STATS")) + 4:])["pressluft_health"]
    assert health["healthy"] is True and health["release"], health
