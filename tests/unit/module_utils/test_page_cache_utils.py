"""module_utils/_page_cache.py: purge URL checks, nginx's entry paths, the rules. Real nginx runs them in
tests/integration/test_cache.py; here what a purge computes and refuses."""

from __future__ import annotations

import hashlib

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _page_cache as pc
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names

OWNED = {"shop.example.com", "www.shop.example.com"}


def test_server_names_reads_every_server_name_line():
    conf = ("server {\n  server_name shop.example.com www.shop.example.com;\n}\n"
            "server {\n\tserver_name  b.example;\n}")
    assert pc.server_names(conf) == {"shop.example.com", "www.shop.example.com", "b.example"}
    assert pc.server_names("# server_name evil.example;\n") == set()


def test_check_url_accepts_owned_hosts():
    assert pc.check_url("https://shop.example.com/a/b/", OWNED) == ("https", "shop.example.com", "/a/b/")
    assert pc.check_url("http://www.shop.example.com", OWNED) == ("http", "www.shop.example.com", "/")


@pytest.mark.parametrize("url, says", [
    ("http://other.example.com/", "not served by this environment"),
    ("http://shop.example.com/?p=1", "query"),
    ("http://shop.example.com/#top", "query"),
    ("ftp://shop.example.com/", "invalid URL"),
    ("http://shop.example.com/a b", "invalid URL"),
    ("http://shop.example.com/\n", "invalid URL"),
    ("http://Shop.example.com/", "invalid URL"),
    ("http://shop..example.com/", "domain"),
    ("http://../", "domain"),
    (None, "invalid URL"),
])
def test_check_url_refuses(url, says):
    with pytest.raises(ValueError, match=says):
        pc.check_url(url, OWNED)


def test_entry_path_follows_nginx_levels_1_2():
    key = "httpsGETshop.example.com/"
    digest = hashlib.md5(key.encode()).hexdigest()
    path = pc.entry_path("/c", key)
    assert path == f"/c/{digest[-1]}/{digest[-3:-1]}/{digest}"
    entries = pc.url_entries("/c", "shop.example.com", "/")
    assert len(entries) == 4 and path in entries


def test_all_entries_and_remove_stay_inside_the_directory(tmp_path):
    mine, other = tmp_path / "a", tmp_path / "b"
    digest = "0123456789abcdef0123456789abcdef"
    for root in (mine, other):
        (root / "f" / "de").mkdir(parents=True)
        (root / "f" / "de" / digest).write_text("KEY: x\n")
    (mine / "f" / "de" / (digest + ".0000000001")).write_text("nginx's temporary file")
    (mine / "link").symlink_to(other, target_is_directory=True)
    found = pc.all_entries(str(mine))
    assert found == [str(mine / "f" / "de" / digest)]
    assert pc.remove([*found, str(mine / "gone")]) == found
    assert (other / "f" / "de" / digest).exists()
    assert pc.all_entries(str(tmp_path / "missing")) == []


def test_rules_bypass_sessions_and_shop_pages_and_never_store_cookies():
    names = env_names("shop")
    rules = pc.render_switch(names, True, "10m")
    for needle in ("wordpress_logged_in_", "comment_author_", "woocommerce_items_in_cart",
                   "wp_woocommerce_session_", "/cart(/|$)", "/checkout(/|$)", "/my-account(/|$)",
                   '$query_string != ""', "!~ ^(GET|HEAD)$",
                   "fastcgi_no_cache $pressluft_cache_skip $upstream_http_set_cookie;",
                   "fastcgi_cache pressluft_shop_production;",
                   "add_header X-Cache $upstream_cache_status always;"):
        assert needle in rules, needle
    assert "fastcgi_cache " not in pc.render_switch(names, False, "10m")
    zone = pc.render_zone(names, "4m", "256m", "1h")
    assert "/page/shop_production levels=1:2 keys_zone=pressluft_shop_production:4m" in zone


@pytest.mark.parametrize("bad", ["", "0m", "10 m", "10m;", "1g", "10m\n"])
def test_sizes_and_times_are_whitelisted(bad):
    with pytest.raises(ValueError):
        pc.check_size("max_size", bad)
    with pytest.raises(ValueError):
        pc.check_time("valid", bad)
