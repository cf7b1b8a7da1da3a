"""The nginx page cache (role page_cache, jobs env_cache_toggle and cache_purge) on one provisioned podman
node with two real WordPress sites, alpha and beta, through the node's nginx.

Extra pages are planted in each live release as root (the harness): `/stamp.php` prints a fresh random
number (a cached answer repeats it), `/cookie.php` also sets a cookie.
"""

from __future__ import annotations

import http.client
import itertools
import time
from pathlib import Path

import pytest

from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory
from tests.rig.wordpress import wordpress_archive
from tests.rig.wpcli import ROOT

pytestmark = pytest.mark.node

SITES = ("alpha", "beta")
TOKENS = itertools.count(100)
STAMP = "<?php echo bin2hex(random_bytes(8));\n"
COOKIE = "<?php setcookie('pressluft_test', '1'); echo bin2hex(random_bytes(8));\n"


def get(node, site: str, path: str = "/stamp.php", method: str = "GET", cookie: str = ""
        ) -> tuple[int, str, str]:
    """(status, X-Cache or "", body) of one request through the node's nginx."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)
    headers = {"Host": f"{site}.localhost", **({"Cookie": cookie} if cookie else {})}
    try:
        conn.request(method, path, body=b"x=1" if method == "POST" else None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("X-Cache") or "", resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def cached(node, site: str, path: str = "/stamp.php") -> str:
    """Request until the page is a HIT (nginx renames the entry into place as the answer ends); its body."""
    deadline = time.monotonic() + 20
    while True:
        status, xcache, body = get(node, site, path)
        assert status == 200, (status, body[:300])
        if xcache == "HIT":
            return body
        assert xcache in ("MISS", "EXPIRED"), xcache
        assert time.monotonic() < deadline, f"{site}{path} never became a HIT"
        time.sleep(0.2)


def play(node, tmp, playbook: str, site: str, **extravars):
    return run_playbook(playbook, inventory([node]), tmp, extravars={
        "pressluft_target": "nodes", "pressluft_site": site, "pressluft_fencing_token": next(TOKENS),
        **extravars})


def entries(node, site: str) -> list[str]:
    out = node.sh(f"find /var/cache/pressluft/page/{site}_production -type f 2>/dev/null || true")
    return sorted(out.split())


@pytest.fixture(scope="module")
def node(provisioned_node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache")
    for site in SITES:
        created = play(provisioned_node, tmp, "site_create.yml", site,
                       pressluft_wordpress_src=str(wordpress_archive()))
        assert created.rc == 0, created.explain()
        current = f"/var/www/sites/{site}/production/current"
        for name, text in (("stamp.php", STAMP), ("cookie.php", COOKIE)):
            provisioned_node.exec("sh", "-c", f"cat > {current}/{name}", input=text)
    provisioned_node.tmp = tmp
    return provisioned_node


def test_a_new_environment_has_no_cache_until_enabled(node):
    status, xcache, _ = get(node, "alpha")
    assert status == 200 and xcache == ""
    assert node.stat("/etc/nginx/pressluft-cache/alpha_production.conf") == ("root", "root", "644")
    for site in SITES:
        out = play(node, node.tmp, "env_cache_toggle.yml", site, pressluft_cache_state="enabled")
        assert out.rc == 0, out.explain()


def test_miss_then_hit_and_the_cache_dir_is_out_of_php_reach(node):
    first = get(node, "alpha")
    assert first[1] == "MISS"
    body = cached(node, "alpha")
    assert get(node, "alpha")[2] == body  # the same bytes: PHP did not run
    assert get(node, "alpha", method="HEAD")[1] in ("MISS", "HIT")
    # WordPress itself (index.php through try_files) is cached too.
    cached(node, "alpha", "/")
    assert node.stat("/var/cache/pressluft/page") == ("root", "root", "755")
    assert node.stat("/var/cache/pressluft/page/alpha_production") == ("www-data", "root", "700")
    denied = node.exec("touch", "/var/cache/pressluft/page/alpha_production/x", user="alpha_production",
                       check=False)
    assert denied.returncode != 0
    assert node.exec("ls", "/var/cache/pressluft/page/alpha_production", user="alpha_production",
                     check=False).returncode != 0


@pytest.mark.parametrize("method, path, cookie", [
    ("GET", "/stamp.php?q=1", ""),
    ("POST", "/stamp.php", ""),
    ("GET", "/stamp.php", "wordpress_logged_in_0123abcd=admin%7C1"),
    ("GET", "/stamp.php", "comment_author_0123abcd=someone"),
    ("GET", "/stamp.php", "woocommerce_items_in_cart=1; woocommerce_cart_hash=ab"),
    ("GET", "/stamp.php", "wp_woocommerce_session_0123=x"),
    ("GET", "/cart/", ""),
    ("GET", "/checkout/", ""),
    ("GET", "/my-account/orders/", ""),
])
def test_sessions_queries_and_shop_pages_bypass(node, method, path, cookie):
    hit = cached(node, "alpha")  # a HIT exists for /stamp.php: a bypass must not be served it
    status, xcache, body = get(node, "alpha", path, method, cookie)
    # nginx never looks up other methods than GET and HEAD (fastcgi_cache_methods): no status at all.
    assert xcache == ("" if method == "POST" else "BYPASS"), (method, path, cookie, status, xcache)
    assert body != hit


def test_a_response_that_sets_a_cookie_is_never_cached(node):
    for _ in range(3):
        status, xcache, _ = get(node, "alpha", "/cookie.php")
        assert status == 200 and xcache == "MISS"
    keys = node.sh("grep -ahr '^KEY: ' /var/cache/pressluft/page/alpha_production || true")
    assert "cookie.php" not in keys and "stamp.php" in keys


def test_url_purge_gives_a_miss_and_leaves_the_other_environment(node):
    alpha, beta = cached(node, "alpha"), cached(node, "beta")
    alpha_home = cached(node, "alpha", "/")
    out = play(node, node.tmp, "cache_purge.yml", "alpha", pressluft_cache_urls=["http://alpha.localhost/stamp.php"])
    assert out.rc == 0, out.explain()
    status, xcache, body = get(node, "alpha")
    assert (status, xcache) == (200, "MISS") and body != alpha
    assert get(node, "alpha", "/")[1:] == ("HIT", alpha_home)  # only the URL purged
    assert get(node, "beta")[1:] == ("HIT", beta)


def test_purge_refuses_a_host_of_another_environment(node):
    beta = cached(node, "beta")
    out = play(node, node.tmp, "cache_purge.yml", "alpha", pressluft_cache_urls=["http://beta.localhost/stamp.php"])
    assert out.rc != 0
    assert "beta.localhost" in out.stdout and "not served by this environment" in out.stdout
    assert get(node, "beta")[1:] == ("HIT", beta)


def test_whole_purge_of_one_environment_leaves_the_other(node):
    cached(node, "alpha")
    beta = cached(node, "beta")
    before = entries(node, "beta")
    out = play(node, node.tmp, "cache_purge.yml", "alpha")
    assert out.rc == 0, out.explain()
    assert entries(node, "alpha") == []
    assert entries(node, "beta") == before
    assert get(node, "alpha")[1] == "MISS"
    assert get(node, "beta")[1:] == ("HIT", beta)


def test_disabling_purges_and_stops_caching(node):
    cached(node, "alpha")
    out = play(node, node.tmp, "env_cache_toggle.yml", "alpha", pressluft_cache_state="disabled")
    assert out.rc == 0, out.explain()
    assert entries(node, "alpha") == []
    for _ in range(2):
        assert get(node, "alpha")[1] == ""
    assert get(node, "beta")[1] == "HIT"
    # Converging the environment keeps the choice of the toggle.
    again = play(node, node.tmp, "site_create.yml", "beta", pressluft_wordpress_src=str(wordpress_archive()))
    assert again.rc == 0, again.explain()
    assert get(node, "beta")[1] == "HIT"


# The Redis Object Cache plugin through the job (env_cache_toggle with pressluft_cache_kind=object): each
# environment's Redis user has a logical database of its own (docs/cache.md, "Object cache").
REDIS_CACHE_ZIP = Path("shared") / "vendor" / "wordpress-plugins" / "redis-cache-2.6.3.zip"
ADMIN_CLI = ("REDISCLI_AUTH=$(cat /etc/redis/pressluft-admin.pass) redis-cli -s /run/redis/redis-server.sock "
             "--user pressluft-admin")


def redis_keys(node, database: int) -> list[str]:
    return sorted(node.sh(f"{ADMIN_CLI} -n {database} --scan").splitlines())


# Keys without an expiry. A transient may expire between two reads (the plugin's activation redirect lives
# 30 s), so "beta's keys are kept" compares these.
PERSISTENT = "local r = {} for _, k in ipairs(redis.call('KEYS', '*')) do " \
             "if redis.call('TTL', k) == -1 then r[#r + 1] = k end end return r"


def persistent_keys(node, database: int) -> list[str]:
    return sorted(node.sh(f"{ADMIN_CLI} -n {database} EVAL \"{PERSISTENT}\" 0").splitlines())


def as_env(node, site: str, *args: str, check: bool = True) -> str:
    return node.exec("runuser", "-u", f"{site}_production", "--", "wp",
                     f"--path=/var/www/sites/{site}/production/current", *args, check=check).stdout


def live_release(node, site: str) -> str:
    return node.sh(f"readlink /var/www/sites/{site}/production/current").strip()


def test_object_cache_keeps_environments_apart(node):
    """alpha through the job; beta, for time (each release build with its checks costs ~50 s here), by the
    harness as root: the plugin unzipped into its live release, the drop-in copied, the plugin activated."""
    zips = [base / REDIS_CACHE_ZIP for base in ROOT.parents if (base / REDIS_CACHE_ZIP).is_file()]
    if not zips:
        pytest.skip(f"needs <clone>/../{REDIS_CACHE_ZIP} (the upstream Redis Object Cache zip)")
    before = live_release(node, "alpha")
    out = play(node, node.tmp, "env_cache_toggle.yml", "alpha", pressluft_cache_kind="object",
               pressluft_cache_state="enabled", pressluft_object_cache_zip=str(zips[0]))
    assert out.rc == 0, out.explain()
    assert live_release(node, "alpha") != before  # a new release, the old one untouched
    content = "/var/www/sites/beta/production/current/wp-content"
    node.exec("cp", "-r", "/var/www/sites/alpha/production/current/wp-content/plugins/redis-cache",
              f"{content}/plugins/")
    node.exec("cp", f"{content}/plugins/redis-cache/includes/object-cache.php", f"{content}/object-cache.php")
    as_env(node, "beta", "plugin", "activate", "redis-cache")
    databases = {}
    for site in SITES:
        status = as_env(node, site, "redis", "status")
        assert "Status: Connected" in status and "Drop-in: Valid" in status, status
        as_env(node, site, "cache", "set", "pressluft-test", site)
        databases[site] = int(node.sh(f"grep -o \"WP_REDIS_DATABASE', [0-9]*\" "
                                      f"/var/www/sites/{site}/production/shared/wp-config.php").split()[-1])
    assert len(set(databases.values())) == 2 and 0 not in databases.values(), databases
    assert redis_keys(node, 0) == []
    beta = persistent_keys(node, databases["beta"])
    marker = "beta_production:wp:default:pressluft-test"  # prefix, table prefix without "_", group, key
    assert marker in beta and all(k.startswith("beta_production:") for k in beta)
    # alpha's user cannot read beta's keys, nor reach beta's database.
    secrets = "/etc/pressluft/secrets/alpha_production.json"
    read = "import json, sys; print(json.load(open(sys.argv[1]))['redis_password'])"
    password = node.exec("python3", "-c", read, secrets).stdout.strip()
    alpha_cli = (f"REDISCLI_AUTH='{password}' redis-cli -s /run/redis/redis-server.sock "
                 "--user alpha_production")
    assert "NOPERM" in node.sh(f"{alpha_cli} -n {databases['alpha']} GET {marker} 2>&1")
    assert "NOPERM" in node.sh(f"{alpha_cli} SELECT {databases['beta']} 2>&1")
    # The plugin's selective flush (SCAN MATCH alpha_production:* in alpha's database) leaves beta's keys.
    assert "Success" in as_env(node, "alpha", "cache", "flush")
    assert "alpha_production:wp:default:pressluft-test" not in redis_keys(node, databases["alpha"])
    assert persistent_keys(node, databases["beta"]) == beta
    assert as_env(node, "beta", "cache", "get", "pressluft-test").strip() == "beta"


def redis_database(node, site: str) -> int:
    return int(node.sh(f"grep -o \"WP_REDIS_DATABASE', [0-9]*\" "
                       f"/var/www/sites/{site}/production/shared/wp-config.php").split()[-1])


def test_object_cache_disable_removes_drop_in_plugin_and_the_environment_keys(node):
    """`cache disable --object` on alpha (after the test above enabled it): a release without the drop-in,
    the plugin inactive, `wp redis status` not connected, alpha's keys flushed and beta's kept."""
    dropin = "/var/www/sites/alpha/production/current/wp-content/object-cache.php"
    if node.exec("test", "-f", dropin, check=False).returncode != 0:
        pytest.skip("needs test_object_cache_keeps_environments_apart first (alpha's object cache enabled)")
    databases = {site: redis_database(node, site) for site in SITES}
    as_env(node, "alpha", "cache", "set", "pressluft-disable", "stale")
    assert "alpha_production:wp:default:pressluft-disable" in redis_keys(node, databases["alpha"])
    beta = persistent_keys(node, databases["beta"])
    before = live_release(node, "alpha")
    out = play(node, node.tmp, "env_cache_toggle.yml", "alpha", pressluft_cache_kind="object",
               pressluft_cache_state="disabled")
    assert out.rc == 0, out.explain()
    assert live_release(node, "alpha") != before
    assert node.exec("test", "-e", dropin, check=False).returncode != 0
    active = node.exec("runuser", "-u", "alpha_production", "--", "wp",
                       "--path=/var/www/sites/alpha/production/current", "plugin", "is-active", "redis-cache",
                       check=False)
    assert active.returncode == 1, active
    status = as_env(node, "alpha", "redis", "status", check=False)  # the command goes with the plugin
    assert "Status: Connected" not in status, status
    assert [k for k in redis_keys(node, databases["alpha"]) if k.startswith("alpha_production:")] == []
    assert persistent_keys(node, databases["beta"]) == beta
    assert as_env(node, "beta", "cache", "get", "pressluft-test").strip() == "beta"
