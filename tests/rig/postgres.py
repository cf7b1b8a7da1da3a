"""A throwaway PostgreSQL 15 cluster of the host's binaries, run as the `postgres` OS user.

Data and the unix socket live in a fresh temp dir owned by postgres; the server listens on a free
127.0.0.1 port with a random password, and is stopped and removed at teardown.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("PRESSLUFT_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"


class PostgresError(RuntimeError):
    pass


def _as_postgres(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", OS_USER, "--", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path
    port: int
    password: str

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres password={self.password} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def available() -> str | None:
    """None if a cluster can be started here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"{PG_BIN}/initdb is missing: run scripts/setup --tests (installs postgresql)"
    if os.geteuid() != 0:
        return "starting a cluster as the postgres user needs root (runuser)"
    return None


def start_cluster(durable: bool = False, max_connections: int = 120) -> Cluster:
    """initdb + pg_ctl start; durable=False turns fsync off (tests), True keeps PostgreSQL defaults."""
    why = available()
    if why:
        raise PostgresError(why)
    root = Path(tempfile.mkdtemp(prefix="pressluft-pg-"))
    shutil.chown(root, OS_USER, OS_USER)
    password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    shutil.chown(pwfile, OS_USER, OS_USER)
    pwfile.chmod(0o600)
    cluster = Cluster(root, 0, password)
    init = _as_postgres(
        str(PG_BIN / "initdb"), "-D", str(cluster.datadir), "-U", "postgres", "--pwfile", str(pwfile),
        "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
    )  # fmt: skip
    pwfile.unlink()
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresError(f"initdb failed: {init.stderr or init.stdout}")
    opts = [
        f"-c unix_socket_directories={root}",
        "-c listen_addresses=127.0.0.1",
        f"-c max_connections={max_connections}",
    ]
    if not durable:
        opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    last = ""
    for _ in range(5):  # the free port may be taken between probe and bind
        cluster.port = _free_port()
        start = _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(cluster.datadir), "-l", str(root / "server.log"),
            "-w", "-t", "60", "-o", " ".join([*opts, f"-c port={cluster.port}"]), "start",
        )  # fmt: skip
        if start.returncode == 0:
            return cluster
        last = (
            (root / "server.log").read_text(errors="replace")[-2000:]
            if (root / "server.log").exists()
            else ""
        )
        time.sleep(0.2)
    shutil.rmtree(root, ignore_errors=True)
    raise PostgresError(f"pg_ctl start failed: {last}")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A running throwaway cluster for the session (fails, never skips, when PostgreSQL is missing)."""
    why = available()
    if why:
        pytest.fail(f"PostgreSQL tests cannot run: {why}")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: Cluster) -> str:
    """URL of an empty database `pressluft_test` in the session cluster."""
    return postgres_cluster.create_database("pressluft_test")
