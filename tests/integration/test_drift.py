"""Configuration drift on a provisioned podman node with one site: `pressluft check node|site` reports
nothing on the converged node, then reports each hand edit (a line in the nginx server block, a pool
setting, a removed package) with its diff, and changes nothing. `doctor` on the same node: SSH and
services pass, then a stopped redis-server is named."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli

from pressluft_lib import jobtypes, queue
from pressluft_lib.storage import db
from tests.rig import wpcli
from tests.rig.control_plane import add_node, js, work
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

POOL = "/etc/php/8.2/fpm/pool.d/pressluft-shop_production.conf"
BLOCK = "/etc/nginx/pressluft-sites/shop_production.conf"


def record_provisioned(name: str) -> None:
    """A node_provision job with the options the provisioned image was built with (tests/rig/provisioned.py),
    recorded as succeeded the way the worker records it, without running it again: `check node` compares
    against the variables of the node's last successful provision."""
    phar, sha = wpcli.checked()
    js("node", "provision", name, "--wpcli-src", str(phar), "--wpcli-sha512", sha, "--no-hardening")
    sf = db.session_factory(os.environ["PRESSLUFT_DB"])
    try:
        job = queue.claim(sf, "test")
        with sf.begin() as s:
            done = queue.finish(s, job, "succeeded", None, None, worker_id="test")
            jobtypes.get(done.type).run_after(s, done, {})
    finally:
        sf.kw["bind"].dispose()


@pytest.fixture(scope="module")
def stack(control_plane, provisioned_node):
    add_node(provisioned_node)
    record_provisioned(provisioned_node.name)
    js("site", "create", "shop", "--node", provisioned_node.name, "--domain", "shop.example.test",
       "--wordpress", str(wordpress_archive()))
    job = work()[0]
    # site_create returns the environment with set_stats (AWX workflows chain on it); the worker
    # records the returned keys in the final state event.
    final = js("jobs", "show", str(job["id"]))["events"][-1]["data"]
    assert {"pressluft_site", "pressluft_env", "pressluft_target", "pressluft_site_created"} <= set(
        final.get("returned", [])), final
    return provisioned_node


def check(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(cli, ["check", *args, "--json"], catch_exceptions=False)
    return r.exit_code, json.loads(r.stdout)


def tasks(report: dict) -> list[str]:
    return [c["task"] for c in report["changes"]]


def test_a_converged_node_reports_nothing(stack):
    rc, node = check("node", stack.name)
    if (rc, node["status"]) != (0, "clean"):
        pytest.fail(json.dumps(node, indent=1)[:20000])


def test_a_converged_site_reports_nothing(stack):
    rc, site = check("site", "shop")
    if (rc, site["status"]) != (0, "clean"):
        pytest.fail(json.dumps(site, indent=1)[:20000])


def test_hand_edits_are_reported_with_their_diff_and_left_alone(stack):
    stack.sh(f"sed -i 's/^pm.max_children = .*/pm.max_children = 77/' {POOL}")
    stack.sh(f"printf '# hand edit\\nadd_header X-Hand edited;\\n' >> {BLOCK}")
    stack.exec("apt-get", "remove", "-y", "-q", "zstd")
    edited = {p: stack.exec("cat", p).stdout for p in (POOL, BLOCK)}

    rc, site = check("site", "shop")
    assert rc == 11 and site["status"] == "drift", site
    diffs = {c["task"]: c.get("diff", "") for c in site["changes"]}
    pool = next(d for t, d in diffs.items() if "pool" in t.lower())
    assert "-pm.max_children = 77" in pool
    block = next(d for t, d in diffs.items() if "nginx" in t.lower())
    assert "-add_header X-Hand edited;" in block

    rc, node = check("node", stack.name)
    assert rc == 11 and node["status"] == "drift", node
    assert any("zstd" in c.get("diff", "") or "package" in c["task"].lower() for c in node["changes"]), node

    assert {p: stack.exec("cat", p).stdout for p in (POOL, BLOCK)} == edited, "check changed nothing"
    assert stack.exec("dpkg-query", "-W", "zstd", check=False).returncode != 0
    audit = js("audit", "list")
    assert [a["result"] for a in audit if a["action"] == "check.site"][:2] == ["drift", "clean"]


def test_doctor_names_a_stopped_service(stack):
    r = CliRunner().invoke(cli, ["doctor", "--json"], catch_exceptions=False)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks[f"node:{stack.name}:ssh"]["status"] == "ok", checks
    assert checks[f"node:{stack.name}:services"]["status"] == "ok", checks
    stack.exec("systemctl", "stop", "redis-server")
    try:
        r = CliRunner().invoke(cli, ["doctor", "--json"], catch_exceptions=False)
        checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
        assert r.exit_code == 11
        bad = checks[f"node:{stack.name}:services"]
        assert bad["code"] == "node_service_down" and "redis-server" in bad["message"], bad
        assert "nginx" not in bad["message"]
    finally:
        stack.exec("systemctl", "start", "redis-server")
