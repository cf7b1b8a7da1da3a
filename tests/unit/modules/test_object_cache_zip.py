"""Module object_cache: which zips it takes as the Redis Object Cache plugin (only `redis-cache/`, no links,
a Version header, the drop-in) and when the live release already is as asked. Building and switching a
release runs on a node (tests/integration/test_cache.py)."""

from __future__ import annotations

import stat
import zipfile

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules.object_cache import (
    ObjectCacheError,
    read_zip,
    wanted,
)

HEADER = b"<?php\n/**\n * Plugin Name: Redis Object Cache\n * Version: 2.6.3\n */\n"
DROPIN = b"<?php // drop-in\n"


def make(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, name)
            else:
                zf.writestr(name, data)
    return str(path)


def good():
    return {"redis-cache/redis-cache.php": HEADER, "redis-cache/includes/object-cache.php": DROPIN}


def test_the_plugin_zip_gives_its_version_and_drop_in(tmp_path):
    assert read_zip(make(tmp_path / "p.zip", good())) == ("2.6.3", DROPIN)


def link(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(("extra", "message"), [
    ({"other/x.php": b""}, "outside redis-cache/"),
    ({"redis-cache/../../x.php": b""}, "outside redis-cache/"),
    ({"/redis-cache/x.php": b""}, "outside redis-cache/"),
    ({"redis-cache/evil": link("redis-cache/evil")}, "symbolic link"),
])
def test_anything_but_the_plugin_directory_is_refused(tmp_path, extra, message):
    with pytest.raises(ObjectCacheError, match=message):
        read_zip(make(tmp_path / "p.zip", {**good(), **extra}))


def test_a_zip_without_drop_in_or_version_is_refused(tmp_path):
    with pytest.raises(ObjectCacheError, match="not the Redis Object Cache plugin"):
        read_zip(make(tmp_path / "a.zip", {"redis-cache/redis-cache.php": HEADER}))
    with pytest.raises(ObjectCacheError, match="names no Version"):
        read_zip(make(tmp_path / "b.zip", {**good(), "redis-cache/redis-cache.php": b"<?php\n"}))
    (tmp_path / "c.zip").write_bytes(b"not a zip")
    with pytest.raises(ObjectCacheError, match="cannot read"):
        read_zip(str(tmp_path / "c.zip"))


def test_a_live_release_as_asked_needs_no_build(tmp_path):
    live = tmp_path / "release"
    (live / "wp-content/plugins/redis-cache").mkdir(parents=True)
    (live / "wp-content/plugins/redis-cache/redis-cache.php").write_bytes(HEADER)
    assert wanted(str(live), "disabled", "", None)
    assert not wanted(str(live), "enabled", "2.6.3", DROPIN)
    (live / "wp-content/object-cache.php").write_bytes(DROPIN)
    assert wanted(str(live), "enabled", "2.6.3", DROPIN)
    assert not wanted(str(live), "enabled", "2.6.4", DROPIN)
    assert not wanted(str(live), "disabled", "", None)


def test_a_zip_not_matching_the_pinned_sha256_is_refused_before_unpacking(tmp_path):
    import hashlib

    from ansible_collections.pressluft.wordpress.plugins.modules.object_cache import read_pinned

    path = make(tmp_path / "p.zip", good())
    data = open(path, "rb").read()
    pin = hashlib.sha256(data).hexdigest()
    assert read_pinned(path, pin) == data and read_pinned(path, pin.upper()) == data
    refused = f"has SHA-256 [0-9a-f]{{64}}, not the pinned {'0' * 64}: refused"
    with pytest.raises(ObjectCacheError, match=refused):
        read_pinned(path, "0" * 64)
    # One byte changed (a tampered or truncated download) is another digest.
    (tmp_path / "p.zip").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ObjectCacheError, match="refused"):
        read_pinned(path, pin)


def test_the_role_pins_the_vendored_upstream_zip():
    """The role's default pin is the SHA-256 of the upstream 2.6.3 zip (the offline copy is that zip)."""
    import hashlib
    from pathlib import Path

    import yaml

    defaults = yaml.safe_load(Path("roles/object_cache/defaults/main.yml").read_text())
    vendored = Path("/work/shared/vendor/wordpress-plugins/redis-cache-2.6.3.zip")
    if not vendored.exists():
        pytest.skip(f"{vendored} is not on this machine (the offline copy of the upstream zip)")
    assert defaults["object_cache_plugin_version"] == "2.6.3"
    assert defaults["object_cache_plugin_sha256"] == hashlib.sha256(vendored.read_bytes()).hexdigest()
