"""Driving a test's control plane as a user does: the CLI in-process (Click's runner), one worker pass
at a time, and the node's HTTP port. The control plane itself (a temporary PRESSLUFT_HOME with a
SQLite database) is the `control_plane` fixture of tests/integration/conftest.py.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Node as NodeRow
from pressluft_lib.storage.transitions import transition
from tests.rig import wpcli
from tests.rig.nodes import Node


def run(*args: str, ok: bool = True, input: str | None = None):
    """`pressluft ARGS`; asserts exit 0 unless ok=False."""
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def js(*args: str, input: str | None = None):
    """`pressluft ARGS --json`, parsed."""
    return json.loads(run(*args, "--json", input=input).stdout)


def work(expect: str = "succeeded") -> list[dict]:
    """One `pressluft worker --once`; fails the test, with the failed tasks, if a job ends otherwise."""
    jobs = js("worker", "--once")["jobs"]
    assert jobs, "the worker found nothing to do"
    for job in jobs:
        if job["state"] != expect:
            shown = js("jobs", "show", str(job["id"]))
            failed = [
                e["data"] for e in shown["events"] if e["data"].get("status") in ("failed", "unreachable")
            ]
            pytest.fail(f"job {job['id']} {job['type']} is {job['state']} ({job['error_code']}): {failed}")
    return jobs


def http_get(node: Node, host: str, timeout: float = 30, path: str = "/") -> tuple[int, str]:
    """GET with a Host header through the node's published port; polls until nginx answers."""
    deadline = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError):  # 444 closes the connection
            if time.monotonic() > deadline:
                return 0, ""
            time.sleep(0.5)


def add_node(node: Node, provision: bool = False) -> None:
    """`node add`; then either a `node provision` job run by the worker, or, for a node started from
    the provisioned image (tests/rig/provisioned.py), the node recorded as provisioned the way the
    worker records it (pending -> provisioning -> active), without running the playbook again."""
    js("node", "add", node.name, "--host", "127.0.0.1", "--port", str(node.ssh_port), "--user", "pressluft",
       "--ssh-key", str(node.key_file))
    if provision:
        phar, sha = wpcli.checked()
        job = js("node", "provision", node.name, "--wpcli-src", str(phar), "--wpcli-sha512", sha,
                 "--no-hardening")
        assert work()[0]["id"] == job["job_id"]
    else:
        mark_provisioned(node.name)


def mark_provisioned(name: str) -> None:
    sf = db.session_factory(os.environ["PRESSLUFT_DB"])
    try:
        with sf.begin() as s:
            row = s.query(NodeRow).filter_by(name=name).one()
            transition(s, row, "provisioning")
            transition(s, row, "active")
    finally:
        sf.kw["bind"].dispose()


def link_to_provider(name: str, provider: str, server_id: int) -> None:
    """Record node `name` as the server `server_id` of provider account `provider`, as `node create`'s
    after hook does (tests/integration/test_fleet.py proves that path), for a node the test started
    itself and registered at the fake API (FakeHcloud.add_server)."""
    from pressluft_lib.storage.models import Provider

    sf = db.session_factory(os.environ["PRESSLUFT_DB"])
    try:
        with sf.begin() as s:
            row = s.query(NodeRow).filter_by(name=name).one()
            row.provider_id = s.query(Provider).filter_by(name=provider).one().id
            row.provider = "hcloud"
            row.cloud = {"server_type": "cx22", "location": "fsn1", "image": "debian-12", "network": None,
                         "server_id": server_id}
    finally:
        sf.kw["bind"].dispose()
