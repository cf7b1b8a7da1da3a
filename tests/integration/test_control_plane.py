"""End to end through the control plane: pressluft CLI -> queue -> worker -> ansible-runner -> a real node.

node add (podman node) -> node provision -> worker -> site create -> worker -> HTTP 200 with the
site's title; then: secrets appear in no job event, CLI output or leftover file; a stale fencing
token is refused on the node; site delete frees the site's domain.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from pressluft_lib.storage import db
from pressluft_lib.storage.models import JobEvent
from pressluft_lib.storage.secret_store import SecretStore
from tests.rig.control_plane import add_node, http_get, js, run, work
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

TITLE = "Control Plane Shop"


@pytest.fixture(scope="module")
def site(control_plane, provisioned_node):
    """Site `shop` on a node of the provisioned image, through the CLI and the worker: node add, node
    provision (a rerun here: the job path is what this file checks, test_node_provision.py checks a
    first install), site create."""
    node = provisioned_node
    add_node(node, provision=True)
    created = js("site", "create", "shop", "--node", node.name, "--domain", "shop.example.test",
                 "--wordpress", str(wordpress_archive()), "--title", TITLE)
    assert work()[0]["id"] == created["job_id"]
    return node


def test_site_serves_through_the_control_plane(site):
    status, body = http_get(site, "shop.example.test")
    assert status == 200, body[:500]
    assert TITLE in body
    assert js("node", "show", site.name)["state"] == "active"
    shown = js("site", "show", "shop")
    assert shown["state"] == "active"
    assert shown["environments"][0]["state"] == "active"
    assert site.unit_active("nginx")
    # ondemand workers exit after the idle timeout: look right after a request (again if the host was slow).
    for _ in range(3):
        http_get(site, "shop.example.test")
        owners = site.sh("ps -o user:32=,args= -C php-fpm8.2 | grep 'pool shop_production' || true")
        if owners:
            break
    assert owners and all(line.split()[0] == "shop_production" for line in owners.splitlines()), owners


def test_secrets_appear_nowhere(site, control_plane):
    url = f"sqlite:///{control_plane / 'pressluft.db'}"
    sf = db.session_factory(url)
    store = SecretStore(url=url)
    with sf() as s:
        secrets = [store.get(s, "env:shop_production", n) for n in store.names(s, "env:shop_production")]
        events = json.dumps([e.data for e in s.scalars(select(JobEvent))])
    node_secrets = json.loads(site.exec("cat", "/etc/pressluft/secrets/shop_production.json").stdout)
    secrets += [v for v in node_secrets.values() if isinstance(v, str) and len(v) >= 12]
    assert len(secrets) >= 3
    outputs = "".join(
        run(*args).stdout
        for args in (
            ["jobs", "list", "--json"],
            ["jobs", "show", "1", "--json"],
            ["jobs", "show", "2", "--json"],
            ["site", "show", "shop", "--json"],
            ["audit", "list", "--json"],
            ["jobs", "show", "2"],
        )
    )
    leftovers = [p for p in control_plane.rglob("*") if p.is_file() and p.name not in ("pressluft.db",)]
    for secret in secrets:
        assert secret not in events, "a secret reached job_events"
        assert secret not in outputs, "a secret reached CLI output"
        for path in leftovers:
            assert secret.encode() not in path.read_bytes(), f"a secret was left in {path}"
    assert not list((control_plane / "runs").iterdir()), "run directories are removed"
    raw = (control_plane / "pressluft.db").read_bytes()
    for secret in secrets:
        assert secret.encode() not in raw, "secrets are stored encrypted only"


def test_control_plane_passwords_are_the_sites(site, control_plane):
    """The passwords in the control plane's secret store are the ones the node uses."""
    url = f"sqlite:///{control_plane / 'pressluft.db'}"
    store = SecretStore(url=url)
    with db.session_factory(url)() as s:
        names = ("db_password", "wordpress_admin_password")
        ours = {n: store.get(s, "env:shop_production", n) for n in names}
    node_secrets = json.loads(site.exec("cat", "/etc/pressluft/secrets/shop_production.json").stdout)
    assert ours["db_password"] == node_secrets["db_password"]
    assert ours["wordpress_admin_password"] == node_secrets["wordpress_admin_password"]
    # ... and the ones MariaDB and WordPress accept (Ansible once masked them on the way: the node's
    # file was right while the database user and the admin got a placeholder string).
    login = site.exec(
        "mysql", "--user=shop_production", f"--password={ours['db_password']}", "-N", "-e", "SELECT 1",
        "shop_production", check=False,
    )  # fmt: skip
    assert (login.returncode, login.stdout.strip()) == (0, "1"), login.stderr
    check = (
        "require '/var/www/sites/shop/production/current/wp-load.php';"
        "$u = get_user_by('login', 'admin');"
        "echo wp_check_password(trim(fgets(STDIN)), $u->user_pass, $u->ID) ? 'accepted' : 'refused';"
    )
    verdict = site.exec("php", "-r", check, input=ours["wordpress_admin_password"] + "\n", check=False)
    assert verdict.stdout.strip().endswith("accepted"), (verdict.stdout, verdict.stderr)


def node_secrets(site) -> dict:
    return json.loads(site.exec("cat", "/etc/pressluft/secrets/shop_production.json").stdout)


def stored(control_plane) -> dict:
    url = f"sqlite:///{control_plane / 'pressluft.db'}"
    with db.session_factory(url)() as s:
        store = SecretStore(url=url)
        names = ("db_password", "wordpress_admin_password")
        return {n: store.get(s, "env:shop_production", n) for n in names}


def db_login(site, password: str):
    return site.exec("env", f"MYSQL_PWD={password}", "mysql", "--user=shop_production", "-N", "-e",
                     "SELECT 1", "shop_production", check=False)


def redis_set(site, password: str) -> str:
    return site.exec("env", f"REDISCLI_AUTH={password}", "redis-cli", "--no-auth-warning", "-s",
                     "/run/redis/redis-server.sock", "--user", "shop_production", "SET", "shop_production:k",
                     "v", check=False).stdout.strip()


def admin_accepts(site, password: str) -> bool:
    check = ("require '/var/www/sites/shop/production/current/wp-load.php';"
             "$u = get_user_by('login', 'admin');"
             "echo wp_check_password(trim(fgets(STDIN)), $u->user_pass, $u->ID) ? 'accepted' : 'refused';")
    out = site.exec("runuser", "-u", "shop_production", "--", "php", "-r", check, input=password + "\n",
                    check=False)
    return out.stdout.strip().endswith("accepted")


def all_values(secrets: dict) -> list[str]:
    out = [v for v in secrets.values() if isinstance(v, str)]
    return out + [v for v in secrets.get("salts", {}).values()]


def shape(config: str, secrets: dict) -> str:
    """wp-config.php with each secret replaced by its name."""
    for key in ("db_password", "redis_password"):
        config = config.replace(secrets[key], f"<{key}>")
    for key, value in secrets["salts"].items():
        config = config.replace(value, f"<{key}>")
    return config


def test_secrets_rotate_through_the_worker(site, control_plane):
    """secrets rotate --admin-password: every secret is new, the old ones stop working, the store follows
    the node only after the job succeeded, and no secret reaches an event, the audit log or the CLI."""
    before, before_store = node_secrets(site), stored(control_plane)
    config_before = site.exec("cat", "/var/www/sites/shop/production/shared/wp-config.php").stdout
    job = js("secrets", "rotate", "shop", "--admin-password")
    assert work()[0]["id"] == job["job_id"]
    after, after_store = node_secrets(site), stored(control_plane)
    assert "rotation" not in after
    for key in ("db_password", "redis_password", "wordpress_admin_password"):
        assert after[key] != before[key], key
    assert all(after["salts"][k] != before["salts"][k] for k in before["salts"]) and len(after["salts"]) == 8
    assert after_store == {"db_password": after["db_password"],
                           "wordpress_admin_password": after["wordpress_admin_password"]}
    config = site.exec("cat", "/var/www/sites/shop/production/shared/wp-config.php").stdout
    assert not any(v in config for v in all_values(before))
    assert all(v in config for v in all_values(after) if v != after["wordpress_admin_password"])
    assert shape(config, after) == shape(config_before, before)  # the same file, only the values changed
    assert db_login(site, after["db_password"]).returncode == 0
    assert db_login(site, before["db_password"]).returncode == 1
    assert redis_set(site, after["redis_password"]) == "OK"
    assert redis_set(site, before["redis_password"]).startswith(("NOAUTH", "WRONGPASS"))
    assert admin_accepts(site, after["wordpress_admin_password"])
    assert not admin_accepts(site, before["wordpress_admin_password"])
    status, body = http_get(site, "shop.example.test")
    assert status == 200 and TITLE in body
    shown = js("jobs", "show", str(job["job_id"]))
    assert {"stored": ["db_password", "wordpress_admin_password"]} in [e["data"] for e in shown["events"]]
    url = f"sqlite:///{control_plane / 'pressluft.db'}"
    with db.session_factory(url)() as s:
        events = json.dumps([e.data for e in s.scalars(select(JobEvent))])
    shown = (["jobs", "list", "--json"], ["audit", "list", "--json"], ["jobs", "show", str(job["job_id"])])
    outputs = events + "".join(run(*a).stdout for a in shown)
    raw = (control_plane / "pressluft.db").read_bytes()
    for value in all_values(before) + all_values(after) + list(before_store.values()):
        assert value not in outputs and value.encode() not in raw


def test_an_interrupted_rotation_is_completed_with_the_same_values(site, control_plane, tmp_path):
    """The admin step fails (no such login) after wp-config.php changed: the site keeps serving on both
    passwords, the store keeps the old ones; the next rotation finishes with the values already pending."""
    from tests.rig.ansible import run_playbook
    from tests.rig.nodes import inventory

    before, before_store = node_secrets(site), stored(control_plane)
    broken = run_playbook("secrets_rotate.yml", inventory([site]), tmp_path, extravars={
        "pressluft_target": "nodes", "pressluft_site": "shop", "pressluft_rotate_admin": True,
        "pressluft_wordpress_admin_user": "nosuchadmin"})
    assert broken.rc != 0, broken.explain()
    assert "Invalid user ID, email or login: 'nosuchadmin'" in broken.stdout, broken.explain()
    assert "phases done: generate, accept both, wp-config.php, drain" in broken.stdout
    pending = node_secrets(site)["rotation"]
    assert not any(v in broken.stdout + broken.stderr for v in all_values(pending) + all_values(before))
    assert stored(control_plane) == before_store
    for password in (before["db_password"], pending["db_password"]):
        assert db_login(site, password).returncode == 0  # both work while a rotation is pending
    status, body = http_get(site, "shop.example.test")
    assert status == 200 and TITLE in body
    job = js("secrets", "rotate", "shop")
    assert work()[0]["id"] == job["job_id"]
    after = node_secrets(site)
    assert "rotation" not in after
    assert (after["db_password"], after["wordpress_admin_password"]) == (pending["db_password"],
                                                                  pending["wordpress_admin_password"])
    assert stored(control_plane) == {"db_password": pending["db_password"],
                                     "wordpress_admin_password": pending["wordpress_admin_password"]}
    assert db_login(site, before["db_password"]).returncode == 1
    assert admin_accepts(site, pending["wordpress_admin_password"])


def test_stale_fencing_token_refused_on_the_node(site):
    # Another control plane (or a restored database) already applied token 100 to this site.
    site.exec("sh", "-c", "echo 100 > /var/lib/pressluft/fencing/shop")
    listing = "ls -l --time-style=+%s /etc/nginx/pressluft-sites/ /var/www/sites/shop/production/shared"
    before = site.sh(listing)
    job_id = js("site", "delete", "shop", "--yes")["job_id"]
    done = js("worker", "--once")["jobs"]
    assert [(j["id"], j["state"]) for j in done] == [(job_id, "failed")]
    shown = js("jobs", "show", str(job_id))
    assert shown["fencing_token"] < 100
    messages = " ".join(str(e["data"].get("msg", "")) for e in shown["events"])
    assert "stale fencing token" in messages
    assert site.sh("cat /var/lib/pressluft/fencing/shop").strip() == "100"
    assert site.sh(listing) == before, "nothing changed on the node"
    assert site.exec("id", "shop_production", check=False).returncode == 0
    status, body = http_get(site, "shop.example.test")
    assert status == 200 and TITLE in body
    assert js("site", "show", "shop")["state"] == "failed"
    run("reset", "site", "shop")
    run("reset", "env", "shop", "production")
    site.exec("sh", "-c", "echo 0 > /var/lib/pressluft/fencing/shop")


def test_site_delete_frees_the_site(site):
    job = js("site", "delete", "shop", "--yes")
    assert work()[0]["id"] == job["job_id"]
    assert js("site", "show", "shop")["state"] == "deleted"
    assert site.exec("id", "shop_production", check=False).returncode != 0
    status, _ = http_get(site, "shop.example.test", timeout=5)
    assert status != 200


# -- site incarnations (docs/contracts.md, "Fencing tokens"); they follow the delete above ------------


def fencing_record(node, site: str = "shop") -> dict:
    """The node's fencing record of the site (JSON; docs/contracts.md)."""
    return json.loads(node.sh(f"cat /var/lib/pressluft/fencing/{site}"))


def create_shop(node_name: str) -> dict:
    return js("site", "create", "shop", "--node", node_name, "--domain", "shop.example.test",
              "--wordpress", str(wordpress_archive()), "--title", TITLE)


def refusal(job_id: int) -> str:
    shown = js("jobs", "show", str(job_id))
    assert shown["state"] == "failed", shown["state"]
    return " ".join(str(e["data"].get("msg", "")) for e in shown["events"])


def test_a_deleted_name_is_created_again(site):
    old = js("site", "show", "shop")
    assert old["state"] == "deleted" and fencing_record(site)["retired"] is True
    created = create_shop(site.name)
    assert work()[0]["id"] == created["job_id"]
    new = js("site", "show", "shop")
    assert new["state"] == "active" and new["incarnation"] != old["incarnation"]
    record = fencing_record(site)
    assert (record["token"], record["incarnation"], record["retired"]) == (1, new["incarnation"], False)
    status, body = http_get(site, "shop.example.test")
    assert status == 200 and TITLE in body


@pytest.fixture(scope="module")
def second_control_plane(site, tmp_path_factory):
    """Another data directory and database with the same (already provisioned) node, for the rest of
    this module."""
    from pressluft_lib.storage.models import Node
    from pressluft_lib.storage.transitions import transition

    home = tmp_path_factory.mktemp("cp2")
    url = f"sqlite:///{home / 'pressluft.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRESSLUFT_HOME", str(home))
        mp.setenv("PRESSLUFT_DB", url)
        run("db", "upgrade")
        js("node", "add", site.name, "--host", "127.0.0.1", "--port", str(site.ssh_port),
           "--user", "pressluft", "--ssh-key", str(site.key_file))
        with db.session_factory(url).begin() as s:  # provisioned by the first control plane above
            node = s.scalar(select(Node).where(Node.name == site.name))
            transition(s, node, "provisioning", actor="test")
            transition(s, node, "active", actor="test")
        yield url


def test_a_second_data_directory_against_the_same_node(site, control_plane, second_control_plane):
    first = {"PRESSLUFT_HOME": str(control_plane), "PRESSLUFT_DB": f"sqlite:///{control_plane}/pressluft.db"}
    owner = fencing_record(site)
    # The first control plane's shop is live: the second one's create is refused, changing nothing.
    created = create_shop(site.name)
    assert [j["state"] for j in work("failed")] == ["failed"]
    message = refusal(created["job_id"])
    assert f"site shop on this node is incarnation {owner['incarnation']}" in message
    assert "pressluft site adopt shop" in message
    assert fencing_record(site) == owner
    status, body = http_get(site, "shop.example.test")
    assert status == 200 and TITLE in body
    # Once the first control plane deleted its shop, the second one's retry creates its own.
    with pytest.MonkeyPatch.context() as mp:
        for key, value in first.items():
            mp.setenv(key, value)
        job = js("site", "delete", "shop", "--yes")
        assert work()[0]["id"] == job["job_id"]
    again = create_shop(site.name)
    assert again["retry_of"] == created["job_id"]
    assert work()[0]["id"] == again["job_id"]
    assert fencing_record(site)["incarnation"] == js("site", "show", "shop")["incarnation"]
    status, body = http_get(site, "shop.example.test")
    assert status == 200 and TITLE in body


def test_a_database_restored_from_an_older_copy(site, second_control_plane, tmp_path):
    """Copy the database, run a job, put the copy back: the next job is refused until `site adopt`."""
    import sqlite3

    live = Path(second_control_plane.removeprefix("sqlite:///"))
    copy = tmp_path / "older.db"
    with sqlite3.connect(live) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    ran = js("backup", "create", "shop", "--scope", "files")
    assert work()[0]["id"] == ran["job_id"]
    node_before = fencing_record(site)
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    copy.replace(live)
    # The restored database issues the token the node saw already, from another run: refused.
    job = js("backup", "create", "shop", "--scope", "files")
    assert js("jobs", "show", str(job["job_id"]))["fencing_token"] == node_before["token"]
    assert [j["state"] for j in work("failed")] == ["failed"]
    message = refusal(job["job_id"])
    assert f"stale fencing token {node_before['token']} for site shop" in message
    assert "pressluft site adopt shop" in message
    assert fencing_record(site) == node_before
    adopt = js("site", "adopt", "shop")
    assert work()[0]["id"] == adopt["job_id"]
    assert js("site", "show", "shop")["fencing_token"] >= node_before["token"]
    audit = [a for a in js("audit", "list") if a["action"] == "site.adopt" and a["result"] == "adopted"]
    assert audit and audit[0]["detail"]["node_record"]["token"] == node_before["token"]
    after = js("backup", "create", "shop", "--scope", "files")
    assert work()[0]["id"] == after["job_id"]
    token = js("jobs", "show", str(after["job_id"]))["fencing_token"]
    assert fencing_record(site)["token"] == token > node_before["token"]
