"""The Semaphore reference layout (semaphore/, docs/semaphore.md), checked with the commands Semaphore
runs for a task: install collections/requirements.yml, then ansible-playbook with the file inventory
(the dynamic inventory plugin over the control-plane database, PRESSLUFT_DB from the environment) and
the variable group's extra vars as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner
from pressluft_cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def sh(*argv: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, (argv, r.stdout[-2000:], r.stderr[-2000:])
    return r


def test_semaphore_runs_the_collection_playbooks_against_the_control_plane(tmp_path, monkeypatch):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"), "HOME": str(tmp_path)}
    dist = tmp_path / "dist"
    sh(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(ROOT),
       cwd=ROOT, env=env)
    tarball = next(dist.glob("pressluft-wordpress-*.tar.gz"))
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "semaphore", repo)
    req = repo / "collections" / "requirements.yml"
    data = yaml.safe_load(req.read_text())
    data["collections"][0]["name"] = str(tarball)
    req.write_text(yaml.safe_dump(data))

    db = tmp_path / "cp.db"
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRESSLUFT_DB", f"sqlite:///{db}")
    for args in (["db", "upgrade"], ["node", "add", "web1", "--host", "192.0.2.10", "--user", "deploy"]):
        assert CliRunner().invoke(cli, args).exit_code == 0
    env["PRESSLUFT_DB"] = f"sqlite:///{db}"  # the Semaphore environment's secret variable

    # 1. Semaphore installs the project's collections.
    sh(str(BIN / "ansible-galaxy"), "collection", "install", "-r", "collections/requirements.yml",
       "-p", str(tmp_path / "collections"), cwd=repo, env=env)
    # 2. The file inventory reads the control-plane database.
    inv = json.loads(sh(str(BIN / "ansible-inventory"), "-i", "inventory/nodes.pressluft.yml", "--list",
                        cwd=repo, env=env).stdout)
    assert "192.0.2.10" in json.dumps(inv["_meta"]["hostvars"]["web1"]["ansible_host"])  # marked unsafe
    # 3. A task template: ansible-playbook with the variable group's extra vars as JSON.
    extra = json.dumps({"pressluft_target": "web1", "pressluft_site": "shop"})
    for pb in sorted((repo / "playbooks").glob("*.yml")):
        sh(str(BIN / "ansible-playbook"), f"playbooks/{pb.name}", "-i", "inventory/nodes.pressluft.yml",
           "--extra-vars", extra, "--syntax-check", cwd=repo, env=env)
    inventory = "inventory/nodes.pressluft.yml"
    listed = sh(str(BIN / "ansible-playbook"), "playbooks/site_create.yml", "-i", inventory,
                "--extra-vars", extra, "--list-hosts", cwd=repo, env=env)
    assert "web1" in listed.stdout
