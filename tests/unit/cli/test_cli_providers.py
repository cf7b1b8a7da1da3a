"""`pressluft provider ...` and `node create`'s checks against the fake Hetzner Cloud API
(tests/rig/hcloud_api.py, served in-process on loopback; no podman: the node_create job itself is
tests/integration/test_fleet.py)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from sqlalchemy import select

from pressluft_lib.storage import db
from pressluft_lib.storage.models import AuditLog, Job, Provider, Secret
from tests.rig.hcloud_api import FakeHcloud
from tests.unit.cli.test_cli import js, run, snapshot


@pytest.fixture
def fake():
    with FakeHcloud() as f:
        yield f


def add(fake, token: str, *extra: str, ok: bool = True):
    return run("provider", "add", "hetzner", "hz", "--admin-cidr", "203.0.113.7/32", "--endpoint",
               fake.endpoint, *extra, input=token + "\n", ok=ok)


def test_invalid_token_is_refused_and_nothing_is_stored(upgraded, fake):
    before = snapshot(upgraded)
    refused = add(fake, "not-the-token", "--json", ok=False)
    assert refused.exit_code == 2
    assert json.loads(refused.stdout)["error"]["code"] == "invalid_input"
    assert "unauthorized" in refused.stdout and "not-the-token" not in refused.stdout + refused.stderr
    after = snapshot(upgraded)
    assert after["providers"] == before["providers"] == [] and after["secrets"] == before["secrets"]
    # Input checks before any request: a token with spaces, a bad CIDR, an endpoint with credentials.
    assert add(fake, "two words", ok=False).exit_code == 2
    assert run("provider", "add", "hetzner", "hz", "--admin-cidr", "300.1.2.3/8", "--endpoint", fake.endpoint,
               input=fake.token + "\n", ok=False).exit_code == 2
    bad_url = "http://user:" + fake.token + "@127.0.0.1:1/v1"
    res = run("provider", "add", "hetzner", "hz", "--admin-cidr", "203.0.113.7/32", "--endpoint", bad_url,
              input=fake.token + "\n", ok=False)
    assert res.exit_code == 2 and fake.token not in res.stdout + res.stderr
    assert run("provider", "add", "hetzner", "Bad_Name", "--admin-cidr", "203.0.113.7/32",
               input=fake.token + "\n", ok=False).exit_code == 2


def test_token_is_checked_stored_encrypted_and_never_shown(upgraded, fake):
    added = json.loads(add(fake, fake.token, "--json").stdout)
    assert added["name"] == "hz" and added["admin_cidrs"] == ["203.0.113.7/32"]
    assert ("GET", "/locations") in fake.requests  # validated against the API
    key = added["ssh_key"].removesuffix(".pub")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    outputs = "".join(run(*a).stdout for a in (
        ["provider", "list"], ["provider", "list", "--json"], ["audit", "list", "--json"],
        ["provider", "catalog", "hz", "--json"],
    ))
    assert fake.token not in outputs + json.dumps(added)
    sf = db.session_factory(upgraded)
    with sf() as s:
        secret = s.scalar(select(Secret).where(Secret.scope == "provider:hz"))
        assert secret is not None and fake.token.encode() not in secret.ciphertext
        assert s.scalar(select(Provider)).name == "hz"
        audits = json.dumps([a.detail for a in s.scalars(select(AuditLog))])
    assert fake.token not in audits
    with open(upgraded.removeprefix("sqlite:///"), "rb") as fh:
        assert fake.token.encode() not in fh.read()
    assert add(fake, fake.token, ok=False).exit_code == 4  # exists


def test_catalog_lists_types_prices_locations_images_profiles(upgraded, fake):
    add(fake, fake.token)
    cat = js("provider", "catalog", "hz")
    types = {t["name"]: t for t in cat["server_types"]}
    assert types["cx22"]["monthly_eur"] == {"fsn1": "4.51", "nbg1": "4.51"}
    assert types["cx32"]["cores"] == 4 and types["cx32"]["memory_gb"] == 8.0
    assert [loc["name"] for loc in cat["locations"]] == ["fsn1", "nbg1"]
    assert cat["images"] == ["debian-12"] and cat["currency"] == "EUR"
    assert {p["name"] for p in cat["profiles"]} == {"small", "medium", "large"}
    human = run("provider", "catalog", "hz").stdout
    assert "cx22" in human and "4.51" in human and "Falkenstein" in human
    # A revoked token: the catalog says so (exit 2), without the token.
    fake.token = "rotated-elsewhere"
    res = run("provider", "catalog", "hz", ok=False)
    assert res.exit_code == 2 and "unauthorized" in res.stderr + res.stdout


def test_node_create_checks_names_against_the_catalog(upgraded, fake):
    add(fake, fake.token)
    before = snapshot(upgraded)
    for args in (["--type", "cx99", "--location", "fsn1"], ["--type", "cx22", "--location", "mars1"],
                 ["--type", "cx22", "--location", "fsn1", "--image", "windows-11"],
                 ["--type", "CX22;rm", "--location", "fsn1"], ["--profile", "huge", "--location", "fsn1"]):
        res = run("node", "create", "web1", "--provider", "hz", *args, ok=False)
        assert res.exit_code == 2, (args, res.stdout, res.stderr)
    assert run("node", "create", "web1", "--provider", "nope", "--type", "cx22", "--location", "fsn1",
               ok=False).exit_code == 3
    assert {k: v for k, v in snapshot(upgraded).items() if k != "audit_log"} == {
        k: v for k, v in before.items() if k != "audit_log"}
    job = js("node", "create", "web1", "--provider", "hz", "--profile", "small", "--location", "fsn1")
    assert job["server_type"] == "cx22"
    with db.session_factory(upgraded)() as s:
        row = s.get(Job, job["job_id"])
        assert row.type == "node_create" and row.payload["pressluft_network_zone"] == "eu-central"
        assert row.payload["pressluft_provision"]["variables"]["node_mariadb_buffer_pool_mb"] == "512"
        assert fake.token not in json.dumps(row.payload)
    # Another server under the same name is refused while the first is queued or exists.
    assert run("node", "create", "web1", "--provider", "hz", "--type", "cx32", "--location", "fsn1",
               ok=False).exit_code == 4
    assert run("provider", "remove", "hz", ok=False).exit_code == 4  # it has a node


def test_provider_remove_forgets_the_token(upgraded, fake):
    add(fake, fake.token)
    assert js("provider", "remove", "hz")["removed"] is True
    assert js("provider", "list") == []
    with db.session_factory(upgraded)() as s:
        assert s.scalar(select(Secret).where(Secret.scope == "provider:hz")) is None
    assert run("provider", "remove", "hz", ok=False).exit_code == 3


def test_provider_remove_deletes_the_row_and_destroyed_nodes_keep_its_name(upgraded, fake):
    """A destroyed node's account goes too (it used to stay without its token, so the same name could not be
    added again); the node keeps the account's name in its record. Live nodes still block the removal."""
    from pressluft_lib.storage.models import Node

    add(fake, fake.token)
    with db.session_factory(upgraded).begin() as s:
        hz = s.scalar(select(Provider).where(Provider.name == "hz"))
        s.add(Node(name="gone", host="198.51.100.9", state="removed", provider="hcloud", provider_id=hz.id,
                   cloud={"server_type": "cx22", "location": "fsn1", "server_id": 7}))
        s.add(Node(name="live", host="198.51.100.8", state="active", provider="hcloud", provider_id=hz.id))
    refused = run("provider", "remove", "hz", "--json", ok=False)
    assert refused.exit_code == 4 and "live" in refused.stdout and "gone" not in refused.stdout
    with db.session_factory(upgraded).begin() as s:
        s.scalar(select(Node).where(Node.name == "live")).state = "removed"
    assert js("provider", "remove", "hz")["removed"] is True
    with db.session_factory(upgraded)() as s:
        assert s.scalar(select(Provider)) is None
        gone = s.scalar(select(Node).where(Node.name == "gone"))
        assert gone.provider_id is None and gone.cloud == {
            "server_type": "cx22", "location": "fsn1", "server_id": 7, "provider": "hz"}
    assert js("provider", "list") == []
    add(fake, fake.token)  # the name is free again
    assert [p["name"] for p in js("provider", "list")] == ["hz"]


def test_release_input_is_refused_before_anything_changes(upgraded):
    """`site ip --release` takes no --name (a site has one floating IP) and, in machine mode, needs --yes."""
    before = snapshot(upgraded)
    for args in (("--release", "--name", "other-ip", "--yes"), ("--release", "--json")):
        res = run("site", "ip", "shop", *args, ok=False)
        assert res.exit_code == 2, (args, res.stdout, res.stderr)
    assert snapshot(upgraded) == before
