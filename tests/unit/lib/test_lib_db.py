"""Database plumbing: default location, pragmas, PostgreSQL URLs, and migrations equal to the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from pressluft_lib.errors import ConfigError
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Base


def test_default_url_follows_environment(monkeypatch, tmp_path):
    for var in ("PRESSLUFT_DB", "PRESSLUFT_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert db.default_url() == f"sqlite:///{tmp_path}/home/.local/share/pressluft/pressluft.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert db.default_url() == f"sqlite:///{tmp_path}/xdg/pressluft/pressluft.db"
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "ph"))
    assert db.default_url() == f"sqlite:///{tmp_path}/ph/pressluft.db"
    monkeypatch.setenv("PRESSLUFT_DB", "postgresql://u@h/d")
    assert db.default_url() == "postgresql://u@h/d"


def test_first_use_creates_sqlite_with_pragmas(monkeypatch, tmp_path):
    monkeypatch.delenv("PRESSLUFT_DB", raising=False)
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "data"))
    db.upgrade()
    assert (tmp_path / "data" / "pressluft.db").is_file()
    engine = db.make_engine()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    assert "jobs" in inspect(engine).get_table_names()
    engine.dispose()


def test_bad_urls_are_config_errors():
    with pytest.raises(ConfigError, match="unsupported database"):
        db.make_engine("mysql+pymysql://u@localhost/x")
    with pytest.raises(ConfigError, match="invalid database URL"):
        db.make_engine("not a url")


def test_plain_postgresql_url_uses_psycopg():
    assert db.make_engine("postgresql://u:p@127.0.0.1:1/x").dialect.driver == "psycopg"
    with pytest.raises(ConfigError, match="unsupported PostgreSQL driver 'postgresql\\+psycopg2'"):
        db.make_engine("postgresql+psycopg2://u:p@127.0.0.1:1/x")


def _schema_diff(url: str) -> list:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_sqlite_migration_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    db.upgrade(url)
    assert _schema_diff(url) == []
    db.upgrade(url)  # idempotent


def test_postgresql_migration_matches_models(postgres_cluster):
    url = postgres_cluster.create_database("pressluft_migration")
    db.upgrade(url)
    assert _schema_diff(url) == []
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head()
    engine.dispose()


def _upgrade_at_once(url: str, n: int = 8) -> list[str]:
    """n processes run `db upgrade` on one database at the same moment (workers starting together)."""
    import subprocess
    import sys

    code = "import sys; from pressluft_lib.storage import db; db.upgrade(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    return [p.communicate(timeout=120)[1][-1500:] for p in procs if p.wait(timeout=120) != 0]


def test_concurrent_upgrades_on_postgresql_apply_the_migrations_once(postgres_cluster):
    url = postgres_cluster.create_database("pressluft_race")
    assert _upgrade_at_once(url) == []
    assert _schema_diff(url) == []


def test_concurrent_upgrades_on_sqlite_apply_the_migrations_once(tmp_path):
    url = f"sqlite:///{tmp_path}/race.db"
    assert _upgrade_at_once(url) == []
    assert _schema_diff(url) == []


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()


def test_0002_gives_each_site_an_incarnation_and_frees_deleted_names(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    db.upgrade(url, "0001")
    engine = db.make_engine(url)
    now = "2026-12-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO nodes (id, name, host, port, user, local, provider, roles, state, "
                          "created_at, updated_at) VALUES (1, 'n1', 'h', 22, 'root', 0, 'static', '[]', "
                          f"'active', '{now}', '{now}')"))
        for i, (name, state) in enumerate([("shop", "deleted"), ("blog", "active")], 1):
            conn.execute(text("INSERT INTO sites (id, name, node_id, state, last_fencing_token, created_at, "
                              f"updated_at) VALUES ({i}, '{name}', 1, '{state}', 4, '{now}', '{now}')"))
    db.upgrade(url)
    insert = ("INSERT INTO sites (name, incarnation, node_id, state, last_fencing_token, created_at, "
              "updated_at)"
              f" VALUES ('{{name}}', '{{incarnation}}', 1, 'creating', 0, '{now}', '{now}')")
    with engine.begin() as conn:
        incarnations = conn.execute(text("SELECT incarnation FROM sites ORDER BY id")).scalars().all()
        assert len(set(incarnations)) == 2 and all(i.startswith("i") for i in incarnations)
        conn.execute(text(insert.format(name="shop", incarnation="inew")))
    with pytest.raises(IntegrityError), engine.begin() as conn:  # one live site per name
        conn.execute(text(insert.format(name="blog", incarnation="i2")))
    engine.dispose()


def test_foreign_keys_enforced_on_sqlite(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from pressluft_lib.storage.models import Site

    url = f"sqlite:///{tmp_path}/fk.db"
    db.upgrade(url)
    with pytest.raises(IntegrityError), db.session_factory(url).begin() as s:
        s.add(Site(name="blog", node_id=999))


def test_sqlite_writer_lock_released_after_errors(tmp_path):
    """The writer flock (fast hand-over between workers) is released on commit, rollback and errors."""
    import fcntl

    from sqlalchemy.exc import IntegrityError

    from pressluft_lib.storage.models import Node

    url = f"sqlite:///{tmp_path}/w.db"
    db.upgrade(url)
    sf = db.session_factory(url)

    def lock_is_free() -> bool:
        with open(f"{tmp_path}/w.db.writer-lock") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True

    with sf.begin() as s:
        s.add(Node(name="n1", host="h"))
        s.flush()
        assert not lock_is_free()  # held for the whole write transaction
    assert lock_is_free()
    with pytest.raises(IntegrityError), sf.begin() as s:
        s.add(Node(name="n1", host="h"))
    assert lock_is_free()
    with sf() as s:
        s.connection()
        s.rollback()
    assert lock_is_free()
    with sf.begin() as s:  # still usable
        s.add(Node(name="n2", host="h"))


def test_nested_write_in_one_thread_fails_fast_instead_of_hanging(tmp_path):
    """A second write connection in the thread that holds the writer lock skips the flock and gets
    SQLite's own busy error (here after 0.2 s) rather than waiting on itself."""
    import time

    from sqlalchemy.exc import OperationalError

    from pressluft_lib.storage.models import Node

    url = f"sqlite:///{tmp_path}/n.db"
    db.upgrade(url)
    inner = db.make_engine(url, pool_size=1, max_overflow=0)
    raw = inner.raw_connection()
    raw.driver_connection.execute("PRAGMA busy_timeout=200")
    raw.close()
    with db.session_factory(url).begin() as outer:
        outer.add(Node(name="n1", host="h"))
        outer.flush()
        t0 = time.monotonic()
        with pytest.raises(OperationalError, match="locked"), inner.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO audit_log (action, target, result, detail, created_at) "
                "VALUES ('a', 'b', 'c', '{}', '2026-01-01')"
            )
        assert time.monotonic() - t0 < 5
    inner.dispose()
