"""Site capacity through the CLI on a real SQLite control plane (migrated by `db upgrade`): the guard at
`site create`, `node show`/`node list`, `node capacity`, and what node_provision reports.

Jobs end through the queue's own claim/finish, as test_cli_incarnations.py does (no playbook runs here).
"""

from __future__ import annotations

import json

from sqlalchemy import select, text

from pressluft_lib import capacity
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Environment, Node, Site
from tests.unit.cli.test_cli import active_node, js, run, snapshot, upgraded  # noqa: F401  (fixtures)
from tests.unit.cli.test_cli_incarnations import end


def unchanged(before: dict, after: dict) -> bool:
    """Equal but for the audit row of the refusal itself."""
    audit_before, audit_after = before.pop("audit_log"), after.pop("audit_log")
    return after == before and len(audit_after) - len(audit_before) in (0, 1)


def test_site_create_past_capacity_is_refused_with_nothing_changed(active_node):  # noqa: F811
    assert js("node", "capacity", "web1", "2") == {
        "name": "web1", "used": 0, "capacity": 2, "free": 2, "source": "override"}
    for site in ("one", "two"):
        js("site", "create", site, "--node", "web1")
    before = snapshot(active_node)
    refused = run("site", "create", "three", "--node", "web1", ok=False)
    assert refused.exit_code == 2
    assert "node web1 is full: 2 of 2 environments (override capacity)" in refused.stderr
    assert "pressluft node capacity web1 N" in refused.stderr
    assert unchanged(before, snapshot(active_node)), "a refused site create queues nothing"
    as_json = run("site", "create", "three", "--node", "web1", "--json", ok=False)
    assert json.loads(as_json.stdout)["error"]["code"] == "capacity_exceeded"

    shown = js("node", "show", "web1")
    assert shown["capacity"] == "2/2"
    assert shown["capacity_detail"] == {"used": 2, "capacity": 2, "free": 0, "source": "override"}
    assert "2/2" in run("node", "show", "web1").stdout
    assert "2/2" in run("node", "list").stdout


def test_a_retry_of_a_failed_create_and_a_deleted_site_free_no_slot_twice(active_node):  # noqa: F811
    js("node", "capacity", "web1", "1")
    js("site", "create", "one", "--node", "web1")
    end(active_node, "failed")
    assert js("site", "create", "one", "--node", "web1")["retry_of"], "a retry adds no environment"
    assert run("site", "create", "two", "--node", "web1", ok=False).exit_code == 2
    with db.session_factory(active_node).begin() as s:  # site_delete's end state
        site = s.scalar(select(Site).where(Site.name == "one"))
        site.state = "deleted"
        s.scalar(select(Environment).where(Environment.site_id == site.id)).state = "deleted"
    js("site", "create", "two", "--node", "web1")


def test_capacity_auto_derives_from_what_node_provision_reported(active_node):  # noqa: F811
    assert js("node", "show", "web1")["capacity_detail"]["source"] == "default"
    assert js("node", "show", "web1")["capacity"] == f"0/{capacity.DEFAULT_CAPACITY}"
    js("node", "capacity", "web1", "5")
    js("node", "provision", "web1")
    end(active_node, "succeeded", {"pressluft_node_limits": {"memory_mb": "16384", "limits_capacity": 4032}})
    assert js("node", "show", "web1")["capacity"] == "0/5", "the override stays until set back to auto"
    auto = js("node", "capacity", "web1", "auto")
    # min(4032 the limits allow, (16384 - 2048) MB / 12 MB) = 1194
    assert (auto["capacity"], auto["source"]) == (1194, "derived")
    shown = js("node", "show", "web1")
    assert (shown["memory_mb"], shown["limits_capacity"]) == (16384, 4032)

    js("node", "provision", "web1")  # a node that reports nonsense keeps what it reported before
    end(active_node, "succeeded", {"pressluft_node_limits": {"memory_mb": "lots", "limits_capacity": -3}})
    assert js("node", "show", "web1")["capacity"] == "0/1194"


def test_node_capacity_refuses_bad_values(active_node):  # noqa: F811
    before = snapshot(active_node)
    for bad in ("-1", "many", "1.5", str(capacity.MAX_CAPACITY + 1), ""):
        result = run("node", "capacity", "web1", bad, ok=False)
        assert result.exit_code == 2, (bad, result.output)
    assert run("node", "capacity", "nosuch", "5", ok=False).exit_code == 3
    assert unchanged(before, snapshot(active_node))


def test_derive_takes_the_smaller_bound():
    assert capacity.derive(None, None) is None
    assert capacity.derive(None, 992) == 992
    assert capacity.derive(4096, None) == (4096 - capacity.MEMORY_RESERVE_MB) // capacity.MB_PER_ENV
    assert capacity.derive(64 * 1024, 992) == 992
    assert capacity.derive(1024, 992) == 0, "less memory than the reserve: no room"


def test_usage_by_node_counts_live_environments_per_node(upgraded):  # noqa: F811
    sf = db.session_factory(upgraded)
    with sf.begin() as s:
        a = Node(name="a", host="h", state="active")
        b = Node(name="b", host="h", state="active", site_capacity=7)
        s.add_all([a, b])
        s.flush()
        for name, node, env_states in (("s1", a, ["active", "active"]), ("s2", a, ["deleted"]),
                                       ("s3", b, ["creating"])):
            site = Site(name=name, node_id=node.id, state="active")
            s.add(site)
            s.flush()
            s.add_all([Environment(site_id=site.id, name=f"e{i}", state=st)
                       for i, st in enumerate(env_states)])
    with sf() as s:
        ids = {n.name: n.id for n in s.scalars(select(Node))}
        usage = capacity.usage_by_node(s)
        assert usage[ids["a"]] == capacity.Usage(2, capacity.DEFAULT_CAPACITY, "default")
        assert usage[ids["b"]] == capacity.Usage(1, 7, "override")
        assert usage[ids["b"]].free == 6


def test_migration_0003_keeps_nodes_with_no_capacity_set(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    db.upgrade(url, "0002")
    engine = db.make_engine(url)
    now = "2026-12-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO nodes (id, name, host, port, user, local, provider, roles, state, "
                          "created_at, updated_at) VALUES (1, 'n1', 'h', 22, 'root', 0, 'static', '[]', "
                          f"'active', '{now}', '{now}')"))
    db.upgrade(url, "0003")
    with engine.begin() as conn:
        row = conn.execute(text("SELECT site_capacity, memory_mb, limits_capacity FROM nodes")).one()
    assert tuple(row) == (None, None, None)
    engine.dispose()
