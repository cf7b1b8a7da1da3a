"""The setup every environment-scoped module shares (module_utils/_env.py), run through each module's main().

Refused input must change nothing, not even the fencing token record: a stale job's retry with good
input must still be refused, and a typo must not lock out the job that fixes it.
"""

from __future__ import annotations

import os

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _env, _fencing
from ansible_collections.pressluft.wordpress.plugins.modules import (
    backup,
    env_secrets,
    env_tree,
    nginx_site,
    php_pool,
    release_switch,
    site_probe,
    wp_site,
)

from tests.rig.ansible import run_module

FENCED = (backup, env_secrets, env_tree, nginx_site, php_pool, release_switch, wp_site)

# Per module: arguments a run needs, and one module-specific bad value with the message it gives.
BAD_INPUT = {
    backup: ({"id": "b1"}, {"id": "../b1"}, "invalid backup id"),
    env_secrets: ({}, {"initial_secrets": {"api_key": "x" * 20}}, "initial_secrets accepts only"),
    env_tree: ({"extra_groups": []}, {"extra_groups": ["bad group"]}, "invalid group name"),
    nginx_site: ({"state": "absent"},
                 {"state": "present", "content": "server {}", "sites_dir": "/nonexistent"},
                 "/nonexistent does not exist"),
    php_pool: ({"php_version": "8.2"}, {"memory_limit": "lots"}, "memory_limit 'lots' is not a size"),
    release_switch: ({"state": "pruned"}, {"keep": 0}, "keep must be at least 1"),
    wp_site: ({"state": "absent"}, {"state": "present", "version": "6.1.9", "url": "ftp://shop"},
              "invalid url"),
}


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    for fd in _fencing._HELD.values():
        os.close(fd)
    _fencing._HELD.clear()


def test_every_fenced_module_has_the_shared_options():
    shared = _env.env_argument_spec()
    assert set(shared) == {"site", "env", *_fencing.FENCING_ARGSPEC}
    assert set(_env.env_argument_spec(fencing=False)) == {"site", "env"}
    for module in FENCED:
        assert "pressluft.wordpress.env" in module.DOCUMENTATION, module.__name__
        assert "pressluft.wordpress.fencing" in module.DOCUMENTATION, module.__name__
    assert "pressluft.wordpress.fencing" not in site_probe.DOCUMENTATION  # read-only: no fencing


@pytest.mark.parametrize("module", FENCED, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("names", [{"site": "Shop"}, {"site": "root"}, {"site": "shop", "env": "prod-1"}])
def test_bad_names_are_refused_before_the_fence(module, names, capsys, tmp_path):
    fencing = tmp_path / "fencing"
    base = BAD_INPUT[module][0]
    out = run_module(module, capsys, tmp_path,
                     {**base, **names, "fencing_token": 5, "fencing_dir": str(fencing)})
    assert out.get("failed") is True and "name" in out["msg"], out
    assert not fencing.exists()


@pytest.mark.parametrize("module", FENCED, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_bad_module_input_is_refused_before_the_fence(module, capsys, tmp_path):
    fencing = tmp_path / "fencing"
    base, bad, msg = BAD_INPUT[module]
    out = run_module(module, capsys, tmp_path,
                     {**base, **bad, "site": "shop", "fencing_token": 5, "fencing_dir": str(fencing)})
    assert out.get("failed") is True and msg in out["msg"], out
    assert not fencing.exists()


@pytest.mark.parametrize("module", [backup, wp_site], ids=["backup", "wp_site"])
def test_wp_cli_never_runs_as_root(module, capsys, tmp_path):
    fencing = tmp_path / "fencing"
    base = {"id": "b1"} if module is backup else {"version": "6.1.9", "url": "https://shop.example"}
    out = run_module(module, capsys, tmp_path, {**base, "site": "shop", "run_as": "root", "fencing_token": 5,
                                                 "fencing_dir": str(fencing)})
    assert out.get("failed") is True and "run_as must not be root" in out["msg"], out
    assert not fencing.exists()


def test_good_input_records_the_token_and_a_lower_one_is_stale(capsys, tmp_path):
    fencing = tmp_path / "fencing"
    args = {"site": "shop", "state": "absent", "sites_dir": str(tmp_path), "fencing_dir": str(fencing)}
    out = run_module(nginx_site, capsys, tmp_path, {**args, "fencing_token": 7})
    assert out["changed"] is False and _fencing.parse_record((fencing / "shop").read_text())["token"] == 7
    out = run_module(nginx_site, capsys, tmp_path, {**args, "fencing_token": 6})
    assert out.get("stale_fencing_token") is True, out
