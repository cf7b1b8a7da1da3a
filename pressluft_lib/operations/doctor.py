"""`pressluft doctor`: every check that can fail says which one and why, and the run exits non-zero.

Checks: the database answers, its schema is at the newest migration, the secret key is private
and decrypts the stored secrets, the data directory is private, and for each node: SSH answers and
its services (nginx, mariadb, redis-server, php*-fpm) are active. A check that cannot run because an
earlier one failed is reported as skipped, never as passed.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from pressluft_lib.errors import PressluftError
from pressluft_lib.states import NodeState
from pressluft_lib.storage import db as dbmod
from pressluft_lib.storage import secret_store
from pressluft_lib.storage.models import Node, Secret

# The units a provisioned node runs (roles node_nginx, node_mariadb, node_redis, node_php).
NODE_SERVICES = ("nginx", "mariadb", "redis-server")
SSH_TIMEOUT = 8  # seconds for the connection; the whole call gets twice that
# One fixed command (no input in it): each unit's state, then the PHP-FPM units that exist.
_REMOTE = (
    "systemctl is-active " + " ".join(NODE_SERVICES) + "; "
    "systemctl list-units --all --plain --no-legend --type=service 'php*-fpm.service'"
)


@dataclass
class Check:
    name: str  # e.g. database, migrations, secret_key, node:web1:ssh
    status: str  # ok | failed | skipped
    message: str
    code: str | None = None  # a stable failure code, e.g. database_unreachable

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _ok(name: str, message: str) -> Check:
    return Check(name, "ok", message)


def _failed(name: str, code: str, message: str) -> Check:
    return Check(name, "failed", message, code)


def check_database(url: str) -> tuple[Check, object | None]:
    try:
        engine = dbmod.make_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except PressluftError as exc:
        return _failed("database", "database_unreachable", exc.message), None
    except Exception as exc:  # driver errors: one line, never the URL (it may hold a password)
        return _failed("database", "database_unreachable", dbmod.explain(exc).message), None
    shown = make_url(url).render_as_string(hide_password=True)
    return _ok("database", f"{shown} answers"), engine


def check_migrations(engine) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(dbmod.alembic_config(str(engine.url)))
    heads = set(script.get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if not current:
        return _failed("migrations", "schema_missing", "no Pressluft schema: pressluft db upgrade")
    if current != heads:
        return _failed(
            "migrations", "migrations_pending",
            f"schema at {', '.join(sorted(current))}, newest {', '.join(sorted(heads))}: "
            "pressluft db upgrade",
        )
    return _ok("migrations", f"schema at the newest migration ({', '.join(sorted(heads))})")


def check_secret_key(url: str, engine) -> Check:
    """The key is private (0600, ours) and decrypts a stored secret; an absent key is fine while
    nothing is stored (it is created on first use)."""
    name = "secret_key"
    stored = None
    if engine is not None:
        try:
            with engine.connect() as conn:
                stored = conn.execute(select(Secret.scope, Secret.name, Secret.ciphertext).limit(1)).first()
        except Exception:  # no schema yet: the migrations check says so
            stored = None
    if os.environ.get(secret_store.KEY_ENV):
        where = f"${secret_store.KEY_ENV}"
    else:
        path = secret_store.key_file_path(url)
        where = str(path)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            if stored is not None:
                return _failed(name, "secret_key_missing", f"no key at {path} but the database holds secrets")
            return _ok(name, f"no key yet at {path} (created on first use)")
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            return _failed(name, "secret_key_mode", f"{path} is not a regular file")
        if st.st_mode & 0o077:
            return _failed(
                name, "secret_key_mode",
                f"{path} is open to group/other (mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 {path}",
            )
        if st.st_uid != os.geteuid():
            return _failed(name, "secret_key_owner", f"{path} belongs to uid {st.st_uid}, not to this user")
    try:
        store = secret_store.SecretStore(url=url)
    except PressluftError as exc:
        return _failed(name, "secret_key_invalid", exc.message)
    if stored is not None:
        try:
            store._fernet.decrypt(stored.ciphertext)
        except Exception:
            return _failed(
                name, "secret_key_wrong",
                f"the key at {where} does not decrypt the stored secret {stored.scope}/{stored.name}",
            )
    return _ok(name, f"key at {where} is private" + (" and decrypts the stored secrets" if stored else ""))


def check_data_dir(url: str) -> Check | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        directory = Path(parsed.database).expanduser().parent
    else:
        directory = dbmod.data_dir()
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        why = f"{directory} is open to other users (mode {mode:04o}): chmod 700 it"
        return _failed("data_dir", "data_dir_mode", why)
    return _ok("data_dir", f"{directory} is private")


def _ssh_argv(node: Node, known_hosts: Path) -> list[str]:
    argv = [
        "ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT}", "-o", "LogLevel=ERROR",
        "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}",
        "-p", str(node.port), "-l", node.user,
    ]
    if node.ssh_key_path:
        argv += ["-i", node.ssh_key_path, "-o", "IdentitiesOnly=yes"]
    return [*argv, node.host, _REMOTE]


def _local_argv() -> list[str] | None:
    if Path("/run/systemd/system").is_dir():
        return ["sh", "-c", _REMOTE]
    return None  # PID 1 is not systemd (single-server mode on such a host): service(8) per unit


def parse_services(stdout: str) -> dict[str, str]:
    """{unit: state} from the output of _REMOTE."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    states = dict(zip(NODE_SERVICES, lines[: len(NODE_SERVICES)], strict=False))
    for line in lines[len(NODE_SERVICES):]:
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("-fpm.service"):
            states[parts[0].removesuffix(".service")] = parts[2]  # UNIT LOAD ACTIVE SUB ...
    return states


def _local_services() -> dict[str, str]:
    states = {}
    units = list(NODE_SERVICES) + sorted(p.name for p in Path("/etc/init.d").glob("php*-fpm"))
    for unit in units:
        argv = ["service", unit, "status"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
        states[unit] = "active" if r.returncode == 0 else "inactive"
    return states


def check_node(node: Node, known_hosts: Path) -> list[Check]:
    base = f"node:{node.name}"
    if node.local:
        argv = _local_argv()
        if argv is None:
            states = _local_services()
            return [_ok(f"{base}:ssh", "local node (no SSH)"), _services_check(base, node, states)]
    else:
        if node.host.startswith("-") or node.user.startswith("-"):  # never an ssh option
            return [_failed(f"{base}:ssh", "node_unreachable", "host or user begins with '-'")]
        argv = _ssh_argv(node, known_hosts)
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=2 * SSH_TIMEOUT + 5, check=False)
    except subprocess.TimeoutExpired:
        return [_failed(f"{base}:ssh", "node_unreachable", f"no answer from {node.host}:{node.port} in time")]
    # ssh exits 255 for its own errors; otherwise the remote command ran (is-active exits 3 if one is down).
    if r.returncode == 255 and not node.local:
        why = (r.stderr.strip().splitlines() or ["ssh failed"])[-1]
        return [
            _failed(f"{base}:ssh", "node_unreachable", f"{node.user}@{node.host}:{node.port}: {why[:300]}"),
            Check(f"{base}:services", "skipped", "SSH failed"),
        ]
    ssh = _ok(f"{base}:ssh", "local node" if node.local else f"{node.user}@{node.host}:{node.port} answers")
    return [ssh, _services_check(base, node, parse_services(r.stdout))]


def _services_check(base: str, node: Node, states: dict[str, str]) -> Check:
    if node.state == NodeState.PENDING:
        return Check(f"{base}:services", "skipped", "node not provisioned yet")
    down = {u: s for u, s in states.items() if s != "active"}
    missing = [u for u in NODE_SERVICES if u not in states]
    if not any(u.endswith("-fpm") for u in states):
        missing.append("php*-fpm")
    if down or missing:
        parts = [f"{u} {s}" for u, s in sorted(down.items())] + [f"{u} missing" for u in missing]
        return _failed(f"{base}:services", "node_service_down", ", ".join(parts))
    return _ok(f"{base}:services", ", ".join(sorted(states)) + " active")


def run(url: str | None = None, *, nodes: bool = True, known_hosts: Path | None = None) -> list[Check]:
    """All checks, in order; never raises for a failed check."""
    url = url or dbmod.default_url()
    checks: list[Check] = []
    db_check, engine = check_database(url)
    checks.append(db_check)
    if engine is None:
        checks.append(Check("migrations", "skipped", "database unreachable"))
    else:
        checks.append(check_migrations(engine))
    checks.append(check_secret_key(url, engine if checks[-1].status == "ok" else None))
    if (dd := check_data_dir(url)) is not None:
        checks.append(dd)
    if engine is None or checks[1].status != "ok":
        checks.append(Check("nodes", "skipped", "database unreachable or not migrated"))
        return checks
    if not nodes:
        return checks
    known_hosts = known_hosts or dbmod.data_dir() / "known_hosts"
    with dbmod.session_factory(engine)() as session:
        rows = session.scalars(select(Node).where(Node.state != NodeState.REMOVED).order_by(Node.name)).all()
    for node in rows:
        checks.extend(check_node(node, known_hosts))
    engine.dispose()
    return checks

