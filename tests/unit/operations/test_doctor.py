"""`pressluft doctor` names every failure it is given: a stopped database, an unmigrated schema, a
secret key readable by others or not the one that encrypted the secrets, an unreachable node."""

from __future__ import annotations

import json
import os
import socket

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli
from sqlalchemy import select

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Node
from pressluft_lib.storage.secret_store import SecretStore
from pressluft_lib.storage.transitions import transition


def doctor(*args: str, env: dict | None = None) -> tuple[int, dict[str, dict]]:
    r = CliRunner(env=env).invoke(cli, [*args, "doctor", "--json"], catch_exceptions=False)
    data = json.loads(r.stdout)
    return r.exit_code, {c["name"]: c for c in data["checks"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plane(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PRESSLUFT_HOME", str(home))
    monkeypatch.delenv("PRESSLUFT_SECRET_KEY", raising=False)
    url = f"sqlite:///{home / 'pressluft.db'}"
    monkeypatch.setenv("PRESSLUFT_DB", url)
    db.upgrade(url)
    return url


def test_healthy_control_plane_passes(plane):
    rc, checks = doctor()
    assert rc == 0, checks
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert set(checks) >= {"database", "migrations", "secret_key", "data_dir"}


def test_stopped_database_is_named_and_the_rest_skipped(plane):
    # Nothing listens on the port: what a client sees of a stopped PostgreSQL (connection refused).
    url = f"postgresql://pressluft:hunter2@127.0.0.1:{free_port()}/pressluft"
    r = CliRunner().invoke(cli, ["--db", url, "doctor", "--json"], catch_exceptions=False)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.exit_code == 11
    assert checks["database"]["code"] == "database_unreachable"
    assert checks["migrations"]["status"] == "skipped"
    assert checks["nodes"]["status"] == "skipped"
    assert "hunter2" not in r.stdout


def test_unmigrated_schema_is_named(plane):
    from alembic import command

    command.downgrade(db.alembic_config(plane), "-1")  # a database one migration behind
    rc, checks = doctor()
    assert rc == 11
    assert checks["migrations"]["code"] == "migrations_pending"
    assert "pressluft db upgrade" in checks["migrations"]["message"]


def test_secret_key_readable_by_others_is_named(plane, tmp_path):
    with db.session_factory(plane).begin() as s:
        SecretStore(url=plane).put(s, "global", "probe", "value")
    key = tmp_path / "home" / "secret.key"
    os.chmod(key, 0o644)
    rc, checks = doctor()
    assert rc == 11
    assert checks["secret_key"]["code"] == "secret_key_mode"
    assert "0644" in checks["secret_key"]["message"]
    os.chmod(key, 0o600)
    assert doctor()[0] == 0


def test_wrong_secret_key_is_named(plane, monkeypatch):
    with db.session_factory(plane).begin() as s:
        SecretStore(url=plane).put(s, "global", "probe", "value")
    from cryptography.fernet import Fernet

    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    rc, checks = doctor()
    assert rc == 11
    assert checks["secret_key"]["code"] == "secret_key_wrong"


def test_unreachable_node_is_named_and_its_services_skipped(plane, tmp_path):
    key = tmp_path / "id_test"
    key.write_text("not a key\n")
    port = free_port()
    r = CliRunner().invoke(cli, ["node", "add", "web1", "--host", "127.0.0.1", "--port", str(port),
                                 "--ssh-key", str(key)])
    assert r.exit_code == 0, r.output
    with db.session_factory(plane).begin() as s:
        node = s.scalar(select(Node).where(Node.name == "web1"))
        transition(s, node, "provisioning")
        transition(s, node, "active")
    rc, checks = doctor()
    assert rc == 11
    assert checks["node:web1:ssh"]["code"] == "node_unreachable"
    assert str(port) in checks["node:web1:ssh"]["message"]
    assert checks["node:web1:services"]["status"] == "skipped"
    rc, checks = doctor("--db", plane)
    assert "node:web1:ssh" in checks
    r = CliRunner().invoke(cli, ["doctor", "--skip-nodes", "--json"])
    assert r.exit_code == 0 and "node:web1:ssh" not in r.stdout


def test_parse_services_reads_is_active_and_the_fpm_units():
    from pressluft_lib.operations.doctor import parse_services

    out = "active\ninactive\nactive\nphp8.2-fpm.service loaded active running The PHP 8.2 FastCGI\n"
    assert parse_services(out) == {"nginx": "active", "mariadb": "inactive", "redis-server": "active",
                                   "php8.2-fpm": "active"}
