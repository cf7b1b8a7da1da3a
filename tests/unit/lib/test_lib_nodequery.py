"""Node queries without a node: the argv they build, input refused before any connection, the deadline
against a node that accepts TCP and never answers, environment_not_active, and the audit row of each."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli
from sqlalchemy import select

from pressluft_lib.errors import EnvironmentNotActive, NodeUnreachable, ValidationError
from pressluft_lib.execution import ansible_exec
from pressluft_lib.nodequery import ssh
from pressluft_lib.nodequery.queries import EnvTarget, NodeQueries, login_request, wp_eval_argv
from pressluft_lib.storage import db
from pressluft_lib.storage.models import AuditLog, Environment, Job, Node
from pressluft_lib.storage.transitions import transition


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections and never sends a byte (a hung sshd)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


@pytest.fixture
def cp(tmp_path, monkeypatch, silent_port):
    """Site shop on node web1, whose SSH port is the silent one; the site_create job still queued."""
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRESSLUFT_DB", url)
    monkeypatch.delenv("PRESSLUFT_SECRET_KEY", raising=False)
    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("node", "add", "web1", "--host", "127.0.0.1", "--port", str(silent_port),
                  "--user", "pressluft").exit_code == 0
    sf = db.session_factory(url)
    with sf.begin() as s:
        node = s.scalar(select(Node).where(Node.name == "web1"))
        transition(s, node, "provisioning")
        transition(s, node, "active")
    assert invoke("site", "create", "shop", "--node", "web1").exit_code == 0
    return sf


def activate(sf) -> None:
    with sf.begin() as s:
        transition(s, s.scalar(select(Environment)), "active")


def audits(sf) -> list[AuditLog]:
    with sf() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action.like("node_query.%"))))


def test_ssh_argv_uses_ansibles_host_key_policy_and_ends_options_before_the_host(tmp_path):
    t = ssh.Target("web1", "10.0.0.5", 2222, "pressluft", "/keys/id")
    argv = ssh.ssh_argv(t, ["echo", "a b", "$(id)"], tmp_path, 10)
    assert argv[argv.index("--") + 1] == "pressluft@10.0.0.5"
    assert shlex.split(argv[-1]) == ["echo", "a b", "$(id)"], "the remote shell gets each element quoted"
    assert "BatchMode=yes" in argv and argv[argv.index("-i") + 1] == "/keys/id"
    opts = " ".join(ssh.known_hosts_options(tmp_path))
    assert opts in " ".join(argv)
    # The worker's Ansible runs get the same options (one policy, one place).
    src = (ansible_exec.__file__)
    assert "known_hosts_options(data_dir)" in open(src).read()


@pytest.mark.parametrize("host", ["-oProxyCommand=x", "a b", "", "h;id"])
def test_a_host_that_is_no_host_is_refused(tmp_path, host):
    with pytest.raises(ValidationError):
        ssh.run(ssh.Target("web1", host), ["true"], tmp_path, deadline=1)


def test_wp_eval_argv_is_fixed_code_as_the_environment_user():
    remote = ssh.Target("web1", "h", user="pressluft")
    argv = wp_eval_argv(EnvTarget(remote, "shop", "staging", "8.2"), "login")
    assert argv[:5] == ["sudo", "-n", "-u", "shop_staging", "--"]
    assert argv[5:8] == ["/usr/bin/php8.2", "/usr/local/bin/wp", "--path=/var/www/sites/shop/staging/current"]
    assert argv[-2] == "eval" and argv[-1].endswith("Pressluft_Queries::login();")
    root = wp_eval_argv(EnvTarget(ssh.Target("web1", "h", user="root"), "shop", "production", None), "info")
    assert root[:4] == ["runuser", "-u", "shop_production", "--"] and root[4] == "/usr/local/bin/wp"


@pytest.mark.parametrize(("user", "ttl", "redirect"), [
    ("a'b", 300, None), ("x" * 61, 300, None), (None, 9, None), (None, 3601, None),
    (None, 300, "//evil.example/"), (None, 300, "https://evil.example/"), (None, 300, "/a b"),
    (None, 300, "/\n"),
])
def test_login_input_is_refused_before_any_connection(user, ttl, redirect):
    with pytest.raises(ValidationError):
        login_request(user, ttl, redirect)


def test_login_request_travels_as_data():
    assert login_request("jane.doe@x", 60, "/wp-admin/edit.php?post_type=page") == {
        "user": "jane.doe@x", "ttl": 60, "redirect": "/wp-admin/edit.php?post_type=page"}


def test_environment_not_active_is_refused_without_connecting_and_audited(cp):
    q = NodeQueries(cp, "tester", db.data_dir(), deadline=1)
    with pytest.raises(EnvironmentNotActive):
        q.login("shop", "production")
    r = invoke("login", "shop", "--json")
    assert r.exit_code == 12, r.output
    assert json.loads(r.stdout)["error"]["code"] == "environment_not_active"
    rows = audits(cp)
    assert [(a.actor is not None, a.action, a.target, a.result) for a in rows] == [
        (True, "node_query.login", "shop/production", "environment_not_active")] * 2
    assert rows[0].actor == "tester"


def test_a_silent_node_is_unreachable_at_the_deadline_and_its_ssh_is_killed(cp):
    activate(cp)
    with cp.begin() as s:  # a deploy holds the site (its lock) while the query runs
        transition(s, s.scalar(select(Environment)), "deploying")
    q = NodeQueries(cp, "tester", db.data_dir(), deadline=1.5)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as err:
        q.site_info("shop", "production")
    took = time.monotonic() - started
    assert took < 1.5 + 2, f"the deadline did not hold: {took:.1f} s"
    assert "did not answer within 1.5 s" in err.value.message
    with cp() as s:
        job = s.scalar(select(Job))
        assert (job.state, job.lock_key) == ("queued", f"site:{job.site_id}"), "no lock taken or touched"
    row = audits(cp)[-1]
    assert (row.action, row.result, row.detail["node"]) == (
        "node_query.site_info", "node_unreachable", "web1")


def test_cli_login_against_a_silent_node_exits_node_unreachable_within_the_10_s_deadline(cp):
    activate(cp)
    started = time.monotonic()
    r = invoke("login", "shop/production", "--json")
    took = time.monotonic() - started
    assert r.exit_code == 13, r.output
    assert json.loads(r.stdout)["error"]["code"] == "node_unreachable"
    assert 9 < took < 10 + 3, f"{took:.1f} s: the hard deadline is 10 s"


def test_the_deadline_kills_the_whole_process_group(tmp_path):
    """A local node runs the argv itself: at the deadline the command and what it started are gone."""
    marker = f"pressluft-nq-{time.monotonic_ns()}"
    local = ssh.Target("here", "", local=True)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable):
        nap = f"python3 -c 'import time; time.sleep(30)' {marker}"
        ssh.run(local, ["sh", "-c", f"{nap} & {nap}; wait"], tmp_path, deadline=1)
    # A child left alive would hold the output pipe open: the call would return only when it exits.
    assert time.monotonic() - started < 1 + 5, "the deadline did not end the children"
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert not left.strip(), f"still running: {left}"
    assert ssh.run(local, ["sh", "-c", "cat; exit 3"], tmp_path, stdin="data", deadline=5).rc == 3
