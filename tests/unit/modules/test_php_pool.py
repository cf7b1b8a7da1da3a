"""pressluft.wordpress.php_pool run for real (Ansible over SSH) against a node with php8.2-fpm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import parse_record

from tests.rig import nodes as rig
from tests.rig.ansible import run_playbook

pytestmark = pytest.mark.node

POOL_D = "/etc/php/8.2/fpm/pool.d"


@pytest.fixture(scope="module")
def php_node(module_node: rig.Node) -> rig.Node:
    """The shared node with PHP-FPM 8.2 (and cgi-fcgi to send FastCGI requests to a pool)."""
    module_node.exec("apt-get", "install", "-y", "-q", "--no-install-recommends", "php8.2-fpm", "libfcgi-bin",
                     timeout=600)
    assert module_node.unit_active("php8.2-fpm")
    return module_node


def make_env(node: rig.Node, site: str, env: str = "production") -> str:
    """What the site_env role does before the pool: the user and the tmp/logs directories."""
    user, root = f"{site}_{env}", f"/var/www/sites/{site}/{env}"
    node.sh(f"id {user} >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin {user}; "
            f"install -d -o root -g root {root}/current; "
            f"install -d -o {user} -g {user} {root}/tmp {root}/logs")
    return user


def pools(node: rig.Node, tmp_path: Path, *tasks: dict) -> list[dict]:
    """One playbook of php_pool tasks (keys check/diff become task keywords); returns their results.

    Tasks run in order and a failing one does not stop the rest, so one run covers a whole story.
    """
    play_tasks = []
    for i, args in enumerate(tasks):
        args = dict(args)
        task = {"name": f"Pool {i}", "ignore_errors": True, "check_mode": args.pop("check", False),
                "diff": args.pop("diff", False)}
        task["pressluft.wordpress.php_pool"] = {"php_version": "8.2", **args}
        play_tasks.append(task)
    book = tmp_path / f"pool-{len(list(tmp_path.iterdir()))}.yml"
    book.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": play_tasks}]))
    r = run_playbook(book, rig.inventory([node]), tmp_path)
    assert r.rc == 0, r.explain()
    results = [t["hosts"][node.name] for t in json.loads(r.stdout)["plays"][0]["tasks"]]
    assert len(results) == len(tasks), r.explain()
    return results


def pool_dir(node: rig.Node) -> list[str]:
    return sorted(node.sh(f"ls -A {POOL_D}").split())


def failed_with(result: dict, message: str) -> bool:
    return bool(result.get("failed")) and message in result.get("msg", "")


def test_renders_pool_and_second_run_changes_nothing(php_node, tmp_path):
    make_env(php_node, "render")
    args = {"site": "render", "max_children": 7, "php_admin_values": {"upload_max_filesize": "64M"}}
    first, again = pools(php_node, tmp_path, args, args)
    assert first["changed"] is True and first["reload_needed"] is True, first
    path = f"{POOL_D}/pressluft-render_production.conf"
    assert first["pool_file"] == path
    assert first["socket"] == "/run/php/pressluft-render_production.sock"
    text = php_node.exec("cat", path).stdout
    for line in ("[render_production]", "user = render_production", "group = render_production",
                 "listen = /run/php/pressluft-render_production.sock", "listen.owner = www-data",
                 "listen.mode = 0660", "pm = ondemand", "pm.max_children = 7",
                 "pm.process_idle_timeout = 10s",
                 "php_admin_value[open_basedir] = /var/www/sites/render/production",
                 "php_admin_value[upload_tmp_dir] = /var/www/sites/render/production/tmp",
                 "php_admin_value[session.save_path] = /var/www/sites/render/production/tmp",
                 "php_admin_value[error_log] = /var/www/sites/render/production/logs/php-error.log",
                 "php_admin_value[upload_max_filesize] = 64M"):
        assert line in text.splitlines(), f"{line!r} missing from\n{text}"
    assert php_node.stat(path) == ("root", "root", "644")
    assert again["changed"] is False and again["reload_needed"] is False, again
    assert not [f for f in pool_dir(php_node) if f.endswith(".tmp")]


def test_check_mode_and_diff_change_nothing(php_node, tmp_path):
    make_env(php_node, "checked", "staging")
    args = {"site": "checked", "env": "staging"}
    planned, created, dynamic, noop = pools(
        php_node, tmp_path, {**args, "check": True, "diff": True}, args,
        {**args, "check": True, "diff": True, "pm": "dynamic", "max_children": 9}, {**args, "check": True})
    assert planned["changed"] is True and planned["reload_needed"] is True, planned
    assert planned["diff"]["before"] == "" and "user = checked_staging" in planned["diff"]["after"]
    assert created["changed"] is True, "the check run must not have written the file"
    assert dynamic["changed"] is True, dynamic
    assert "pm = ondemand" in dynamic["diff"]["before"] and "pm = dynamic" in dynamic["diff"]["after"]
    assert "pm.max_spare_servers = 3" in dynamic["diff"]["after"]
    assert noop["changed"] is False, noop
    text = php_node.exec("cat", f"{POOL_D}/pressluft-checked_staging.conf").stdout
    assert text == dynamic["diff"]["before"]


def test_php_fpm_rejects_bad_value_and_keeps_old_file(php_node, tmp_path):
    make_env(php_node, "rejected")
    path = f"{POOL_D}/pressluft-rejected_production.conf"
    listing = pool_dir(php_node)
    blocked = f"{POOL_D}/pressluft-blocked_production.conf"
    php_node.exec("mkdir", blocked)
    try:
        good, bad, nouser, isdir = pools(
            php_node, tmp_path, {"site": "rejected"},
            {"site": "rejected", "php_admin_values": {"upload_max_filesize": "64M=x"}},
            {"site": "nouser"}, {"site": "blocked", "state": "absent"})
    finally:
        php_node.exec("rmdir", blocked)
    assert failed_with(isdir, "is a directory"), isdir
    assert good["changed"] is True, good
    assert failed_with(bad, "php-fpm rejected the pool") and "syntax error" in bad["msg"], bad
    assert "64M=x" not in php_node.exec("cat", path).stdout
    # A pool whose user does not exist is refused by php-fpm -t the same way.
    assert failed_with(nouser, "cannot get uid"), nouser
    # Nothing but the good pool was added: no candidate files are left behind.
    assert pool_dir(php_node) == sorted([*listing, "pressluft-rejected_production.conf"])


def test_absent_removes_the_pool(php_node, tmp_path):
    make_env(php_node, "gone")
    gone = {"site": "gone", "state": "absent"}
    _, planned, removed, again = pools(php_node, tmp_path, {"site": "gone"}, {**gone, "check": True},
                                       gone, gone)
    assert planned["changed"] is True, planned
    assert removed["changed"] is True and removed["reload_needed"] is True, "check mode must not remove"
    assert again["changed"] is False and again["reload_needed"] is False, again
    assert "pressluft-gone_production.conf" not in pool_dir(php_node)


UNUSED_FENCING = "/var/lib/pressluft/fencing-unused"
BAD_INPUT = [  # the full range of input checks is in test_php_pool_input.py
    ({"site": "root"}, "reserved"),
    ({"site": "shop", "php_admin_values": {"display_errors": "off\nuser = root"}}, "single-line"),
    # Input is checked before the fencing token is recorded.
    ({"site": "shop", "fencing_token": 1, "fencing_dir": UNUSED_FENCING, "env": "x"}, "invalid environment"),
]


def test_bad_input_is_refused_and_writes_nothing(php_node, tmp_path):
    listing = pool_dir(php_node)
    results = pools(php_node, tmp_path, *(args for args, _ in BAD_INPUT))
    for (args, message), result in zip(BAD_INPUT, results, strict=True):
        assert failed_with(result, message), (args, result)
    assert pool_dir(php_node) == listing
    assert php_node.exec("test", "-e", UNUSED_FENCING, check=False).returncode == 1


def test_stale_fencing_token_changes_nothing(php_node, tmp_path):
    make_env(php_node, "fenced")
    path = f"{POOL_D}/pressluft-fenced_production.conf"
    first, stale, stale_absent = pools(
        php_node, tmp_path, {"site": "fenced", "fencing_token": 5},
        {"site": "fenced", "fencing_token": 4, "max_children": 20},
        {"site": "fenced", "fencing_token": 4, "state": "absent"})
    assert first["changed"] is True, first
    for result in (stale, stale_absent):
        assert failed_with(result, "stale fencing token 4") and result["stale_fencing_token"] is True, result
    assert "pm.max_children = 5" in php_node.exec("cat", path).stdout
    assert parse_record(php_node.exec("cat", "/var/lib/pressluft/fencing/fenced").stdout)["token"] == 5
    assert php_node.stat("/var/lib/pressluft/fencing")[2] == "700"
    (newer,) = pools(php_node, tmp_path, {"site": "fenced", "fencing_token": 6, "max_children": 20})
    assert newer["changed"] is True, newer
    assert parse_record(php_node.exec("cat", "/var/lib/pressluft/fencing/fenced").stdout)["token"] == 6


def test_workers_run_as_the_env_user_after_reload(php_node, tmp_path):
    user = make_env(php_node, "served")
    root = "/var/www/sites/served/production"
    pools(php_node, tmp_path, {"site": "served"})
    php_node.exec("install", "-m", "0644", "/dev/stdin", f"{root}/current/who.php",
                  input='<?php echo posix_getpwuid(posix_geteuid())["name"], " ", ini_get("open_basedir"), '
                        '" ", @file_get_contents("/etc/hostname") === false ? "fenced" : "open";')
    php_node.exec("systemctl", "reload", "php8.2-fpm")
    sock = "/run/php/pressluft-served_production.sock"
    rig._wait(lambda: php_node.exec("test", "-S", sock, check=False).returncode == 0, 30, "the pool socket")
    assert php_node.stat(sock)[:2] == ("www-data", "www-data")
    # nginx's user sends the request, as nginx will.
    out = php_node.exec("env", f"SCRIPT_FILENAME={root}/current/who.php", "REQUEST_METHOD=GET",
                        "cgi-fcgi", "-bind", "-connect", sock, user="www-data").stdout
    assert out.rstrip().endswith(f"{user} {root} fenced"), out
    workers = php_node.sh("ps -o user:32= -o args= -C php-fpm8.2 | grep 'pool served_production'")
    assert workers.split()[0] == user, workers


def test_a_new_pool_past_the_masters_open_files_limit_is_refused(php_node, tmp_path):
    """php-fpm -t passes a pool past the master's limit, but the reload after it would stop every pool."""
    make_env(php_node, "kept")
    make_env(php_node, "nofds")
    (first,) = pools(php_node, tmp_path, {"site": "kept"})
    assert first["changed"] is True, first
    count = int(php_node.sh(f"grep -h '^\\[' {POOL_D}/*.conf | wc -l").strip())
    conf = "/etc/php/8.2/fpm/php-fpm.conf"
    php_node.sh(f"cp {conf} {conf}.orig && sed -i '/^\\[global\\]/a rlimit_files = {count + 32}' {conf}")
    try:
        refused, update = pools(php_node, tmp_path, {"site": "nofds"}, {"site": "kept", "max_children": 9})
    finally:
        php_node.sh(f"mv {conf}.orig {conf}")
    assert failed_with(refused, f"open-files limit is {count + 32}"), refused
    assert "pressluft-nofds_production.conf" not in pool_dir(php_node)
    assert update["changed"] is True, "a pool that exists adds no socket: its update is not refused"
