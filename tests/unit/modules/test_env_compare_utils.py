"""module_utils/_compare: what the safe update's comparison treats as the same page and what not."""

from __future__ import annotations

from ansible_collections.pressluft.wordpress.plugins.module_utils._compare import (
    compare,
    lines,
    normalise,
    on_host,
    php_errors,
    sitemap_locs,
)

HOSTS = ["safe7.shop.localhost", "shop.example.com"]
PROD = (
    '<html><head><link rel="stylesheet" href="https://shop.example.com/wp-includes/a.css?ver=6.4.2">'
    '<script>var wpApiSettings = {"root":"https:\\/\\/shop.example.com\\/wp-json\\/","nonce":"0123456789"};'
    '</script></head><body><time datetime="2026-12-06T14:03:11+00:00">x</time>'
    '<input type="hidden" name="_wpnonce" value="abcdef0123" /><p>Hello</p></body></html>'
)
CLONE = (
    '<html><head><link rel="stylesheet" href="http://safe7.shop.localhost/wp-includes/a.css?ver=6.5">'
    '<script>var wpApiSettings = {"root":"http:\\/\\/safe7.shop.localhost\\/wp-json\\/",'
    '"nonce":"fedcba9876"};'
    '</script></head><body><time datetime="2026-12-06T14:05:59+00:00">x</time>'
    '<input type="hidden" name="_wpnonce" value="99999aaaaa" /><p>Hello</p></body></html>'
)


def test_two_renders_of_one_page_are_equal_after_normalising():
    assert compare(normalise(PROD, HOSTS), normalise(CLONE, HOSTS)) == (0.0, [])
    # Without normalising they differ on almost every line.
    assert compare(PROD, CLONE)[0] > 0.3


def test_changed_markup_is_a_fraction_with_its_diff():
    changed = CLONE.replace("<p>Hello</p>", "<p>Hello</p><aside class=\"banner\">offer</aside>")
    fraction, diff = compare(normalise(PROD, HOSTS), normalise(changed, HOSTS))
    assert 0 < fraction < 0.5
    assert '+<aside class="banner">offer</aside>' in diff
    assert len(lines(PROD)) > 5


def test_sitemap_sample_stays_on_the_site_host():
    xml = ("<urlset><url><loc>https://shop.example.com/hello-world/</loc></url>"
           "<url><loc>https://evil.example.net/x/</loc></url><url><loc>https://shop.example.com:8443/y/</loc></url>"
           "<url><loc>javascript:alert(1)</loc></url>"
           "<url><loc>https://shop.example.com/a b/</loc></url></urlset>")
    paths = [on_host(u, "shop.example.com") for u in sitemap_locs(xml)]
    assert paths == ["/hello-world/", None, None, None]  # the one with a space is no <loc> match
    assert on_host("https://shop.example.com/?p=1&amp;x", "shop.example.com") == "/?p=1&amp;x"
    assert on_host("https://user:pw@shop.example.com/", "shop.example.com") is None


def test_php_errors_are_counted_by_kind():
    log = ("[06-Dec-2026 14:00:00 UTC] PHP Warning:  Undefined variable $x in /a.php on line 3\n"
           "[06-Dec-2026 14:00:01 UTC] PHP Fatal error:  Uncaught Error: Call to undefined function f()\n"
           "not an error\n")
    found, counts = php_errors(log)
    assert counts == {"Warning": 1, "Fatal error": 1} and len(found) == 2


def test_json_is_compared_key_by_key_and_long_lines_entirely():
    before = '{"name":"shop","routes":{"/a":{"methods":["GET"]},"/b":{}},"home":"https://shop.example.com"}'
    after = '{"home":"http://safe7.shop.localhost","name":"shop","routes":{"/a":{"methods":["GET","POST"]},"/b":{}}}'
    fraction, diff = compare(normalise(before, HOSTS), normalise(after, HOSTS))
    assert 0 < fraction < 0.3 and '+"POST"' in diff, diff
    style = "<style>" + "a{color:red}" * 100 + "</style>"
    assert compare(style, style.replace("red}</", "blue}</"))[0] == 1.0
