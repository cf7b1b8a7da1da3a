"""playbooks/node_provision.yml on one real node: the full stack (hardening off; its own tests cover it)."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.rig import wpcli
from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory

pytestmark = pytest.mark.node

POOL_MAX_MB = 256  # a ceiling below a quarter of any test machine's RAM, so the expected size is exact
SOCK = "/run/redis/redis-server.sock"


@pytest.fixture(scope="module")
def extravars() -> dict:
    return {"pressluft_hardening_enabled": False, **wpcli.extravars(),
            "node_mariadb_buffer_pool_max_mb": POOL_MAX_MB}


@pytest.fixture(scope="module")
def provisioned(module_node, extravars, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("provision")
    t0 = time.monotonic()
    result = run_playbook("node_provision.yml", inventory([module_node]), tmp, extravars=extravars)
    seconds = time.monotonic() - t0
    print(f"\nnode_provision.yml first run: {seconds:.1f}s, {result.changed} changed")
    assert result.rc == 0, result.explain()
    return module_node


def test_services_are_active(provisioned):
    units = ("nginx", "php8.2-fpm", "mariadb", "redis-server")
    for unit in units:
        assert provisioned.unit_active(unit), provisioned.sh(f"systemctl status {unit}", check=False)
    assert provisioned.exec("systemctl", "is-enabled", *units).stdout.split() == ["enabled"] * 4


def _get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _wait_for(node, path: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while node.exec("test", "-S", path, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.2)


# A throwaway environment served through the role's PHP snippet: proves the pressluft-sites include,
# the default server's 444, and that PHP sees the resolved release path, not the `current` symlink.
SITE = """server {
    listen 80;
    server_name known.test;
    root /srv/h3test/current;
    index index.php;
    location ~ \\.php$ {
        include snippets/pressluft-php.conf;
        fastcgi_pass unix:/run/php/h3test.sock;
    }
}
"""
POOL = """[h3test]
user = www-data
group = www-data
listen = /run/php/h3test.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = ondemand
pm.max_children = 1
"""


def test_nginx_refuses_unknown_hosts_and_passes_realpath_to_php(provisioned):
    node = provisioned
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        _get(node.http_port, "unknown.example")
    node.sh("mkdir -p /srv/h3test/releases/r1 && ln -sfn releases/r1 /srv/h3test/current && "
            "echo '<?php echo $_SERVER[\"SCRIPT_FILENAME\"], \"|\", $_SERVER[\"DOCUMENT_ROOT\"];' "
            ">/srv/h3test/releases/r1/index.php")
    node.exec("tee", "/etc/nginx/pressluft-sites/h3test.conf", input=SITE)
    node.exec("tee", "/etc/php/8.2/fpm/pool.d/h3test.conf", input=POOL)
    try:
        node.exec("systemctl", "reload", "php8.2-fpm", "nginx")
        _wait_for(node, "/run/php/h3test.sock")
        status, body = _get(node.http_port, "known.test", "/index.php")
        assert (status, body) == (200, "/srv/h3test/releases/r1/index.php|/srv/h3test/releases/r1")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            _get(node.http_port, "unknown.example")
        headers = node.sh("grep -c 'server_tokens off' /etc/nginx/nginx.conf")
        assert headers.strip() == "1"
    finally:
        node.exec("rm", "-rf", "/etc/nginx/pressluft-sites/h3test.conf",
                  "/etc/php/8.2/fpm/pool.d/h3test.conf", "/srv/h3test")
        node.exec("systemctl", "reload", "php8.2-fpm", "nginx")


def test_php_pools_settings_and_local_fact(provisioned):
    node = provisioned
    assert node.exec("test", "-e", "/etc/php/8.2/fpm/pool.d/www.conf", check=False).returncode == 1
    assert node.stat("/run/php/pressluft-idle-8.2.sock") == ("root", "root", "600")
    settings = node.exec("php-fpm8.2", "-tt").stderr
    assert "process_control_timeout = 30s" in settings, settings
    fact = json.loads(node.exec("cat", "/etc/ansible/facts.d/pressluft_php.fact").stdout)
    assert fact == {"versions": ["8.2"], "default_version": "8.2"}
    assert node.stat("/var/log/php") == ("root", "root", "711")


def test_mariadb_root_socket_and_settings(provisioned):
    node = provisioned
    assert node.exec("mysql", "-N", "-e", "select 1").stdout.strip() == "1"
    got = node.exec("mysql", "-N", "-e",
                    "select @@innodb_buffer_pool_size, @@performance_schema, @@bind_address").stdout.split()
    mem_mb = int(node.sh("awk '/^MemTotal/ {print $2}' /proc/meminfo")) // 1024
    expected_mb = max(128, min(POOL_MAX_MB, int(mem_mb * 0.25)))
    assert got == [str(expected_mb * 1024 * 1024), "0", "127.0.0.1"]


def test_redis_socket_and_acl(provisioned):
    node = provisioned
    assert node.stat(SOCK) == ("redis", "redis", "770")
    assert node.stat("/etc/redis/pressluft-admin.pass") == ("root", "root", "600")
    assert node.stat("/etc/redis")[2] == "700"
    anon = node.exec("redis-cli", "-s", SOCK, "ping", check=False)
    assert "NOAUTH" in anon.stdout + anon.stderr or "denied" in anon.stdout + anon.stderr, anon
    password = node.exec("cat", "/etc/redis/pressluft-admin.pass").stdout.strip()
    admin = ["redis-cli", "-s", SOCK, "--no-auth-warning", "--user", "pressluft-admin", "--pass", password]
    assert node.exec(*admin, "ping").stdout.strip() == "PONG"
    assert node.exec(*admin, "config", "get", "maxmemory-policy").stdout.split() == [
        "maxmemory-policy", "allkeys-lru"]
    wrong = node.exec(*admin[:-1], "wrong-password", "ping", check=False)
    assert "PONG" not in wrong.stdout
    # Environment users reach the socket through group redis, and the group opens nothing else.
    node.exec("useradd", "--groups", "redis", "h3member")
    node.exec("useradd", "h3other")
    assert node.exec(*admin, "ping", user="h3member").stdout.strip() == "PONG"
    other = node.exec(*admin, "ping", user="h3other", check=False)
    assert "PONG" not in other.stdout and "ermission denied" in other.stdout + other.stderr, other
    assert node.exec("ls", "/etc/redis", user="h3member", check=False).returncode != 0
    assert node.exec("ls", "/var/lib/redis", user="h3member", check=False).returncode != 0


def test_wpcli_is_the_pinned_file(provisioned):
    assert provisioned.stat("/usr/local/bin/wp") == ("root", "root", "755")
    digest = provisioned.exec("sha512sum", "/usr/local/bin/wp").stdout.split()[0]
    assert digest == wpcli.sha512()
    # The node's PHP runs it (as a user: WP-CLI refuses root without --allow-root).
    version = provisioned.exec("runuser", "-u", "www-data", "--", "/usr/local/bin/wp", "--version")
    assert version.stdout.strip() == f"WP-CLI {wpcli.VERSION}"


def test_wpcli_with_a_wrong_checksum_fails_and_changes_nothing(provisioned, tmp_path):
    other = tmp_path / "wp"
    other.write_text("<?php echo 'not the pinned file';\n")
    before = provisioned.exec("sha512sum", "/usr/local/bin/wp").stdout
    pb = tmp_path / "wpcli.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  roles: [pressluft.wordpress.node_wpcli]\n")
    result = run_playbook(pb, inventory([provisioned]), tmp_path,
                          extravars={"node_wpcli_src": str(other), "node_wpcli_sha512": "0" * 128})
    assert result.rc != 0 and "does not match node_wpcli_sha512" in result.stdout, result.explain()
    assert provisioned.exec("sha512sum", "/usr/local/bin/wp").stdout == before


def test_second_run_changes_nothing_and_keeps_environment_acl_users(provisioned, extravars, tmp_path):
    node = provisioned
    password = node.exec("cat", "/etc/redis/pressluft-admin.pass").stdout.strip()
    admin = ["redis-cli", "-s", SOCK, "--no-auth-warning", "--user", "pressluft-admin", "--pass", password]
    # As a site role does it: ACL SAVE rewrites users.acl in Redis' own form, which must stay unchanged.
    user = "h3test_production"
    node.exec(*admin, "ACL", "SETUSER", user, "on", ">envpass", f"~{user}:*", "+@all")
    assert node.exec(*admin, "ACL", "SAVE").stdout.strip() == "OK"
    result = run_playbook("node_provision.yml", inventory([node]), tmp_path, extravars=extravars)
    assert result.rc == 0, result.explain()
    assert result.changed == 0, result.changed_tasks()
    assert user in node.exec(*admin, "ACL", "USERS").stdout.split()


def test_check_mode_on_a_provisioned_node_changes_nothing(provisioned, extravars, tmp_path):
    result = run_playbook("node_provision.yml", inventory([provisioned]), tmp_path, extravars=extravars,
                          check=True)
    assert result.rc == 0, result.explain()
    assert result.changed == 0, result.changed_tasks()
