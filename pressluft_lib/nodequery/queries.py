"""The node queries: login, site info, node status. Each resolves its target in the database, runs one
command through ssh.run and writes one audit row, whatever the outcome.

The remote argv is built here from constants and validated names only; request data (a login's user,
TTL and redirect) travels as JSON on stdin to fixed PHP code (`wp eval`), so nothing reaches a shell or
a PHP source line. The PHP side is the Pressluft must-use plugin (roles/site_env/files/pressluft.php).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from pressluft_lib.errors import (
    EnvironmentNotActive,
    NotFound,
    PressluftError,
    ValidationError,
    WpCliError,
)
from pressluft_lib.names import validate_env_pair, validate_node
from pressluft_lib.nodequery import ssh
from pressluft_lib.states import ResourceState
from pressluft_lib.storage.models import AuditLog, Environment, Node, Site, utcnow

WP_CLI = "/usr/local/bin/wp"
SITES_ROOT = "/var/www/sites"
# States in which the environment's live release serves requests: a query reads it beside the job
# (no lock); creating, restoring, deleting, failed and deleted environments are refused.
SERVING = frozenset({ResourceState.ACTIVE, ResourceState.DEPLOYING, ResourceState.UPDATING,
                     ResourceState.PROMOTING, ResourceState.CLONING})
_PHP_RE = re.compile(r"[5-9]\.[0-9]{1,2}")
_LOGIN_RE = re.compile(r"[A-Za-z0-9 _.@-]{1,60}")  # WordPress's sanitize_user(strict) alphabet
_PATH_RE = re.compile(r"/(?!/)[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]{0,2000}")
TTL_MIN, TTL_MAX = 10, 3600

# Fixed PHP for `wp eval`: the must-use plugin does the work; a missing plugin is a clear error.
_EVAL = ("if (!class_exists('Pressluft_Queries')) {{ WP_CLI::error('the Pressluft must-use plugin is not "
         "installed in this environment (re-run site create for it to converge)'); }} "
         "Pressluft_Queries::{method}();")


@dataclass(frozen=True)
class EnvTarget:
    node: ssh.Target
    site: str
    env: str
    php_version: str | None

    @property
    def user(self) -> str:
        return f"{self.site}_{self.env}"

    @property
    def root(self) -> str:
        return f"{SITES_ROOT}/{self.site}/{self.env}"


def node_target(node: Node) -> ssh.Target:
    return ssh.Target(name=node.name, host=node.host, port=node.port, user=node.user or "root",
                      key_file=node.ssh_key_path or None, local=bool(node.local))


def _as_user(target: EnvTarget, argv: list[str]) -> list[str]:
    """argv run as the environment's user (WP-CLI runs the site's PHP: never as root)."""
    if target.node.as_root:
        return ["runuser", "-u", target.user, "--", *argv]
    return ["sudo", "-n", "-u", target.user, "--", *argv]


def wp_eval_argv(target: EnvTarget, method: str) -> list[str]:
    """`wp eval` of one Pressluft_Queries method, as the environment's user, with its PHP version."""
    php = [f"/usr/bin/php{target.php_version}"] if target.php_version else []
    wp = [*php, WP_CLI, f"--path={target.root}/current", "--skip-plugins", "--skip-themes", "--quiet",
          "eval", _EVAL.format(method=method)]
    return _as_user(target, wp)


def login_request(user: str | None, ttl: int, redirect: str | None) -> dict[str, Any]:
    """The validated stdin of a login query (the plugin checks it again)."""
    if user is not None and not _LOGIN_RE.fullmatch(user):
        raise ValidationError(f"invalid WordPress login {user[:80]!r}", details={"user": user[:80]})
    if not isinstance(ttl, int) or not TTL_MIN <= ttl <= TTL_MAX:
        raise ValidationError(f"--ttl must be {TTL_MIN}-{TTL_MAX} seconds", details={"ttl": ttl})
    if redirect is not None and not _PATH_RE.fullmatch(redirect):
        raise ValidationError("--redirect must be a path on the site, starting with one /",
                              details={"redirect": redirect[:200]})
    return {"user": user or "", "ttl": ttl, "redirect": redirect or ""}


class NodeQueries:
    """Runs node queries against one control-plane database; `actor` is audited."""

    def __init__(self, session_factory: sessionmaker[Session], actor: str, data_dir: Path,
                 deadline: float = ssh.DEADLINE_SECONDS):
        self.session_factory = session_factory
        self.actor = actor
        self.data_dir = data_dir
        self.deadline = deadline

    # -- targets ---------------------------------------------------------------------------------------
    def env_target(self, site: str, env: str) -> EnvTarget:
        site, env = validate_env_pair(site, env)
        with self.session_factory() as s:
            row = s.scalar(Site.by_name(site))
            if row is None or row.state == ResourceState.DELETED:
                raise NotFound(f"site {site!r} does not exist", details={"site": site})
            e = s.scalar(select(Environment).where(Environment.site_id == row.id, Environment.name == env))
            if e is None or e.state == ResourceState.DELETED:
                raise NotFound(f"environment {site}/{env} does not exist", details={"site": site, "env": env})
            if e.state not in SERVING:
                raise EnvironmentNotActive(
                    f"environment {site}/{env} is {e.state}, not active: node queries need a serving "
                    "environment", details={"site": site, "env": env, "state": e.state})
            php = e.php_version or row.php_version
            if php is not None and not _PHP_RE.fullmatch(php):
                php = None
            return EnvTarget(node_target(row.node), site, env, php)

    def node(self, name: str) -> ssh.Target:
        validate_node(name)
        with self.session_factory() as s:
            row = s.scalar(select(Node).where(Node.name == name))
            if row is None or row.state == "removed":
                raise NotFound(f"node {name!r} does not exist", details={"node": name})
            return node_target(row)

    # -- queries ---------------------------------------------------------------------------------------
    def login(self, site: str, env: str, *, user: str | None = None, ttl: int = 300,
              redirect: str | None = None) -> dict[str, Any]:
        """A one-time login URL (the token is in the URL only; WordPress keeps its hash)."""
        request = login_request(user, ttl, redirect)
        detail = {"user": request["user"] or "(first administrator)", "ttl": ttl}

        def query() -> dict[str, Any]:
            target = self.env_target(site, env)
            detail["node"] = target.node.name
            answer = self._wp(target, "login", json.dumps(request))
            if not str(answer.get("url", "")).startswith(("http://", "https://")):
                raise WpCliError("the login query answered without a URL")
            detail["user"] = answer.get("user")
            return {"site": site, "env": env, **answer}

        return self._audited("node_query.login", f"{site}/{env}", detail, query)

    def site_info(self, site: str, env: str) -> dict[str, Any]:
        """WordPress and PHP versions, plugins and themes with known updates, disk usage."""
        detail: dict[str, Any] = {}

        def query() -> dict[str, Any]:
            target = self.env_target(site, env)
            detail["node"] = target.node.name
            return {"site": site, "env": env, "node": target.node.name, **self._wp(target, "info", "")}

        return self._audited("node_query.site_info", f"{site}/{env}", detail, query)

    def node_status(self, name: str) -> dict[str, Any]:
        """Load, memory and disk of a node (placement reads it): fixed Python on the node, no input."""
        detail: dict[str, Any] = {}

        def query() -> dict[str, Any]:
            target = self.node(name)
            answer = ssh.run(target, ["/usr/bin/python3", "-c", _NODE_STATUS], self.data_dir,
                             deadline=self.deadline)
            if answer.rc != 0:
                raise WpCliError(f"node status failed on {name}: {_first(answer.stderr)}")
            detail["seconds"] = round(answer.seconds, 3)
            return {"node": name, **_json(answer.stdout)}

        return self._audited("node_query.node_status", f"node:{name}", detail, query)

    # -- plumbing --------------------------------------------------------------------------------------
    def _wp(self, target: EnvTarget, method: str, stdin: str) -> dict[str, Any]:
        answer = ssh.run(target.node, wp_eval_argv(target, method), self.data_dir, stdin=stdin,
                         deadline=self.deadline)
        if answer.rc != 0:
            raise WpCliError(f"WP-CLI failed on {target.node.name} ({target.site}/{target.env}): "
                             f"{_first(answer.stderr) or _first(answer.stdout)}",
                             details={"rc": answer.rc})
        return _json(answer.stdout)

    def _audited(self, action: str, target: str, detail: dict, query: Callable[[], dict]) -> dict:
        started = time.monotonic()
        result = "ok"
        try:
            return query()
        except PressluftError as exc:
            result = exc.code
            detail["error"] = exc.message[:500]
            raise
        finally:
            detail["seconds"] = round(time.monotonic() - started, 3)
            with self.session_factory.begin() as s:
                s.execute(insert(AuditLog).values(actor=self.actor, action=action, target=target,
                                                  result=result, detail=detail, created_at=utcnow()))


def _first(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:500]


def _json(stdout: str) -> dict[str, Any]:
    """The answer is the last line of stdout (a plugin may print notices before it)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise WpCliError(f"the node's answer is not JSON: {_first(stdout)[:200]!r}")
    return data


# Runs on the node as `python3 -c`; reads /proc and statvfs only.
_NODE_STATUS = """\
import json, os
mem = {}
with open('/proc/meminfo') as f:
    for line in f:
        key, _, rest = line.partition(':')
        mem[key] = int(rest.split()[0]) * 1024
def disk(path):
    st = os.statvfs(path)
    return {'path': path, 'total_bytes': st.f_blocks * st.f_frsize, 'free_bytes': st.f_bavail * st.f_frsize}
load = os.getloadavg()
print(json.dumps({'cpus': os.cpu_count(), 'load': {'1m': load[0], '5m': load[1], '15m': load[2]},
                  'memory': {'total_bytes': mem.get('MemTotal', 0),
                             'available_bytes': mem.get('MemAvailable', 0)},
                  'disk': [disk(p) for p in ('/', '/var/www', '/var/lib/mysql') if os.path.isdir(p)]}))
"""
