"""env_deploy / release_rollback / health_check on one provisioned podman node with a real site.

Releases are WordPress trees (the test archive) plus `release.php`, which prints the release id, so
every answer says which release served it. Faults are planted as mu-plugins or broken PHP files.
"""

from __future__ import annotations

import http.client
import itertools
import json
import shutil
import subprocess
import tarfile
import time

import pytest

from tests.rig.ansible import run_playbook
from tests.rig.control_plane import add_node, js, run, work
from tests.rig.nodes import inventory
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE = "shop"
HOST = "shop.localhost"
ENV_ROOT = f"/var/www/sites/{SITE}/production"
# Fencing tokens of this module's runs only grow; a stale one is taken below the first.
TOKENS = itertools.count(1000)

# Fails only under live traffic through nginx (pre-switch requests come straight from the probe):
# a release that passes its pre-switch checks and breaks once it is live.
BREAKS_LIVE = """<?php
if (PHP_SAPI === 'fpm-fcgi' && ($_SERVER['SERVER_SOFTWARE'] ?? '') !== 'pressluft-probe') {
    pressluft_undefined_function();
}
"""
# Fatal for every web request: caught by the pre-switch request through the pool.
BREAKS_ALWAYS = "<?php\nif (PHP_SAPI === 'fpm-fcgi') { pressluft_undefined_function(); }\n"


def http_get(node, path: str = "/", host: str = HOST) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)  # CI nodes share 2 cores
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (http.client.HTTPException, ConnectionError) as exc:
        return 0, repr(exc)
    finally:
        conn.close()


def x_cache(node, path: str = "/release.php") -> str:
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": HOST})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("X-Cache") or ""
    finally:
        conn.close()


def serving(node) -> str:
    status, body = http_get(node, "/release.php")
    assert status == 200, body[:300]
    return body.strip()


class Releases:
    """Release source directories on the controller: hard-linked copies of one unpacked core."""

    def __init__(self, node, tmp):
        self.node, self.tmp = node, tmp
        self.core = tmp / "core"
        with tarfile.open(wordpress_archive()) as tar:
            tar.extractall(tmp / "unpacked", filter="tar")
        (tmp / "unpacked" / "wordpress").rename(self.core)

    def source(self, rid: str, files: dict[str, str] | None = None):
        src = self.tmp / f"src-{rid}"
        shutil.rmtree(src, ignore_errors=True)
        subprocess.run(["cp", "-al", str(self.core), str(src)], check=True)
        for rel, text in {"release.php": f"<?php echo '{rid}';\n", **(files or {})}.items():
            path = src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)  # never write through a hard link into the shared core
            path.write_text(text)
        return src

    def deploy(self, rid: str, files: dict[str, str] | None = None, token: int | None = None, **extra):
        extravars = {
            "pressluft_target": "nodes", "pressluft_site": SITE, "pressluft_release": rid,
            "pressluft_release_src": str(self.source(rid, files)),
            "pressluft_fencing_token": next(TOKENS) if token is None else token,
            "pressluft_health_urls": ["/", "/release.php"],
        }
        extravars.update(extra)
        return self.play("env_deploy.yml", extravars)

    def play(self, playbook: str, extravars: dict):
        extravars = {"pressluft_target": "nodes", "pressluft_site": SITE, **extravars}
        result = run_playbook(playbook, inventory([self.node]), self.tmp, extravars=extravars,
                              env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"})
        try:  # what set_stats returned (per_host: false)
            result.custom = json.loads(result.stdout).get("global_custom_stats", {})
        except json.JSONDecodeError:
            result.custom = {}
        return result

    def state(self) -> dict:
        return json.loads(self.node.exec("cat", f"{ENV_ROOT}/.pressluft-releases.json").stdout)

    def current(self) -> str:
        return self.node.exec("readlink", f"{ENV_ROOT}/current").stdout.strip().rsplit("/", 1)[-1]

    def dirs(self) -> list[str]:
        return sorted(self.node.exec("ls", "-A", f"{ENV_ROOT}/releases").stdout.split())


@pytest.fixture(scope="module")
def rel(provisioned_node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    created = run_playbook("site_create.yml", inventory([provisioned_node]), tmp, extravars={
        "pressluft_target": "nodes", "pressluft_site": SITE,
        "pressluft_wordpress_src": str(wordpress_archive())})
    assert created.rc == 0, created.explain()
    r = Releases(provisioned_node, tmp)
    first = r.deploy("r1")
    assert first.rc == 0, first.explain()
    # With the page cache on, every post-switch check (and serving()) would get the old release's cached
    # /release.php unless deploys and rollbacks purge right after their switch (docs/cache.md).
    cache = r.play("env_cache_toggle.yml",
                   {"pressluft_cache_state": "enabled", "pressluft_fencing_token": next(TOKENS)})
    assert cache.rc == 0, cache.explain()
    deadline = time.monotonic() + 20
    while x_cache(provisioned_node) != "HIT":
        assert time.monotonic() < deadline, "the page cache never answered /release.php"
        time.sleep(0.2)
    return r


def test_deploy_switches_to_a_checked_release(rel):
    node = rel.node
    before = rel.current()
    out = rel.deploy("r2", pressluft_health_urls=["/release.php"], pressluft_health_marker="r2")
    assert out.rc == 0, out.explain()
    assert out.custom["pressluft_release"]["state"] == "live"
    assert out.custom["pressluft_release"]["previous"] == before
    assert rel.current() == "r2" and serving(node) == "r2"
    assert http_get(node)[0] == 200
    assert rel.state()["last_known_good"] == "r2"
    # Root-owned, read-only for the PHP user; shared files linked, not copied.
    assert node.stat(f"{ENV_ROOT}/releases/r2") == ("root", "root", "755")
    assert node.stat(f"{ENV_ROOT}/releases/r2/release.php") == ("root", "root", "644")
    assert node.exec("readlink", f"{ENV_ROOT}/releases/r2/wp-config.php").stdout.strip() == \
        f"{ENV_ROOT}/shared/wp-config.php"
    assert node.exec("readlink", f"{ENV_ROOT}/releases/r2/wp-content/uploads").stdout.strip() == \
        f"{ENV_ROOT}/shared/uploads"
    assert node.stat(f"{ENV_ROOT}/shared/wp-config.php") == ("root", "shop_production", "640")
    assert not [d for d in rel.dirs() if d.startswith(".build")]
    assert not node.sh("ls /var/cache/pressluft | grep '^release-' || true")
    # A retried job (same release id) finds its release live: no rebuild, only the post-switch checks.
    again = rel.deploy("r2", pressluft_health_urls=["/release.php"], pressluft_health_marker="r2")
    assert again.rc == 0, again.explain()
    assert not [t for t in again.changed_tasks() if "Move the release" in t or "Switch current" in t]
    assert rel.current() == "r2"


def test_pre_switch_failures_never_go_live(rel):
    before = rel.current()
    syntax = rel.deploy("bad-syntax", {"wp-content/plugins/broken/broken.php": "<?php function ( {\n"})
    assert syntax.rc != 0
    assert "pre-switch check failed" in syntax.stdout and "broken.php" in syntax.stdout
    assert syntax.custom["pressluft_release"]["state"] == "failed"
    fatal = rel.deploy("bad-fatal", {"wp-content/mu-plugins/fatal.php": BREAKS_ALWAYS})
    assert fatal.rc != 0
    reason = fatal.custom["pressluft_release"]["reason"]
    assert "HTTP 500" in reason and "PHP Fatal" in reason, reason
    assert rel.current() == before and serving(rel.node) == before
    marks = rel.state()["releases"]
    # Marked failed, or already pruned (then forgotten).
    assert all(marks.get(r, {}).get("mark") in (None, "failed") for r in ("bad-syntax", "bad-fatal"))


def test_post_switch_failure_rolls_back(rel):
    before = rel.current()
    broken = rel.deploy("bad-live", {"wp-content/mu-plugins/live.php": BREAKS_LIVE})
    assert broken.rc != 0, broken.explain()
    assert f"was rolled back to {before}" in broken.stdout
    stats = broken.custom["pressluft_release"]
    assert stats["state"] == "rolled_back" and stats["previous"] == before
    assert "HTTP 500" in stats["reason"]
    assert rel.current() == before and serving(rel.node) == before
    assert http_get(rel.node)[0] == 200


def test_failed_deploys_never_prune_the_last_good_release(rel):
    good = rel.deploy("good2", pressluft_release_keep=1)
    assert good.rc == 0, good.explain()
    # Broken after the switch (rolled back), then broken before it (never live). Two failures with keep=1:
    # without pruning after failures, both would stay.
    live = {"wp-content/mu-plugins/live.php": BREAKS_LIVE}
    assert rel.deploy("fail-live", live, pressluft_release_keep=1).rc != 0
    assert rel.deploy("fail-pre", {"x.php": "<?php (\n"}, pressluft_release_keep=1).rc != 0
    assert rel.current() == "good2" and serving(rel.node) == "good2"
    assert rel.state()["last_known_good"] == "good2"
    dirs = rel.dirs()
    assert "good2" in dirs
    # Failed releases do not pile up: prune runs after failures too.
    assert len([d for d in dirs if d.startswith("fail-")]) <= 1, dirs


def test_stale_fencing_token_changes_nothing(rel):
    def snapshot() -> str:
        return rel.node.sh(f"ls -la --time-style=full-iso {ENV_ROOT} {ENV_ROOT}/releases "
                           f"/var/cache/pressluft; cat {ENV_ROOT}/.pressluft-releases.json "
                           f"/var/lib/pressluft/fencing/{SITE}")

    before = snapshot()
    stale = rel.deploy("stale", token=5)
    assert stale.rc != 0 and "stale fencing token" in stale.stdout
    assert snapshot() == before
    rolled = rel.play("release_rollback.yml", {"pressluft_fencing_token": 5})
    assert rolled.rc != 0 and "stale fencing token" in rolled.stdout
    assert snapshot() == before


def test_git_source(rel):
    repo = rel.tmp / "repo"
    src = rel.source("git1")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
    subprocess.run([*git, "-C", str(src), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "release git1"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(repo)], check=True)
    subprocess.run(["podman", "cp", str(repo), f"{rel.node.name}:/srv/site.git"], check=True)
    deployed = rel.play("env_deploy.yml", {
        "pressluft_release": "git1", "pressluft_release_git": "file:///srv/site.git",
        "pressluft_release_git_version": "main", "pressluft_fencing_token": next(TOKENS)})
    assert deployed.rc == 0, deployed.explain()
    assert rel.current() == "git1" and serving(rel.node) == "git1"
    assert rel.node.exec("test", "-e", f"{ENV_ROOT}/releases/git1/.git", check=False).returncode != 0


def test_rollback_and_health_check_jobs(rel):
    assert rel.deploy("r3").rc == 0
    back = rel.play("release_rollback.yml", {"pressluft_fencing_token": next(TOKENS)})
    assert back.rc == 0, back.explain()
    prev = back.custom["pressluft_release"]
    assert prev["rolled_back"] == "r3" and prev["healthy"] is True
    assert rel.current() == prev["id"] != "r3" and serving(rel.node) == prev["id"]
    health = rel.play("health_check.yml", {"pressluft_health_urls": ["/release.php"],
                                           "pressluft_health_marker": prev["id"]})
    assert health.rc == 0, health.explain()
    assert health.custom["pressluft_health"]["healthy"] is True
    sick = rel.play("health_check.yml", {"pressluft_health_urls": ["/release.php"],
                                         "pressluft_health_marker": "nope"})
    assert sick.rc != 0 and sick.custom["pressluft_health"]["healthy"] is False
    nosite = rel.play("health_check.yml", {"pressluft_site": "nosuch"})
    assert nosite.rc != 0 and "nosuch/production has no live release" in nosite.stdout, nosite.explain()
    missing = rel.play("release_rollback.yml", {"pressluft_release": "no-such",
                                                "pressluft_fencing_token": next(TOKENS)})
    assert missing.rc != 0 and rel.current() == prev["id"]


def test_bad_input_is_refused_before_the_node(rel):
    before = rel.dirs()
    for extra in ({"pressluft_release": "../x"}, {"pressluft_health_urls": "/"},
                  {"pressluft_release_git": "file:///srv/site.git"}):
        out = rel.deploy("input", **extra)
        assert out.rc != 0 and "Validate the" in out.stdout
    assert rel.dirs() == before


def test_through_the_control_plane(rel, control_plane):
    """CLI deploy -> worker -> node; release list shows the states; job events say why a deploy failed."""
    home = control_plane
    node = rel.node
    add_node(node)  # a node of the provisioned image: recorded as provisioned, not provisioned again
    js("site", "create", "cpshop", "--node", node.name,
       "--wordpress", str(wordpress_archive()))
    work()

    # jinja.php prints the literal text a health marker below must match (issue 12, finding 1).
    good = js("deploy", "cpshop", "--source", str(rel.source("cp-good", {"jinja.php": JINJA_PAGE})),
              "--health-url", "/release.php")
    assert work()[0]["id"] == good["job_id"]
    status, body = http_get(node, "/release.php", host="cpshop.localhost")
    assert (status, body.strip()) == (200, "cp-good")
    # The release id is the control plane's, so the node served the source under its job's id.
    assert good["release"].endswith(f"-{good['job_id']}")

    bad = js("deploy", "cpshop/production", "--source",
             str(rel.source("cp-bad", {"wp-content/mu-plugins/live.php": BREAKS_LIVE})))
    assert work(expect="failed")[0]["id"] == bad["job_id"]
    assert http_get(node, "/release.php", host="cpshop.localhost")[1].strip() == "cp-good"
    listed = {r["release"]: r for r in js("release", "list", "cpshop")}
    assert listed[good["release"]]["state"] == "live"
    assert listed[bad["release"]]["state"] == "rolled_back"
    assert "HTTP 500" in listed[bad["release"]]["reason"]
    shown = js("jobs", "show", str(bad["job_id"]))
    assert any("was rolled back to" in json.dumps(e["data"]) for e in shown["events"])
    assert js("site", "show", "cpshop")["environments"][0]["state"] == "active"
    human = run("release", "list", "cpshop/production").stdout
    assert "rolled_back" in human and "live" in human

    checked = js("health", "cpshop", "--url", "/release.php", "--marker", "cp-good")
    assert work()[0]["id"] == checked["job_id"]
    assert {r["release"]: r for r in js("release", "list", "cpshop")}[good["release"]]["healthy"] is True
    # A marker is text, never a template: `{{ 7*7 }}` matches the page's literal text, not 49, and a
    # lookup never runs on the worker (it ran `id` as root before the extra vars became !unsafe).
    canary = home / "CANARY"
    literal = js("health", "cpshop", "--url", "/jinja.php", "--marker", "{{ 7*7 }}")
    assert work()[0]["id"] == literal["job_id"]
    js("health", "cpshop", "--url", "/jinja.php", "--marker", "49")
    work(expect="failed")
    js("health", "cpshop", "--url", "/jinja.php", "--marker", f"{{{{ lookup('pipe','id > {canary}') }}}}")
    work(expect="failed")
    assert not canary.exists(), "a health marker ran on the worker"
    refused = run("deploy", "cpshop", "--source", "/nonexistent", "--json", ok=False)
    assert refused.exit_code != 0 and "does not exist" in refused.stdout


JINJA_PAGE = "<?php echo '{{ 7*7 }} is not 49';\n"
