"""`site ip` (job site_ip) and the floating IP in `site move` on the control plane (SQLite and PostgreSQL):
refusals before anything is queued, the after hook that links the IP the playbook reported (and only a
valid one), the move's payload that carries the IP to switch, and its confirm that takes it off the old node.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from pressluft_lib import jobtypes, names, queue
from pressluft_lib.errors import ConflictError, ValidationError
from pressluft_lib.execution.runner import job_vars, load_secrets
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import FloatingIp, Job, Node, Provider
from pressluft_lib.storage.secret_store import SecretStore

TOKEN = "hz-token-3b9c1e-never-shown"


@pytest.fixture
def cp(sf, make_site, monkeypatch) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production", node="old")
    make_site("blog", env="production", node="spare")
    make_site("plain", env="production", node="static")
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    with sf.begin() as s:
        hz = Provider(name="hz", kind="hetzner", api_endpoint="http://127.0.0.1:9/v1",
                      admin_cidrs=["10.0.0.0/8"])
        s.add(hz)
        s.flush()
        for node in s.scalars(select(Node).where(Node.name.in_(("old", "spare")))):
            node.provider_id, node.cloud = hz.id, {"location": "fsn1", "server_id": node.id}
        SecretStore(url=url).put(s, names.provider_secret_scope("hz"), names.PROVIDER_TOKEN, TOKEN)
    plane = ControlPlane(url, actor="tester")
    plane.backup_repo_set("s3:http://10.0.2.2:9000/b/p", password="restic-Pw-7f3e9a-xx")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def finish(cp, job_id: int, state: str, artifacts: dict) -> None:
    job = queue.claim(cp.session_factory, "w1")
    assert job.id == job_id
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed", None,
                            worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, artifacts)


def queued(cp) -> int:
    with cp.session_factory() as s:
        return len(s.scalars(select(Job)).all())


def reported(name: str, address: str, node: str) -> dict:
    return {"pressluft_floating_ip": {"name": name, "address": address, "node": node}}


def test_refused_before_anything_is_queued(cp):
    with pytest.raises(ValidationError, match="not created from a provider"):
        cp.site_ip("plain")
    for bad in ("Shop_IP", "-x", "a" * 64, "x y"):
        with pytest.raises(ValidationError, match="invalid floating IP name"):
            cp.site_ip("shop", bad)
    assert queued(cp) == 0


def test_site_ip_links_only_a_reported_valid_ip_then_the_move_switches_it(cp):
    made = cp.site_ip("shop")
    assert (made["floating_ip"], made["node"]) == ("shop-ip", "old")
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        extra, site, env = job_vars(s, job)
        assert (extra["pressluft_floating_ip"], extra["pressluft_target"]) == ("shop-ip", "old")
        assert extra["pressluft_api_endpoint"] == "http://127.0.0.1:9/v1"
        assert TOKEN not in str(job.payload)
        secrets = load_secrets(s, cp.url, site, env, jobtypes.get("site_ip").secret_scopes, "hz")
        assert secrets["pressluft_api_token"] == TOKEN
    # A run that reports garbage (or another name) links nothing.
    finish(cp, made["job_id"], "succeeded", reported("shop-ip", "999.1.2.3; rm -rf /", "old"))
    assert cp.site_show("shop")["floating_ip"] is None
    made = cp.site_ip("shop")
    finish(cp, made["job_id"], "succeeded", reported("other-ip", "198.51.100.7", "old"))
    assert cp.site_show("shop")["floating_ip"] is None
    made = cp.site_ip("shop")
    finish(cp, made["job_id"], "succeeded", reported("shop-ip", "198.51.100.7", "old"))
    assert cp.site_show("shop")["floating_ip"] == {"name": "shop-ip", "address": "198.51.100.7"}

    with pytest.raises(ConflictError, match="has floating IP shop-ip"):
        cp.site_ip("shop", "second")
    with pytest.raises(ConflictError, match="belongs to site shop"):
        cp.site_ip("blog", "shop-ip")
    # A node of no provider account (or another) cannot take the IP.
    with pytest.raises(ConflictError, match="node static cannot take"):
        cp.site_move("shop", "static")

    move = cp.site_move("shop", "spare")
    assert move["floating_ip"] == {"name": "shop-ip", "address": "198.51.100.7"}
    with cp.session_factory() as s:
        extra = job_vars(s, s.get(Job, move["job_id"]))[0]
        assert (extra["pressluft_floating_ip"], extra["pressluft_floating_ip_address"]) == (
            "shop-ip", "198.51.100.7")
    moved = {"id": move["backup_id"], "source": "old", "node": "spare", "release": "r1", "moved": True}
    backup = {"pressluft_backup": {"id": move["backup_id"], "location": "/x", "manifest": {},
                                   "restic_snapshot": "ab12"}}
    finish(cp, move["job_id"], "succeeded", {**backup, "pressluft_move": moved})
    confirm = cp.site_move_confirm("shop")
    with cp.session_factory() as s:
        extra = job_vars(s, s.get(Job, confirm["job_id"]))[0]
        assert (extra["pressluft_target"], extra["pressluft_floating_ip_address"]) == ("old", "198.51.100.7")
        assert s.scalar(select(FloatingIp.address)) == "198.51.100.7"


def test_restore_to_moves_the_ip_to_a_server_of_its_account_and_never_refuses_for_it(cp):
    """Disaster recovery with a floating IP: the rebuild's job carries the IP to switch when the target is a
    server of the IP's account (and gets that account's token); on any other node it runs without, and says
    the IP stays where it is."""
    from tests.unit.lib.test_lib_rebuild import add_backup

    made = cp.site_ip("shop")
    finish(cp, made["job_id"], "succeeded", reported("shop-ip", "198.51.100.7", "old"))
    good = add_backup(cp)
    elsewhere = cp.restore_to("shop", "production", "static", good)
    assert elsewhere["floating_ip"] == {"name": "shop-ip", "address": "198.51.100.7", "switched": False,
                                        "note": elsewhere["floating_ip"]["note"]}
    assert "stays where it is" in elsewhere["floating_ip"]["note"]
    with cp.session_factory() as s:
        extra = job_vars(s, s.get(Job, elsewhere["job_id"]))[0]
        assert "pressluft_floating_ip" not in extra
    finish(cp, elsewhere["job_id"], "failed", {})
    cp.reset_env("shop", "production")  # as after a failed rebuild: the environment may be restored again

    rebuilt = cp.restore_to("shop", "production", "spare", good)
    assert rebuilt["floating_ip"] == {"name": "shop-ip", "address": "198.51.100.7", "switched": True,
                                      "note": None}
    keys = ("pressluft_target", "pressluft_floating_ip", "pressluft_floating_ip_address",
            "pressluft_api_endpoint")
    scopes = jobtypes.get("env_rebuild").secret_scopes
    with cp.session_factory() as s:
        extra = job_vars(s, s.get(Job, rebuilt["job_id"]))[0]
        assert [extra[k] for k in keys] == ["spare", "shop-ip", "198.51.100.7", "http://127.0.0.1:9/v1"]
        secrets = load_secrets(s, cp.url, "shop", "production", scopes, "hz")
    assert secrets["pressluft_api_token"] == TOKEN


def test_release_takes_the_ip_off_the_node_then_the_site_can_go(cp):
    """`site ip --release`: the job carries the address to take off the node and the IP to delete; only a
    release the playbook reported unlinks it. A site with a floating IP is not deleted before that."""
    from pressluft_lib.errors import NotFound

    with pytest.raises(NotFound, match="has no floating IP"):
        cp.site_ip_release("shop")
    made = cp.site_ip("shop")
    finish(cp, made["job_id"], "succeeded", reported("shop-ip", "198.51.100.7", "old"))
    with pytest.raises(ConflictError, match=r"release it first \(pressluft site ip shop --release\)"):
        cp.site_delete("shop")
    for state, artifacts in (("failed", {}), ("succeeded", {}),
                             ("succeeded", {"pressluft_floating_ip": {"name": "other", "released": True}})):
        release = cp.site_ip_release("shop")
        finish(cp, release["job_id"], state, artifacts)
        assert cp.site_show("shop")["floating_ip"] == {"name": "shop-ip", "address": "198.51.100.7"}
    release = cp.site_ip_release("shop")
    assert (release["floating_ip"], release["address"], release["node"]) == ("shop-ip", "198.51.100.7", "old")
    with cp.session_factory() as s:
        extra = job_vars(s, s.get(Job, release["job_id"]))[0]
    assert (extra["pressluft_floating_ip"], extra["pressluft_floating_ip_state"],
            extra["pressluft_floating_ip_address"]) == ("shop-ip", "absent", "198.51.100.7")
    released = {"pressluft_floating_ip": {"name": "shop-ip", "released": True}}
    finish(cp, release["job_id"], "succeeded", released)
    assert cp.site_show("shop")["floating_ip"] is None
    assert cp.site_delete("shop")["site"] == "shop"
