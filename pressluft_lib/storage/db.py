"""Engine and session factory. SQLite (WAL) by default in the user data dir; PostgreSQL by URL."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pressluft_lib.errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

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
    info = conn.connection.info
    if mode == "IMMEDIATE" and "writer_lock" in info and not getattr(_held, "count", 0):
        info["writer_locked"] = _writer_lock(info["writer_lock"])
        _held.count = getattr(_held, "count", 0) + info["writer_locked"]
    try:
        conn.exec_driver_sql(f"BEGIN {mode}")
    except BaseException:
        _writer_unlock(conn.connection)
        raise


def _writer_unlock(dbapi_conn) -> None:
    try:
        info = dbapi_conn.info
    except (AttributeError, NotImplementedError):  # raw or ad-hoc connections never took the lock
        return
    if info.pop("writer_locked", False):
        fcntl.flock(info["writer_lock"], fcntl.LOCK_UN)
        _held.count -= 1


# Writers queue on a flock before BEGIN IMMEDIATE: the next one gets the lock within ~2 ms, where
# SQLite's busy handler sleeps up to 100 ms between retries (8 workers: 251 -> 408 claims/s).
# Polling with a deadline keeps SQLite's semantics: never wait longer than busy_timeout, then let
# SQLite decide. A thread already holding it (nested write on a second connection) skips it.
_held = threading.local()


def _writer_lock(fd: int) -> bool:
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.002)


def _with_writer_lock(engine: Engine, lock_path: Path) -> None:
    """Serialise this engine's write transactions on `lock_path` (see _sqlite_begin)."""

    def on_connect(_dbapi_conn, record) -> None:
        record.info["writer_lock"] = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def on_close(_dbapi_conn, record) -> None:
        fd = record.info.pop("writer_lock", None)
        if fd is not None:
            os.close(fd)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "close", on_close)
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_conn) -> None:
        try:
            commit(dbapi_conn)
        finally:
            _writer_unlock(dbapi_conn)

    def do_rollback(dbapi_conn) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            _writer_unlock(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback


_warned: set[Path] = set()


def _private_file(db_file: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would use the umask, 0644: audit rows,
    payloads and secret ciphertexts readable by every local user); its -wal and -shm take the file's
    mode. An existing file of ours is tightened. Warns once when the directory is open to others.

    An existing file is never opened here: closing any descriptor of a file drops every POSIX lock
    this process holds on it, including those of SQLite connections of another engine, and another
    process may then reset the WAL under them (lost commits, then "database disk image is malformed").
    """
    directory = db_file.parent
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.close(os.open(db_file, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        except FileExistsError:
            pass
        for path in (db_file, f"{db_file}-wal", f"{db_file}-shm"):
            try:
                if os.stat(path).st_uid == os.geteuid() and os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
            except FileNotFoundError:
                pass
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError as exc:
        raise DatabaseError(f"cannot use the SQLite database {db_file}: {exc.strerror or exc}") from None
    if mode & 0o077 and directory not in _warned:
        _warned.add(directory)
        log.warning(
            "the data directory %s is open to other users (mode %04o); it holds the control-plane database: "
            "chmod 700 %s",
            directory, mode, directory,
        )


def explain(exc: Exception) -> DatabaseError:
    """A one-line DatabaseError for a driver error (never the URL: it may hold a password)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    lowered = first.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return DatabaseError(f"the database has no Pressluft schema ({first}): run pressluft db upgrade")
    if "readonly database" in lowered or "unable to open database" in lowered:
        return DatabaseError(f"cannot write the SQLite database: {first}")
    return DatabaseError(f"the database cannot be used: {type(orig).__name__}: {first}")


def make_engine(url: str | None = None, **kwargs) -> Engine:
    url = url or default_url()
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        file_db = bool(path) and path != ":memory:" and not path.startswith("file:")
        if file_db:
            _private_file(Path(path).expanduser())
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        if file_db:
            _with_writer_lock(engine, Path(f"{Path(path).expanduser()}.writer-lock"))
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername != "postgresql+psycopg":  # the queue's hot path runs on psycopg itself
            raise ConfigError(
                f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql:// or postgresql+psycopg://"
            )
        kwargs.setdefault("pool_recycle", 1800)  # no pre-ping: it costs a round trip per checkout
        try:
            return create_engine(parsed, **kwargs)
        except ImportError as exc:
            raise DatabaseError(
                f"the PostgreSQL driver is not installed ({exc.name or exc}): pip install 'psycopg[binary]'"
            ) from None
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
    parsed = make_url(url)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:" or path.startswith("file:"):
        command.upgrade(alembic_config(url), revision)  # PostgreSQL: an advisory lock (migrations/env.py)
        return
    # Workers and `db upgrade` may start together; SQLite runs a migration's DDL outside one transaction,
    # so one process migrates while the others wait here, then find the schema current.
    fd = os.open(f"{Path(path).expanduser()}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        command.upgrade(alembic_config(url), revision)
    finally:
        os.close(fd)
