"""The AWX execution environment definition is one ansible-builder accepts: `ansible-builder create`
writes a build context from the rig's base image with the collection's Python and system
dependencies. The image itself is built and run against a node by
tests/integration/test_execution_environment.py (scripts/build-ee)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ansible_builder_creates_the_context(tmp_path):
    builder = Path(sys.executable).parent / "ansible-builder"
    argv = [str(builder), "create", "-f", "execution-environment.yml", "-c", str(tmp_path / "ctx")]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert "localhost/pressluft-node:current" in containerfile
    assert "pressluft-wordpress-" in containerfile and "pressluft-*.whl" in containerfile
    python = (tmp_path / "ctx" / "_build" / "requirements.txt").read_text()
    assert "SQLAlchemy" in python and "psycopg" in python
    assert "openssh-client" in (tmp_path / "ctx" / "_build" / "bindep.txt").read_text()


def test_the_collection_declares_the_same_dependencies():
    import yaml

    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    assert all((ROOT / path).is_file() for path in meta["dependencies"].values())
