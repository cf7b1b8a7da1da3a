"""Engine and session factory. SQLite (WAL) by default in the user data dir; PostgreSQL by URL."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pressluft_lib.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def data_dir() -> Path:
    """$PRESSLUFT_HOME, else $XDG_DATA_HOME/pressluft, else ~/.local/share/pressluft."""
    if os.environ.get("PRESSLUFT_HOME"):
        return Path(os.environ["PRESSLUFT_HOME"])
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "pressluft"


def default_url() -> str:
    """$PRESSLUFT_DB if set, else the SQLite file pressluft.db in data_dir()."""
    return os.environ.get("PRESSLUFT_DB") or f"sqlite:///{data_dir() / 'pressluft.db'}"


def is_sqlite(bind) -> bool:
    return bind.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # The driver's own transaction handling is off: we emit BEGIN ourselves (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss
    cur.close()


def _sqlite_begin(conn) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
    # writes fails with SQLITE_BUSY (no waiting) when another writer committed in between.
    # Read-only callers may pass execution_options(sqlite_begin="DEFERRED").
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or default_url()
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def session_factory(url_or_engine: str | Engine | None = None) -> sessionmaker[Session]:
    """A sessionmaker whose objects stay usable after commit (workers hand jobs around)."""
    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create or migrate the schema (works from an installed package: no alembic.ini needed)."""
    from alembic import command

    url = url or default_url()
    make_engine(url).dispose()  # validates the URL and creates the SQLite directory
    command.upgrade(alembic_config(url), revision)
