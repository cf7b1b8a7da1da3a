"""A site between two nodes: `pressluft site move SITE --to NODE` (+ `--confirm`), then disaster recovery
with `pressluft restore SITE --to NODE --from-offsite BACKUP_ID`.

One pair of nodes from the provisioned image, a control plane and moto's S3 server as the restic
repository; both nodes are servers of a provider account at the fake Hetzner API (tests/rig/hcloud_api.py),
and the site gets a floating IP there (`site ip`). The site starts on `a`. A move to `b` whose rebuild
fails, and one whose floating IP switch the API refuses, leave `a` taking writes and holding the IP; the
real move routes the IP to `b` (which answers on it) and leaves `a` read-only (POST 503, GET 200) until
--confirm removes it and the address from a's interface. Then `b` is stopped and the site rebuilt on `a`
from S3 alone, its floating IP routed back to `a` (and at last released). Each time the new node must hold
the same database dump (ordered by primary key) and the same uploads tree (names, types, modes, sizes,
mtimes, hashes) as the old one at backup time, a root-owned live release, and the control plane must record
the new node.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.rig import nodes as rig
from tests.rig import provisioned, s3
from tests.rig.control_plane import add_node, http_get, js, link_to_provider, run, work
from tests.rig.hcloud_api import FakeHcloud
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE, USER = "phoenix", "phoenix_production"
ROOT_DIR = f"/var/www/sites/{SITE}/production"
BUCKET = "pressluft-dr"
PASSWORD = "dr-restic-Pw-91c2-never-shown"


def wp(node, *args: str) -> str:
    return node.exec("runuser", "-u", USER, "--", "wp", f"--path={ROOT_DIR}/current", *args).stdout


# Left out of the comparison: transients (a cache; every page view may rewrite them, the block theme's
# global styles live 60 s, so the target's health check request writes them again) and the tables'
# AUTO_INCREMENT counters (a transient written and deleted moves them). Everything else is compared.
_TRANSIENT = re.compile(r"^INSERT INTO `wp_options` VALUES \(\d+,'_(site_)?transient_")
_COUNTER = re.compile(r" AUTO_INCREMENT=\d+")


def state(node) -> tuple[str, str]:
    """(database dump ordered by primary key, one row per line, without its date line, transients and
    AUTO_INCREMENT counters; uploads listing with hashes)."""
    dump = wp(node, "db", "export", "-", "--order-by-primary", "--skip-dump-date", "--skip-extended-insert")
    dump = "\n".join(_COUNTER.sub("", line) for line in dump.splitlines() if not _TRANSIENT.match(line))
    tree = node.sh(
        f"cd {ROOT_DIR}/shared && find uploads -printf '%p %y %m %s %T@\\n' | sort && "
        "find uploads -type f -print0 | sort -z | xargs -0r sha256sum"
    )
    return dump, tree


def settle(node, timeout: float = 90) -> tuple[str, str]:
    """The state once WP-cron a request spawned is done: no doing_cron lock, the same dump 2 s apart."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        locked = node.exec(
            "mysql", "-N", "-e",
            f"SELECT COUNT(*) FROM {USER}.wp_options WHERE option_name = '_transient_doing_cron'",
        ).stdout.strip()
        now = state(node)
        if locked == "0" and now == last:
            return now
        assert time.monotonic() < deadline, f"the database kept changing for {timeout:.0f}s"
        last = now
        time.sleep(2)


def post_status(node, host: str) -> int:
    """Status of a login POST through the node's nginx (503: the environment refuses writes)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{node.http_port}/wp-login.php", data=b"log=nobody&pwd=wrong",
        headers={"Host": host},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_post_status(node, host: str, refused: bool, timeout: float = 20) -> int:
    """post_status once it is (refused) or is not (not refused) 503: an nginx reload lets old workers
    finish their connections first."""
    deadline = time.monotonic() + timeout
    while True:
        status = post_status(node, host)
        if (status == 503) == refused or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def fill(node, marker: str) -> None:
    wp(node, "option", "update", "pressluft_marker", marker)
    wp(node, "post", "create", f"--post_title=Survivor {marker}", "--post_status=publish")
    node.sh(
        f"runuser -u {USER} -- sh -c 'mkdir -p {ROOT_DIR}/shared/uploads/2026/12 && "
        f"head -c 200000 /dev/urandom > {ROOT_DIR}/shared/uploads/2026/12/{marker}.jpg && "
        f"echo keep > {ROOT_DIR}/shared/uploads/2026/12/{marker}.txt'"
    )
    # A visit first, as on a live site: what WordPress writes on a first view (theme mods, due WP-cron
    # events such as the new post's pings) happens here, not on the target's health check.
    assert http_get(node, f"{SITE}.localhost")[0] == 200


def live_release(node) -> str:
    return node.sh(f"basename $(readlink {ROOT_DIR}/current)").strip()


def assert_rebuilt(node, before: tuple[str, str], release: str, marker: str) -> None:
    after = settle(node)
    changed = [
        line
        for line in difflib.unified_diff(before[0].splitlines(), after[0].splitlines(), lineterm="", n=0)
        if line[:1] in "+-"
    ]
    assert after[0] == before[0], "the database differs from the one at backup time:\n" + "\n".join(
        line[:300] for line in changed[:20]
    )
    assert after[1] == before[1], "the uploads on the new node differ from the ones at backup time"
    assert wp(node, "option", "get", "pressluft_marker").strip() == marker
    assert live_release(node) == release
    assert node.stat(f"{ROOT_DIR}/releases/{release}")[:2] == ("root", "root")
    assert node.sh(f"find {ROOT_DIR}/releases/{release} ! -user root | head -1").strip() == ""
    status, body = http_get(node, f"{SITE}.localhost")
    assert status == 200 and f"Survivor {marker}" in body
    assert js("site", "show", SITE)["node"] == node.name
    assert js("site", "show", SITE)["environments"][0]["state"] == "active"


@pytest.fixture(scope="module")
def pair(control_plane, tmp_path_factory):
    rig.require_podman()
    work_dir = tmp_path_factory.mktemp("pair")
    server = s3.start(control_plane)
    fake = FakeHcloud().__enter__()
    a = b = None
    try:
        # NET_ADMIN: role floating_ip puts the site's floating IP on the node's interface.
        a = provisioned.start(work_dir, caps=("NET_ADMIN",))
        b = provisioned.start(work_dir, caps=("NET_ADMIN",))
        server.create_bucket(BUCKET)
        js("provider", "add", "hetzner", "hz", "--admin-cidr", "127.0.0.0/8", "--endpoint", fake.endpoint,
           input=fake.token + "\n")
        for node in (a, b):
            add_node(node)
            link_to_provider(node.name, "hz", fake.add_server(node.name, ("127.0.0.1", node.http_port))["id"])
        js(
            "backup", "repo", "set", "--url", server.node_repository(BUCKET, "dr"), "--password-stdin",
            "--s3-access-key-id", server.access_key_id, "--s3-secret-access-key-stdin",
            input=f"{PASSWORD}\n{server.secret_access_key}\n",
        )
        js("site", "create", SITE, "--node", a.name, "--wordpress", str(wordpress_archive()))
        work()
        yield a, b, fake
    finally:
        rig.stop_nodes([n for n in (a, b) if n is not None])
        server.stop()
        fake.__exit__(None, None, None)


def fip_server(fake) -> str | None:
    """The name of the server the site's floating IP is routed to, at the fake API."""
    fip = fake.named("floating_ips")[f"{SITE}-ip"]
    return next((s["name"] for s in fake.named("servers").values() if s["id"] == fip["server"]), None)


def fip_get(fake) -> tuple[int, str]:
    """GET the site through its floating IP (the fake routes it to the server it is assigned to)."""
    port = fake.floating_ip_port(f"{SITE}-ip")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": f"{SITE}.localhost"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode(errors="replace")


def answers_on(node, address: str) -> bool:
    """The node's nginx answers the site on `address` from inside the node: only when the address is on
    one of its interfaces (a 198.51.100.x address otherwise leaves through the default route)."""
    got = node.exec(
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
        "--resolve", f"{SITE}.localhost:80:{address}", f"http://{SITE}.localhost/", check=False,
    )
    return got.stdout.strip() == "200"


def test_move_keeps_the_source_until_the_switch_then_read_only_until_confirmed(pair):
    a, b, fake = pair
    # The site's floating IP: created at the provider, routed to a's server, configured on a.
    made = js("site", "ip", SITE)
    assert [j["id"] for j in work()] == [made["job_id"]]
    address = js("site", "show", SITE)["floating_ip"]["address"]
    assert fake.named("floating_ips")[f"{SITE}-ip"]["ip"] == address and fip_server(fake) == a.name
    assert answers_on(a, address) and not answers_on(b, address)
    assert fip_get(fake)[0] == 200

    # A rebuild that fails on the target (it seems to hold the site): the source takes writes again.
    b.sh(f"mkdir -p {ROOT_DIR} && ln -s /nonexistent {ROOT_DIR}/current")
    failed = js("site", "move", SITE, "--to", b.name)
    assert [j["id"] for j in work(expect="failed")] == [failed["job_id"]]
    b.sh(f"rm -rf /var/www/sites/{SITE}")
    assert js("site", "show", SITE)["node"] == a.name
    assert wait_post_status(a, f"{SITE}.localhost", False) != 503, "the source still refuses writes"
    assert js("backup", "show", failed["backup_id"])["state"] == "completed"

    # The provider refuses the floating IP switch after b's rebuild passed its checks: a keeps the IP and
    # takes writes again, b is cleaned up, and the same move can run again.
    fip_id = fake.named("floating_ips")[f"{SITE}-ip"]["id"]
    fake.fail_next(
        "POST", f"/floating_ips/{fip_id}/actions/assign", 403, "forbidden", "assignment refused (fake)"
    )
    refused = js("site", "move", SITE, "--to", b.name)
    assert [j["id"] for j in work(expect="failed")] == [refused["job_id"]]
    error = js("jobs", "show", str(refused["job_id"]))["error_message"]
    assert "floating IP switch failed" in error and "assignment refused" in error, error
    assert fip_server(fake) == a.name and js("site", "show", SITE)["node"] == a.name
    assert b.exec("test", "-e", ROOT_DIR, check=False).returncode != 0, "b kept the failed move's copy"
    assert not answers_on(b, address)
    assert wait_post_status(a, f"{SITE}.localhost", False) != 503, "the source still refuses writes"
    assert fip_get(fake)[0] == 200

    # The state the move must carry over (after the checks above: their requests load WordPress).
    fill(a, "moved")
    before = settle(a)
    release = live_release(a)
    moved = js("site", "move", SITE, "--to", b.name)
    assert (moved["node"], moved["from_node"]) == (b.name, a.name)
    assert [j["id"] for j in work()] == [moved["job_id"]]
    assert_rebuilt(b, before, release, "moved")
    assert fip_server(fake) == b.name and answers_on(b, address)
    status, body = fip_get(fake)
    assert status == 200 and "Survivor moved" in body
    shown = js("backup", "show", moved["backup_id"])
    assert (shown["state"], shown["trigger"]) == ("completed", "pre_move")
    # The old copy serves reads, refuses writes, until the move is confirmed.
    assert http_get(a, f"{SITE}.localhost")[0] == 200
    assert wait_post_status(a, f"{SITE}.localhost", True) == 503
    assert wait_post_status(b, f"{SITE}.localhost", False) != 503
    again = run("site", "move", SITE, "--to", a.name, "--json", ok=False)
    assert again.exit_code == 4 and "confirm it first" in again.stdout

    confirmed = js("site", "move", SITE, "--confirm")
    assert confirmed["node"] == a.name
    assert [j["id"] for j in work()] == [confirmed["job_id"]]
    assert a.exec("test", "-e", f"/var/www/sites/{SITE}/production", check=False).returncode != 0
    assert a.exec("test", "-e", f"/etc/nginx/pressluft-readonly/{USER}.conf", check=False).returncode != 0
    assert address not in a.exec("ip", "-o", "-4", "address", "show").stdout
    assert fip_server(fake) == b.name and answers_on(b, address)
    assert http_get(b, f"{SITE}.localhost")[0] == 200
    assert run("site", "move", SITE, "--confirm", "--json", ok=False).exit_code == 4


def test_rebuild_on_another_node_from_the_offsite_copy_alone(pair):
    a, b, fake = pair  # the site lives on b since the move, its floating IP routed there
    fill(b, "rebuilt")
    before = settle(b)
    release = live_release(b)
    made = js("backup", "create", SITE)
    work()
    shown = js("backup", "show", made["backup_id"])
    assert shown["state"] == "completed" and shown["restic_snapshot"]
    assert "core.tar" in {x["name"] for x in shown["manifest"]["artifacts"]}, "full backups hold the release"

    # The site's node is gone: nothing may come from it. On a, the environment's user gets other ids than
    # on b (users created since), so the uploads' numeric owners from the archive must not be kept.
    subprocess.run(["podman", "stop", "-t", "0", b.name], check=True, capture_output=True, timeout=120)
    a.sh("useradd --system --no-create-home shift-sys && useradd --no-create-home shift-user")
    got = js("restore", SITE, "--to", a.name, "--from-offsite", made["backup_id"], "--yes")
    assert (got["node"], got["from_node"], got["backup_id"]) == (a.name, b.name, made["backup_id"])
    address = got["floating_ip"]["address"]
    assert got["floating_ip"]["switched"] and fip_server(fake) == b.name
    assert [j["id"] for j in work()] == [got["job_id"]]
    assert_rebuilt(a, before, release, "rebuilt")
    # The floating IP followed the site to a (which answers on it again) after the health check there.
    assert fip_server(fake) == a.name and answers_on(a, address)
    status, body = fip_get(fake)
    assert status == 200 and "Survivor rebuilt" in body
    assert a.sh(f"find {ROOT_DIR}/shared/uploads ! -user {USER} | head -1").strip() == ""
    audit = [r["result"] for r in js("audit", "list") if r["action"] == "env.rebuild"]
    assert "rebuilt" in audit

    # a holds the site now: a rebuild there is refused before anything is queued (exit 4).
    again = run("restore", SITE, "--to", a.name, "--from-offsite", made["backup_id"], "--yes", ok=False)
    assert again.exit_code == 4 and "already holds site" in again.stderr

    # Releasing the floating IP: a stops answering on it, the provider deletes it, the site serves on.
    deleting = run("site", "delete", SITE, "--yes", ok=False)
    assert deleting.exit_code == 4 and "--release" in deleting.stderr, deleting.stderr
    released = js("site", "ip", SITE, "--release", "--yes")
    assert (released["floating_ip"], released["address"]) == (f"{SITE}-ip", address)
    assert [j["id"] for j in work()] == [released["job_id"]]
    assert f"{SITE}-ip" not in fake.named("floating_ips")
    assert address not in a.exec("ip", "-o", "-4", "address", "show").stdout
    assert js("site", "show", SITE)["floating_ip"] is None
    assert http_get(a, f"{SITE}.localhost")[0] == 200
