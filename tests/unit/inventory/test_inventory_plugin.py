"""The pressluft.wordpress.pressluft inventory plugin over a real SQLite control-plane database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Domain, Environment, Node, Secret, Site
from tests.rig.ansible import collections_path
from tests.rig.postgres import postgres_cluster  # noqa: F401  (fixture)

BIN = Path(sys.executable).parent


@pytest.fixture
def dburl(tmp_path) -> str:
    return populate(f"sqlite:///{tmp_path / 'cp.db'}")


def populate(url: str) -> str:
    db.upgrade(url)
    factory = db.session_factory(url)
    with factory() as s, s.begin():
        web = Node(
            name="web1",
            host="10.0.0.1",
            port=2222,
            user="pressluft",
            ssh_key_path="/keys/web1",
            provider="hetzner",
            roles=["web", "db"],
            state="active",
        )
        local = Node(name="local1", host="localhost", local=True, state="active")
        gone = Node(name="gone1", host="10.0.0.9", state="removed")
        s.add_all([web, local, gone])
        s.flush()
        shop = Site(name="shop", node_id=web.id, php_version="8.2", state="active")
        blog = Site(name="blog", node_id=web.id, php_version="8.3", state="creating")
        s.add_all([shop, blog])
        s.flush()
        prod = Environment(site_id=shop.id, name="production", state="active")
        stage = Environment(site_id=shop.id, name="staging", state="active", php_version="8.3")
        bprod = Environment(site_id=blog.id, name="production", state="creating")
        s.add_all([prod, stage, bprod])
        s.flush()
        s.add_all(
            [
                Domain(env_id=prod.id, name="shop.example.com"),
                Domain(env_id=prod.id, name="www.shop.example.com"),
                Domain(env_id=stage.id, name="staging.shop.example.com"),
            ]
        )
        s.add(Secret(scope="env:shop_production", name="db_password", ciphertext=b"not-in-inventory"))
    return url


def inventory(
    tmp_path: Path, config: dict, *args: str, name: str = "cp.pressluft.yml"
) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"plugin": "pressluft.wordpress.pressluft", **config}))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-tmp"),
    }
    env.pop("PRESSLUFT_DB", None)
    return subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list", "--export", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _plain(value):
    """ansible-inventory marks inventory strings as {"__ansible_unsafe": ...}: unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def listed(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return _plain(json.loads(proc.stdout))


def members(data: dict, group: str) -> set[str]:
    return set(data.get(group, {}).get("hosts", []))


def test_hosts_groups_and_connection_vars(tmp_path, dburl):
    data = listed(inventory(tmp_path, {"db_url": dburl}))
    hv = data["_meta"]["hostvars"]
    assert set(hv) == {"web1", "local1"}, "removed nodes are not hosts"
    assert members(data, "pressluft") == {"web1", "local1"}
    assert members(data, "provider_hetzner") == {"web1"}
    assert members(data, "provider_static") == {"local1"}
    assert members(data, "role_web") == members(data, "role_db") == {"web1"}
    web = hv["web1"]
    assert (
        web["ansible_host"],
        web["ansible_port"],
        web["ansible_user"],
        web["ansible_ssh_private_key_file"],
    ) == ("10.0.0.1", 2222, "pressluft", "/keys/web1")
    assert "ansible_connection" not in web
    local = hv["local1"]
    assert local["ansible_connection"] == "local"
    assert Path(local["ansible_python_interpreter"]).name.startswith("python")
    assert "ansible_host" not in local


def test_environments_listed_without_secrets(tmp_path, dburl):
    data = listed(inventory(tmp_path, {"db_url": dburl}))
    envs = data["_meta"]["hostvars"]["web1"]["pressluft_environments"]
    assert envs == [
        {"site": "blog", "env": "production", "domains": [], "php_version": "8.3", "state": "creating"},
        {
            "site": "shop",
            "env": "production",
            "domains": ["shop.example.com", "www.shop.example.com"],
            "php_version": "8.2",
            "state": "active",
        },
        {
            "site": "shop",
            "env": "staging",
            "domains": ["staging.shop.example.com"],
            "php_version": "8.3",
            "state": "active",
        },
    ]
    assert data["_meta"]["hostvars"]["local1"]["pressluft_environments"] == []
    assert "not-in-inventory" not in json.dumps(data)


def test_constructed_compose_groups_keyed_groups(tmp_path, dburl):
    config = {
        "db_url": dburl,
        "compose": {"site_count": "pressluft_environments | map(attribute='site') | unique | length"},
        "groups": {"busy": "pressluft_environments | length > 2"},
        "keyed_groups": [
            {"key": "pressluft_environments | map(attribute='php_version') | unique", "prefix": "php"},
            {"key": "pressluft_node_state", "prefix": "state"},
        ],
    }
    data = listed(inventory(tmp_path, config))
    assert data["_meta"]["hostvars"]["web1"]["site_count"] == 2
    assert data["_meta"]["hostvars"]["local1"]["site_count"] == 0
    assert members(data, "busy") == {"web1"}
    assert members(data, "php_8_2") == members(data, "php_8_3") == {"web1"}
    assert members(data, "state_active") == {"web1", "local1"}


def test_strict_compose_error_fails(tmp_path, dburl):
    proc = inventory(tmp_path, {"db_url": dburl, "strict": True, "compose": {"x": "no_such_variable + 1"}})
    assert proc.returncode != 0
    assert "no_such_variable" in proc.stderr


def test_cache_serves_old_data_until_flushed(tmp_path, dburl):
    config = {
        "db_url": dburl,
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
        "cache_timeout": 3600,
    }
    assert set(listed(inventory(tmp_path, config))["_meta"]["hostvars"]) == {"web1", "local1"}
    with db.session_factory(dburl)() as s, s.begin():
        s.add(Node(name="web2", host="10.0.0.2", state="active"))
    assert set(listed(inventory(tmp_path, config))["_meta"]["hostvars"]) == {"web1", "local1"}, (
        "served from cache"
    )
    fresh = listed(inventory(tmp_path, config, "--flush-cache"))
    assert set(fresh["_meta"]["hostvars"]) == {"web1", "local1", "web2"}
    without = listed(inventory(tmp_path, {"db_url": dburl}, name="nocache.pressluft.yml"))
    assert "web2" in without["_meta"]["hostvars"]


def test_include_states_filters_nodes(tmp_path, dburl):
    data = listed(inventory(tmp_path, {"db_url": dburl, "include_states": ["removed"]}))
    assert set(data["_meta"]["hostvars"]) == {"gone1"}


def test_db_url_from_environment_and_missing_database(tmp_path, dburl, monkeypatch):
    monkeypatch.setenv("PRESSLUFT_DB", dburl)
    path = tmp_path / "env.pressluft.yml"
    path.write_text("plugin: pressluft.wordpress.pressluft\n")
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
    }
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert set(listed(proc)["_meta"]["hostvars"]) == {"web1", "local1"}
    missing = inventory(tmp_path, {"db_url": f"sqlite:///{tmp_path / 'nope.db'}"})
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "nope.db").exists(), "the inventory never creates a database"


def test_other_file_names_are_not_claimed(tmp_path, dburl):
    proc = inventory(tmp_path, {"db_url": dburl}, name="hosts.yml")
    assert proc.returncode != 0, "a file not named *.pressluft.yml must not be parsed by the plugin"


def test_postgresql_gives_the_same_inventory(tmp_path, dburl, postgres_cluster):  # noqa: F811
    pg_url = populate(postgres_cluster.create_database("inventory_test"))
    from_pg = listed(inventory(tmp_path, {"db_url": pg_url}, name="pg.pressluft.yml"))
    from_sqlite = listed(inventory(tmp_path, {"db_url": dburl}))
    assert from_pg["_meta"]["hostvars"]["web1"]["ansible_user"] == "pressluft", (
        '"user" is quoted for PostgreSQL'
    )
    assert from_pg == from_sqlite
    wrong = pg_url.replace(postgres_cluster.password, "wrong-password-0123")
    failed = inventory(tmp_path, {"db_url": wrong}, name="bad.pressluft.yml")
    assert failed.returncode != 0
    assert "cannot read the Pressluft database" in failed.stderr
    assert "wrong-password-0123" not in failed.stderr + failed.stdout, "the URL's password is never shown"
