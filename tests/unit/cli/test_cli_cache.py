"""`pressluft cache enable|disable|purge` through Click's CliRunner on a real SQLite control plane."""

from __future__ import annotations

import json

import pytest

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job, Release
from tests.unit.cli.test_cli_backups import finish_next, js, run, sites  # noqa: F401  (fixture)


def payloads(url: str) -> list[tuple[str, dict]]:
    with db.session_factory(url)() as s:
        return [(j.type, j.payload) for j in s.query(Job).order_by(Job.id) if j.type != "site_create"]


def test_enable_disable_and_purge_queue_their_jobs(sites):  # noqa: F811
    made = js("cache", "enable", "shop")
    assert made == {"job_id": made["job_id"], "site": "shop", "env": "production", "state": "enabled",
                    "kind": "page"}
    finish_next(sites)
    assert "queued: env_cache_toggle blog/production disabled" in run("cache", "disable", "blog").stdout
    finish_next(sites)
    purge = js("cache", "purge", "shop", "--url", "http://shop.localhost/", "--url", "https://shop.localhost/a/")
    assert purge["urls"] == ["http://shop.localhost/", "https://shop.localhost/a/"]
    finish_next(sites)
    assert "cache_purge blog/production everything" in run("cache", "purge", "blog").stdout
    assert payloads(sites) == [
        ("env_cache_toggle", {"pressluft_cache_state": "enabled"}),
        ("env_cache_toggle", {"pressluft_cache_state": "disabled"}),
        ("cache_purge", {"pressluft_cache_urls": ["http://shop.localhost/", "https://shop.localhost/a/"]}),
        ("cache_purge", {}),
    ]


@pytest.mark.parametrize("url", [
    "http://blog.localhost/",  # another site's host: purging it from shop is refused
    "ftp://shop.localhost/", "http://shop.localhost/?p=1", "http://shop.localhost/#x", "shop.localhost/",
    "http://shop.localhost/a b", "http://Shop.localhost/", "http://shop.localhost\n/", "http://x/",
])
def test_bad_purge_urls_exit_2_and_queue_nothing(sites, url):  # noqa: F811
    result = run("cache", "purge", "shop", "--url", url, "--json", ok=False)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"]
    assert payloads(sites) == []


def test_bad_targets_and_too_many_urls_are_refused(sites):  # noqa: F811
    for target in ("Shop", "shop/Prod", "a/b/c"):
        assert run("cache", "enable", target, ok=False).exit_code == 2, target
    assert run("cache", "purge", "nosuch", ok=False).exit_code == 3
    many = [arg for i in range(101) for arg in ("--url", f"http://shop.localhost/{i}")]
    assert run("cache", "purge", "shop", *many, ok=False).exit_code == 2
    assert payloads(sites) == []


def releases(url: str) -> list[tuple[str, str]]:
    with db.session_factory(url)() as s:
        return [(r.release_id, str(r.state)) for r in s.query(Release).order_by(Release.id)]


def test_object_cache_queues_a_release_and_records_it_like_a_deploy(sites, tmp_path):  # noqa: F811
    zip_path = tmp_path / "redis-cache-2.6.3.zip"
    zip_path.write_bytes(b"PK")
    made = js("cache", "enable", "shop", "--object", "--plugin-zip", str(zip_path))
    assert made["kind"] == "object" and releases(sites) == [(made["release"], "building")]
    finish_next(sites, artifacts={"pressluft_object_cache": {"enabled": True, "release": made["release"]},
                                  "pressluft_release": {"id": made["release"], "state": "live"}})
    assert releases(sites) == [(made["release"], "live")]
    # Nothing to build (already on): the row made at enqueue goes.
    again = js("cache", "enable", "shop", "--object", "--plugin-zip", str(zip_path))
    finish_next(sites, artifacts={"pressluft_object_cache": {"enabled": True, "release": ""}})
    assert [r for r, _ in releases(sites)] == [made["release"]]
    assert "object cache disabled" in run("cache", "disable", "blog", "--object").stdout
    on = {"pressluft_cache_state": "enabled", "pressluft_cache_kind": "object",
          "pressluft_object_cache_zip": str(zip_path)}
    assert payloads(sites) == [
        ("env_cache_toggle", {**on, "pressluft_release": made["release"]}),
        ("env_cache_toggle", {**on, "pressluft_release": again["release"]}),
        ("env_cache_toggle", {"pressluft_cache_state": "disabled", "pressluft_cache_kind": "object",
                              "pressluft_release": payloads(sites)[-1][1]["pressluft_release"]}),
    ]


@pytest.mark.parametrize("args", [
    ["enable", "shop", "--plugin-zip", "/tmp/x.zip"],  # the page cache takes no plugin
    ["enable", "shop", "--object", "--plugin-zip", "relative.zip"],
    ["enable", "shop", "--object", "--plugin-zip", "/nonexistent/redis-cache.zip"],
    ["enable", "shop", "--object", "--plugin-zip", "/etc/passwd"],
])
def test_bad_object_cache_input_exits_2_and_queues_nothing(sites, args):  # noqa: F811
    assert run("cache", *args, ok=False).exit_code == 2, args
    assert payloads(sites) == [] and releases(sites) == []
