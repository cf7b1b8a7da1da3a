"""Nodes created at Hetzner Cloud through the control plane, against the fake API of tests/rig/hcloud_api.py
(served on loopback, chosen with the provider's --endpoint) whose servers are podman nodes.

One server for the whole file (booted from the provisioned image): its creation fails half-way on a quota
error and is resumed; node_provision runs on it for real; a rerun changes nothing; a firewall deleted by
hand comes back; placement reads the server's figures over SSH; destroy lifts the protection and deletes
server and primary IP, keeping the shared resources.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.rig import nodes as rig
from tests.rig import wpcli
from tests.rig.control_plane import js, run, work
from tests.rig.hcloud_api import FakeHcloud, serve_podman_nodes

pytestmark = pytest.mark.node

MUTATING = ("POST", "PUT", "DELETE")


@pytest.fixture(scope="module")
def fleet(control_plane, tmp_path_factory):
    rig.require_podman()
    with FakeHcloud() as fake:
        booted = serve_podman_nodes(fake, tmp_path_factory.mktemp("servers"))
        js("provider", "add", "hetzner", "hz", "--admin-cidr", "127.0.0.0/8", "--admin-cidr", "10.0.2.2/32",
           "--endpoint", fake.endpoint, input=fake.token + "\n")
        try:
            yield fake, booted
        finally:
            rig.stop_nodes(list(booted.values()))


def create_web1():
    phar, sha = wpcli.checked()  # offline: the node_provision that follows installs this WP-CLI
    return js("node", "create", "web1", "--provider", "hz", "--type", "cx22", "--location", "fsn1",
              "--network", "pressluft", "--no-hardening", "--wpcli-src", str(phar), "--wpcli-sha512", sha)


def mutations(fake, since: int) -> list[tuple[str, str]]:
    return [r for r in fake.requests[since:] if r[0] in MUTATING]


def test_quota_error_fails_half_way_and_a_rerun_resumes(fleet):
    fake, _ = fleet
    fake.fail_next("POST", "/servers", 403, "resource_limit_exceeded", "server limit exceeded (fake quota)")
    job = create_web1()
    failed = work(expect="failed")
    assert failed[0]["id"] == job["job_id"]
    shown = js("jobs", "show", str(job["job_id"]))
    assert "server limit exceeded" in shown["error_message"], shown["error_message"]
    assert js("node", "show", "web1")["state"] == "failed"
    # What the first run made before the error is there once, and no server.
    assert list(fake.named("ssh_keys")) and "pressluft-hz" in fake.named("firewalls")
    assert "web1-ipv4" in fake.named("primary_ips") and not fake.named("servers")

    again = create_web1()
    done = work()  # node_create, then the node_provision its after hook queued, on the server for real
    assert [j["type"] for j in done] == ["node_create", "node_provision"] and done[0]["id"] == again["job_id"]
    assert len(fake.named("ssh_keys")) == 1 and len(fake.named("firewalls")) == 1
    assert len(fake.named("primary_ips")) == 1 and len(fake.named("networks")) == 1
    server = fake.named("servers")["web1"]
    assert server["protection"] == {"delete": True, "rebuild": True}
    assert server["labels"]["pressluft-provider"] == "hz" and server["ipv4_id"] == fake.named("primary_ips")[
        "web1-ipv4"]["id"]
    assert server["networks"] == [fake.named("networks")["pressluft"]["id"]]
    assert fake.named("primary_ips")["web1-ipv4"]["protection"]["delete"] is True
    node = js("node", "show", "web1")
    assert node["host"] == fake.named("primary_ips")["web1-ipv4"]["ip"] and node["user"] == "root"
    assert node["state"] == "active"
    # The control plane's key logs in as root on the new server.
    ssh = ["ssh", "-i", node["ssh_key_path"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"root@{node['host']}", "hostname"]
    assert subprocess.run(ssh, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_rerun_changes_nothing(fleet):
    fake, _ = fleet
    before, server_id = len(fake.requests), fake.named("servers")["web1"]["id"]
    job = create_web1()
    done = work()
    assert done[0]["id"] == job["job_id"]
    stats = [e["data"] for e in js("jobs", "show", str(job["job_id"]))["events"]
             if e["data"].get("event") == "playbook_on_stats"]
    assert stats[-1]["changed"] == {}, stats
    assert mutations(fake, before) == []
    assert fake.named("servers")["web1"]["id"] == server_id
    # The node was active: it is again, with no node_provision queued.
    assert js("node", "show", "web1")["state"] == "active"
    assert js("jobs", "list", "--state", "queued") == []


def test_a_firewall_deleted_by_hand_comes_back(fleet):
    fake, _ = fleet
    fake.delete("firewalls", fake.named("firewalls")["pressluft-hz"]["id"])
    before, server_id = len(fake.requests), fake.named("servers")["web1"]["id"]
    create_web1()
    work()
    changed = mutations(fake, before)
    assert changed and all(path.startswith("/firewalls") for _m, path in changed), changed
    firewall = fake.named("firewalls")["pressluft-hz"]
    assert {r["port"] for r in firewall["rules"] if r["protocol"] == "tcp"} == {"22", "80", "443"}
    ssh_rule = next(r for r in firewall["rules"] if r["port"] == "22")
    assert sorted(ssh_rule["source_ips"]) == ["10.0.2.2/32", "127.0.0.0/8"]
    assert firewall["applied_to"][0]["label_selector"]["selector"] == "pressluft-provider=hz"
    assert fake.named("servers")["web1"]["id"] == server_id
    assert js("node", "show", "web1")["state"] == "active"


def test_placement_reads_the_server_over_ssh(fleet):
    from pressluft_lib.services import ControlPlane

    placed = ControlPlane().site_place()  # what `site create` without --node runs first
    assert placed["node"] == "web1", placed
    only = placed["candidates"][0]
    assert set(only["shares"]) == {"sites", "cpu", "memory", "disk"} and only["error"] is None
    assert "headroom" in placed["reason"] and "scarcest" in placed["reason"]


def test_destroy_lifts_protection_and_keeps_shared_resources(fleet):
    fake, booted = fleet
    refused = run("node", "destroy", "web1", "--json", ok=False)
    assert refused.exit_code == 2  # --json without --yes
    job = js("node", "destroy", "web1", "--yes")
    assert work()[0]["id"] == job["job_id"]
    assert not fake.named("servers") and not fake.named("primary_ips")
    assert "web1" not in booted
    assert fake.named("firewalls") and fake.named("ssh_keys") and fake.named("networks")
    assert js("node", "show", "web1")["state"] == "removed"
