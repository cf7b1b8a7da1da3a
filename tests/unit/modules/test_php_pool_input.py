"""php_pool's main() in process on this host (which has no PHP-FPM): input checks and rendering in check mode.

Everything here fails or finishes before the module would touch /etc/php; the real runs are in
test_php_pool.py on a node.
"""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import php_pool

from tests.rig.ansible import run_module


def run(capsys, tmp_path, **args) -> dict:
    return run_module(php_pool, capsys, tmp_path, {"php_version": "8.2", **args})


@pytest.mark.parametrize(("args", "message"), [
    ({"site": "root"}, "reserved"),
    ({"site": "Shop"}, "invalid site name"),
    ({"site": "../../etc"}, "invalid site name"),
    ({"site": "shop", "env": "x"}, "invalid environment name"),
    ({"site": "shop", "php_version": "../8.2"}, "invalid PHP version"),
    ({"site": "shop", "php_version": "8"}, "invalid PHP version"),
    ({"site": "shop", "php_admin_values": {"display_errors": "off\nuser = root"}}, "single-line"),
    ({"site": "shop", "php_admin_values": {"a]": "1"}}, "not an ini directive name"),
    ({"site": "shop", "php_admin_values": {"x": ["list"]}}, "single-line scalar"),
    ({"site": "shop", "php_admin_values": {"x": None}}, "single-line scalar"),
    ({"site": "shop", "php_admin_values": {"open_basedir": "/"}}, "use the option open_basedir"),
    ({"site": "shop", "php_admin_values": {"session.save_path": "/tmp"}}, "use the option session_save_path"),
    ({"site": "shop", "php_admin_values": {"opcache.restrict_api": ""}}, "each other's opcache"),
    ({"site": "shop", "php_admin_values": {"opcache.validate_permission": False}}, "each other's opcache"),
    ({"site": "shop", "open_basedir": ["relative/dir"]}, "must be absolute"),
    ({"site": "shop", "error_log": "/var/log/a b.log"}, "must be absolute"),
    ({"site": "shop", "user": "Bad User"}, "not a valid user"),
    ({"site": "shop", "listen_group": "www data"}, "not a valid user"),
    ({"site": "shop", "listen_owner": "www-data\n"}, "not a valid user"),
    ({"site": "shop", "memory_limit": "256M\n"}, "not a size"),
    ({"site": "shop", "listen_mode": "777x"}, "not an octal mode"),
    ({"site": "shop", "process_idle_timeout": "10 s"}, "not a duration"),
    ({"site": "shop", "memory_limit": "lots"}, "not a size"),
    ({"site": "shop", "max_children": 0}, "max_children must be at least 1"),
    ({"site": "shop", "pm": "dynamic", "max_children": 2, "max_spare_servers": 3}, "pm=dynamic needs"),
    ({"site": "shop", "pm": "sometimes"}, "value of pm must be one of"),
])
def test_bad_input_fails_before_any_change(capsys, tmp_path, args, message):
    fencing = tmp_path / "fencing"
    result = run(capsys, tmp_path, fencing_token=3, fencing_dir=str(fencing), **args)
    assert result.get("failed") is True and message in result["msg"], result
    assert not fencing.exists(), "input is checked before the fencing token is recorded"


def test_check_mode_renders_without_php_fpm(capsys, tmp_path):
    # Users that exist on any host, so this passes too where php-fpm is installed (and runs -t).
    result = run(capsys, tmp_path, site="shop", env="staging", pm="static", max_children=3,
                 user="nobody", group="nogroup",
                 php_admin_values={"display_errors": False, "upload_max_filesize": "64M"},
                 _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] is True and result["reload_needed"] is True, result
    assert result["pool_file"] == "/etc/php/8.2/fpm/pool.d/pressluft-shop_staging.conf"
    after = result["diff"]["after"].splitlines()
    assert after[1:5] == ["[shop_staging]", "user = nobody", "group = nogroup",
                          "listen = /run/php/pressluft-shop_staging.sock"]
    for line in ("pm = static", "pm.max_children = 3", "php_admin_value[display_errors] = off",
                 "php_admin_value[upload_max_filesize] = 64M",
                 # no pool may list or reset the opcache it shares with the others (test_site.py proves it)
                 "php_admin_value[opcache.restrict_api] = /dev/null/",
                 "php_admin_flag[opcache.validate_permission] = on"):
        assert line in after
    assert not any(line.startswith("pm.process_idle_timeout") for line in after)
    assert list(tmp_path.iterdir()) == [], "check mode leaves no files behind"
