"""Node queries against a real node (one node for the file): `pressluft login` links (once only, a GET or
HEAD burns nothing, never cacheable, bound to the environment's host, expiry, wp_login fired),
`pressluft site info` and `pressluft node status`.

The site is created through the CLI and the worker, so the must-use plugin comes from the site_env role.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.parse

import pytest

from tests.rig.control_plane import add_node, js, run, work
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

HOST = "login.example.test"
ALIAS = "alias.example.test"
ROOT = "/var/www/sites/shop/production"
# Test-only: records who logged in through the wp_login action (the release is root's; we are root).
RECORDER = ("<?php add_action('wp_login', function ($login) {"
            " update_option('pressluft_test_wp_login', $login); });\n")


@pytest.fixture(scope="module")
def site(control_plane, provisioned_node):
    node = provisioned_node
    add_node(node)
    created = js("site", "create", "shop", "--node", node.name, "--domain", HOST, "--domain", ALIAS,
                 "--wordpress", str(wordpress_archive()))
    assert work()[0]["id"] == created["job_id"]
    node.sh(f"d=$(readlink -f {ROOT}/current)/wp-content/mu-plugins; mkdir -p $d; "
            f"cat > $d/test-recorder.php <<'PHP'\n{RECORDER}PHP\n")
    return node


def request(node, method: str, url: str, host: str = HOST, body: str | None = None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    headers = {"Host": host}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode(errors="replace")
    conn.close()
    return resp.status, resp.headers, data


def token_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]


def wp(node, *args: str) -> str:
    return node.exec("runuser", "-u", "shop_production", "--", "/usr/local/bin/wp", f"--path={ROOT}/current",
                     *args).stdout.strip()


def post(node, url: str, host: str = HOST):
    return request(node, "POST", url.split("?")[0] + "?action=pressluft_login", host,
                   body=urllib.parse.urlencode({"token": token_of(url)}))


def test_login_link_works_once_and_a_get_or_head_burns_nothing(site):
    made = js("login", "shop")
    url = made["url"]
    assert url.startswith(f"http://{HOST}/wp-login.php?action=pressluft_login&token="), url
    token = token_of(url)
    assert re.fullmatch(r"[0-9a-f]{64}", token), "256 bits"
    assert made["user"] == "admin"
    # WordPress keeps the token's hash, never the token.
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert '"user"' in wp(site, "transient", "get", f"pressluft_login_{digest}", "--format=json")
    dump = site.exec("mysqldump", "--skip-extended-insert", "shop_production").stdout
    assert token not in dump

    for method in ("GET", "HEAD", "GET"):  # a mail scanner follows the link first
        status, headers, body = request(site, method, url)
        assert status == 200, (method, body[:500])
        assert "no-store" in headers["Cache-Control"], headers["Cache-Control"]
        assert not any("wordpress_logged_in" in c for c in headers.get_all("Set-Cookie") or [])
        if method == "GET":
            assert 'method="post"' in body and token in body

    status, headers, body = post(site, url)
    assert status == 303, body[:500]
    assert headers["Location"].startswith(f"http://{HOST}/wp-admin")
    assert any(c.startswith("wordpress_logged_in_") for c in headers.get_all("Set-Cookie") or [])
    assert "no-store" in headers["Cache-Control"]
    assert wp(site, "option", "get", "pressluft_test_wp_login") == "admin", "wp_login fired"

    status, _headers, body = post(site, url)
    assert status == 403
    assert "expired or has already been used" in body
    status, _headers, body = request(site, "GET", url)
    assert status == 403 and "expired or has already been used" in body


def test_an_expired_link_and_another_host_are_refused_with_a_clear_page(site):
    expired = js("login", "shop", "--ttl", "60", "--redirect", "/wp-admin/plugins.php")["url"]
    key = "pressluft_login_" + hashlib.sha256(token_of(expired).encode()).hexdigest()
    # Age the record instead of waiting: the plugin compares `expires` with the clock.
    wp(site, "eval", f"$r = get_transient('{key}'); $r['expires'] = time() - 1; "
       f"set_transient('{key}', $r, 60);")
    status, _h, body = post(site, expired)
    assert status == 403 and "expired or has already been used" in body

    other = js("login", "shop", "--redirect", "/wp-admin/plugins.php")["url"]
    status, _h, body = post(site, other, host=ALIAS)
    assert status == 403 and "another site address" in body
    status, headers, _body = post(site, other)  # refusals burn nothing: the right host still works
    assert status == 303 and headers["Location"] == f"http://{HOST}/wp-admin/plugins.php"


def test_login_refuses_an_unknown_user_with_wp_cli_error(site):
    r = run("login", "shop", "--user", "nobody", "--json", ok=False)
    assert r.exit_code == 14, r.output
    assert "no WordPress user nobody" in r.stdout


def test_site_info_and_node_status_in_one_query_each(site):
    info = js("site", "info", "shop")
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", info["wordpress"]["version"])
    assert info["php"]["version"].startswith("8.")
    assert info["table_prefix"] == "wp_"
    assert any(t["active"] for t in info["themes"])
    disk = info["disk"]
    assert disk["release"]["bytes"] > 1_000_000 and disk["release"]["complete"]
    assert disk["uploads"]["path"] == f"{ROOT}/shared/uploads"
    assert disk["database"]["bytes"] > 0
    status = js("node", "status", site.name)
    assert status["memory"]["total_bytes"] > status["memory"]["available_bytes"] > 0
    assert status["cpus"] >= 1 and any(d["path"] == "/" and d["free_bytes"] > 0 for d in status["disk"])
    actions = [a["action"] for a in js("audit", "list")]
    assert {"node_query.login", "node_query.site_info", "node_query.node_status"} <= set(actions)
