"""pressluft.wordpress.wp_site on a real node: php-cli, MariaDB, the real WP-CLI phar, ansible-playbook."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading

import pytest
import yaml

from tests.rig import wpnode
from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory, random_password, stop_nodes
from tests.rig.wordpress import build
from tests.rig.wpnode import NODE_ARCHIVE, make_env

pytestmark = pytest.mark.node

SITE, ENV = "shop", "production"
ROOT = f"/var/www/sites/{SITE}/{ENV}"
URL = "http://shop.localhost"
ADMIN_PASSWORD = "correct horse " + random_password()
VERSION = ""  # the archive's WordPress version, set by the first fixture


def wp_site_runs(tmp_path, node, *runs):
    """One ansible-playbook with a wp_site task per (args, check) run; returns the module results.

    Tasks ignore errors so later ones still run; their own check_mode lets one playbook mix modes.
    """
    tasks = [{"name": f"wp_site {i}", "pressluft.wordpress.wp_site": args, "check_mode": check, "diff": True,
              "ignore_errors": True} for i, (args, check) in enumerate(runs)]
    playbook = tmp_path / f"wp_site-{len(list(tmp_path.iterdir()))}.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "nodes", "gather_facts": False, "tasks": tasks}]))
    result = run_playbook(playbook, inventory([node]), tmp_path)
    try:
        outs = [t["hosts"][node.name] for t in json.loads(result.stdout)["plays"][0]["tasks"]]
    except (json.JSONDecodeError, KeyError, IndexError):
        outs = []
    if result.rc != 0 or len(outs) != len(runs):
        pytest.fail(f"the playbook did not run every task: {result.explain()}")
    return result, outs


def wp_site(tmp_path, node, check=False, **args):
    result, outs = wp_site_runs(tmp_path, node, (args, check))
    return result, outs[0]


def base_args(**extra):
    args = {"site": SITE, "env": ENV, "version": VERSION, "src": NODE_ARCHIVE, "url": URL, "title": "Shop Co",
            "admin_user": "owner", "admin_email": "owner@example.com", "admin_password": ADMIN_PASSWORD}
    args.update(extra)
    return args



def wp(node, *args, check=True):
    user = f"{SITE}_{ENV}"
    return node.exec("runuser", "-u", user, "--", "wp", f"--path={ROOT}/current", *args, check=check)


@pytest.fixture(scope="module")
def wp_node(tmp_path_factory):
    """A node with PHP, MariaDB, WP-CLI and the WordPress archive."""
    node = wpnode.start(tmp_path_factory.mktemp("nodes"))
    yield node
    stop_nodes([node])


@pytest.fixture(scope="module")
def installed(wp_node, tmp_path_factory):
    """The node with WordPress installed by the module's first run."""
    global VERSION
    module_node = wp_node
    VERSION = build().version
    make_env(module_node, SITE, ENV, random_password())
    tmp = tmp_path_factory.mktemp("wp_site")
    first, out = wp_site(tmp, module_node, **base_args())
    assert not out.get("failed"), first.explain()
    return module_node, first, out


def test_first_run_installs(installed):
    node, first, out = installed
    assert out["changed"] is True
    assert out["installed"] is True and out["version"] == VERSION and out["url"] == URL
    release = f"{ROOT}/releases/{VERSION}"
    assert out["release"] == release and out["current"] == release
    assert node.exec("readlink", f"{ROOT}/current").stdout.strip() == release
    assert node.exec("readlink", f"{release}/wp-config.php").stdout.strip() == f"{ROOT}/shared/wp-config.php"
    assert node.exec("readlink", f"{release}/wp-content/uploads").stdout.strip() == f"{ROOT}/shared/uploads"
    # Core is root's: PHP running as the environment user cannot rewrite it.
    assert node.stat(f"{release}/wp-includes/version.php") == ("root", "root", "644")
    assert node.stat(release) == ("root", "root", "755")
    assert node.exec("ls", "-A", f"{ROOT}/releases").stdout.split() == [VERSION], "temp dirs left behind"
    assert wp(node, "option", "get", "blogname").stdout.strip() == "Shop Co"
    assert wp(node, "option", "get", "siteurl").stdout.strip() == URL
    assert wp(node, "option", "get", "home").stdout.strip() == URL
    assert wp(node, "user", "list", "--field=user_login").stdout.split() == ["owner"]
    # The admin password is never printed (no_log) and was set through STDIN.
    assert ADMIN_PASSWORD not in first.stdout + first.stderr
    check = node.exec("runuser", "-u", f"{SITE}_{ENV}", "--", "php", "-r",
                      f"define('WP_INSTALLING', true); require '{ROOT}/current/wp-load.php';"
                      "$u = get_user_by('login', 'owner');"
                      "$ok = wp_check_password(stream_get_contents(STDIN), $u->user_pass, $u->ID);"
                      "echo $ok ? 'ok' : 'bad';",
                      input=ADMIN_PASSWORD)
    assert check.stdout == "ok"


def test_second_run_changes_nothing(installed, tmp_path):
    node, _, _ = installed
    release = f"{ROOT}/releases/{VERSION}"
    before = node.exec("stat", "-c", "%i %Y", release, f"{release}/index.php").stdout
    again, out = wp_site(tmp_path, node, **base_args(title="Another title"))
    assert not out.get("failed") and out["changed"] is False, again.explain()
    assert node.exec("stat", "-c", "%i %Y", release, f"{release}/index.php").stdout == before, "re-unpacked"
    # The title is content once installed: a later run leaves it alone.
    assert wp(node, "option", "get", "blogname").stdout.strip() == "Shop Co"


def test_check_mode_reports_and_changes_nothing(installed, tmp_path):
    node, _, _ = installed
    new_url = "https://shop.example.com"
    fresh = base_args(site="fresh")  # no user, tree or database yet: everything would be done
    checked, (out, fresh_out) = wp_site_runs(tmp_path, node, (base_args(url=new_url, release="next"), True),
                                             (fresh, True))
    assert not out.get("failed") and out["changed"] is True, checked.explain()
    assert not fresh_out.get("failed") and fresh_out["changed"] is True, checked.explain()
    assert node.exec("test", "-e", "/var/www/sites/fresh", check=False).returncode != 0
    assert out["diff"]["before"]["siteurl"] == URL and out["diff"]["after"]["siteurl"] == new_url
    assert out["diff"]["before"]["release"] is None
    assert wp(node, "option", "get", "siteurl").stdout.strip() == URL
    assert node.exec("ls", "-A", f"{ROOT}/releases").stdout.split() == [VERSION]


def test_url_follows_the_parameter(installed, tmp_path):
    node, _, _ = installed
    new_url = "https://shop.example.com/"
    runs = ((base_args(url=new_url), False), (base_args(), False))
    result, (there, back) = wp_site_runs(tmp_path, node, *runs)
    assert not there.get("failed") and not back.get("failed"), result.explain()
    assert there["changed"] is True and back["changed"] is True
    assert there["diff"]["before"]["home"] == URL and there["diff"]["after"]["home"] == new_url.rstrip("/")
    # The second run read what the first one wrote, through WP-CLI.
    assert back["diff"]["before"]["siteurl"] == back["diff"]["before"]["home"] == new_url.rstrip("/")
    assert wp(node, "option", "get", "siteurl").stdout.strip() == URL
    assert wp(node, "option", "get", "home").stdout.strip() == URL


def test_bad_names_are_refused(installed, tmp_path):
    node, _, _ = installed
    bad = ({"site": "Shop!"}, {"site": "root"}, {"env": "prod/../x"}, {"url": "shop.localhost"})
    result, outs = wp_site_runs(tmp_path, node, *((base_args(**b), False) for b in bad))
    for b, out in zip(bad, outs, strict=True):
        assert out.get("failed") and out["changed"] is False, (b, result.explain())
    assert "invalid site name 'Shop!'" in outs[0]["msg"]
    assert "site name 'root' is reserved" in outs[1]["msg"]
    assert "invalid environment name" in outs[2]["msg"]
    assert "invalid url" in outs[3]["msg"]
    assert node.exec("ls", "/var/www/sites").stdout.split() == [SITE]


def test_wrong_version_leaves_nothing_behind(installed, tmp_path):
    node, _, _ = installed
    failed, out = wp_site(tmp_path, node, **base_args(version="9.9.9"))
    assert out.get("failed") and f"holds WordPress {VERSION}, not 9.9.9" in out["msg"], failed.explain()
    assert node.exec("ls", "-A", f"{ROOT}/releases").stdout.split() == [VERSION]


def test_stale_fencing_token_is_refused(installed, tmp_path):
    node, _, _ = installed
    result, (ok, stale) = wp_site_runs(tmp_path, node, (base_args(fencing_token=7), False),
                                       (base_args(fencing_token=6, url="http://stale.localhost"), False))
    assert not ok.get("failed"), result.explain()
    assert stale.get("failed") and stale.get("stale_fencing_token") is True, result.explain()
    assert wp(node, "option", "get", "siteurl").stdout.strip() == URL


def test_absent_removes_only_the_environment_tree(installed, tmp_path):
    node, _, _ = installed
    make_env(node, SITE, "staging", random_password())
    staging = f"/var/www/sites/{SITE}/staging"
    absent = {"site": SITE, "env": "staging", "state": "absent"}
    # Check mode first: the real run after it still finds the tree to remove.
    runs = ((absent, True), (absent, False), (absent, False))
    result, (checked, removed, again) = wp_site_runs(tmp_path, node, *runs)
    for out in (checked, removed, again):
        assert not out.get("failed"), result.explain()
    assert (checked["changed"], removed["changed"], again["changed"]) == (True, True, False)
    assert node.exec("test", "-e", staging, check=False).returncode != 0
    assert node.exec("test", "-d", f"{ROOT}/current/wp-includes", check=False).returncode == 0


def test_download_url_with_checksum(installed, tmp_path):
    """download_url is fetched on the node (from an HTTP server on the host's loopback) and verified."""
    node, _, _ = installed
    archive = build()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Nodes reach the host's loopback at 10.0.2.2 (slirp4netns allow_host_loopback).
        url = f"http://10.0.2.2:{server.server_address[1]}/{archive.path.name}"
        common = base_args(src=None, download_url=url)
        del common["src"]
        bad_run = {**common, "release": "bad", "checksum": "0" * 64}
        good_run = {**common, "release": "dl", "checksum": f"sha256:{archive.sha256}"}
        # What wordpress.org publishes beside each archive (and site create's default verifies) is a SHA-1.
        sha1 = hashlib.sha1(archive.path.read_bytes()).hexdigest()
        sha1_run = {**common, "release": "dl1", "checksum": f"sha1:{sha1}"}
        bad_sha1_run = {**common, "release": "bad1", "checksum": "sha1:" + "0" * 40}
        result, (bad, good, by_sha1, bad_sha1) = wp_site_runs(
            tmp_path, node, (bad_run, False), (good_run, False), (sha1_run, False), (bad_sha1_run, False))
    finally:
        server.shutdown()
        server.server_close()
    assert bad.get("failed") and "checksum mismatch" in bad["msg"], result.explain()
    assert not good.get("failed") and good["changed"] is True, result.explain()
    assert good["release"] == f"{ROOT}/releases/dl" and good["current"] == f"{ROOT}/releases/{VERSION}"
    assert not by_sha1.get("failed") and by_sha1["release"] == f"{ROOT}/releases/dl1", result.explain()
    assert bad_sha1.get("failed") and "got sha1 " in bad_sha1["msg"], result.explain()
    assert sorted(node.exec("ls", "-A", f"{ROOT}/releases").stdout.split()) == sorted([VERSION, "dl", "dl1"])
    assert node.exec("cat", f"{ROOT}/releases/dl/wp-includes/version.php").stdout.count(VERSION) >= 1
