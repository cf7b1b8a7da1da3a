"""The control-plane database: private files, and one clear line (exit 10) when it cannot be used."""

from __future__ import annotations

import os
import stat
import sys

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli
from sqlalchemy.engine import make_url

from pressluft_lib.storage import db


def pressluft(url: str, *args: str):
    return CliRunner(env={"PRESSLUFT_DB": url}).invoke(cli, list(args))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_clean_failure(result, *words: str) -> None:
    assert result.exit_code == 10, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_database_and_journals_are_private_whatever_the_umask(tmp_path):
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'pressluft.db'}"
    old = os.umask(0o022)
    try:
        assert pressluft(url, "db", "upgrade").exit_code == 0
        engine = db.make_engine(url)
        with engine.connect() as conn:  # an open connection keeps -wal and -shm on disk
            conn.exec_driver_sql("SELECT count(*) FROM nodes").all()
            for suffix in ("", "-wal", "-shm"):
                assert mode(f"{home / 'pressluft.db'}{suffix}") == 0o600, suffix
        engine.dispose()
    finally:
        os.umask(old)
    assert mode(home) == 0o700


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    path = tmp_path / "d" / "pressluft.db"
    path.parent.mkdir(mode=0o700)
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    db.make_engine(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_an_open_data_directory_is_warned_about(tmp_path, caplog):
    home = tmp_path / "open"
    home.mkdir()
    os.chmod(home, 0o755)
    db.make_engine(f"sqlite:///{home / 'pressluft.db'}").dispose()
    assert any("open to other users" in r.getMessage() and "0755" in r.getMessage() for r in caplog.records)


def test_unwritable_sqlite_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_clean_failure(pressluft(f"sqlite:///{blocker / 'pressluft.db'}", "node", "list"), str(blocker))
    assert_clean_failure(pressluft(f"sqlite:///{tmp_path}", "db", "upgrade"))  # a directory, not a file


def test_unmigrated_schema(tmp_path):
    result = pressluft(f"sqlite:///{tmp_path / 'new.db'}", "node", "list")
    assert_clean_failure(result, "pressluft db upgrade")


def test_postgresql_refused_never_prints_the_password(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = pressluft(f"postgresql://pressluft:S3cretPw@127.0.0.1:{port}/pressluft", "node", "list")
    assert_clean_failure(result)
    assert "S3cretPw" not in result.output


def test_postgresql_bad_password(postgres_url):
    bad = make_url(postgres_url).set(password="wrong-password-123")
    result = pressluft(bad.render_as_string(hide_password=False), "node", "list")
    assert_clean_failure(result, "password")
    assert "wrong-password-123" not in result.output


def test_missing_postgresql_driver(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    result = pressluft("postgresql://pressluft@127.0.0.1/pressluft", "node", "list")
    assert_clean_failure(result, "psycopg")


@pytest.mark.parametrize("url", ["mysql://x@h/db", "not a url", "postgresql+asyncpg://x@h/db"])
def test_unsupported_urls_are_config_errors(url):
    result = pressluft(url, "node", "list")
    assert result.exit_code == 7, result.output
    assert "Traceback" not in result.output


def test_a_second_engine_keeps_the_posix_locks_of_the_first(tmp_path):
    """Opening and closing the database file in a process drops every POSIX lock the process holds on
    it (SQLite's own locks among them); then another process may reset the WAL under a live connection:
    a worker's committed claim vanished and the file ended "malformed" (test_worker_kill)."""
    import fcntl
    import subprocess

    db_file = tmp_path / "cp.db"
    db.make_engine(f"sqlite:///{db_file}")
    with open(db_file, "rb+") as held:
        fcntl.lockf(held, fcntl.LOCK_SH)  # what a live SQLite connection holds on the file
        db.make_engine(f"sqlite:///{db_file}")  # e.g. the runner's secret store beside the worker's engine
        probe = "import fcntl,sys; f=open(sys.argv[1],'rb+'); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"
        other = subprocess.run([sys.executable, "-c", probe, str(db_file)], capture_output=True)
        assert other.returncode != 0, "another process locked the file: this process's locks were dropped"
