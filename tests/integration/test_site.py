"""site_create / site_delete on one provisioned node: serving, isolation, idempotence, fencing, recovery."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node



def http_get(node, host: str, path: str = "/") -> tuple[int, str]:
    """One request through the node's nginx; (0, error) when nginx closes the connection (444)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=15)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (http.client.HTTPException, OSError) as exc:  # refused, reset or timed out (a loaded host)
        return 0, repr(exc)
    finally:
        conn.close()


def wait_status(node, host: str, want: int, path: str = "/", timeout: float = 20) -> str:
    """Poll until the node answers `want` for host (a fresh pool's socket appears just after reload)."""
    deadline = time.monotonic() + timeout
    status, body = http_get(node, host, path)
    while status != want and time.monotonic() < deadline:
        time.sleep(0.2)
        status, body = http_get(node, host, path)
    assert status == want, f"{host}{path}: {status} {body[:500]}"
    return body


class Stack:
    def __init__(self, node, tmp):
        self.node, self.tmp = node, tmp
        self.archive = wordpress_archive()

    def site(self, playbook: str, site: str, check: bool = False, env: dict | None = None, **extra):
        extravars = {"pressluft_target": "nodes", "pressluft_site": site}
        if playbook == "site_create.yml":
            extravars.update(pressluft_wordpress_src=str(self.archive),
                             pressluft_wordpress_title=f"{site.capitalize()} Title 7Q")
        extravars.update(extra)
        return run_playbook(playbook, inventory([self.node]), self.tmp, extravars=extravars, check=check,
                            env=env)

    def snapshot(self) -> str:
        """Everything a site run may touch, as text: compared before/after refused runs."""
        return self.node.sh(
            "getent passwd | sort; getent group | sort; "
            "ls -la --time-style=full-iso /etc/nginx/pressluft-sites /etc/php/*/fpm/pool.d "
            "/etc/pressluft/secrets /var/www/sites 2>&1; "
            "mysql -N -e 'SELECT user FROM mysql.user ORDER BY 1; SHOW DATABASES'; "
            "ls -la --time-style=full-iso /var/lib/pressluft/fencing /var/lib/pressluft/reload 2>&1; "
            "REDISCLI_AUTH=$(cat /etc/redis/pressluft-admin.pass) redis-cli --no-auth-warning "
            "-s /run/redis/redis-server.sock --user pressluft-admin ACL USERS")


@pytest.fixture(scope="module")
def stack(provisioned_node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    s = Stack(provisioned_node, tmp)
    for site in ("alpha", "beta"):
        created = s.site("site_create.yml", site)
        assert created.rc == 0, created.explain()
    return s


def test_site_serves_its_title_through_nginx(stack):
    body = wait_status(stack.node, "alpha.localhost", 200)
    assert "<title>Alpha Title 7Q" in body
    assert "Beta Title 7Q" in wait_status(stack.node, "beta.localhost", 200)
    assert http_get(stack.node, "unknown.localhost")[0] == 0  # the default server closes (444)


def test_layout_and_permissions(stack):
    node = stack.node
    root = "/var/www/sites/alpha/production"
    # PHP runs as alpha_production: the root and releases/ are root's; nginx may only traverse them.
    for path in (root, f"{root}/releases"):
        assert node.stat(path) == ("root", "alpha_production", "750"), path
        acl = node.exec("getfacl", "-cp", path).stdout.split()
        assert acl == ["user::rwx", "user:www-data:--x", "group::r-x", "mask::r-x", "other::---"], (path, acl)
    assert node.stat(f"{root}/shared/uploads") == ("alpha_production", "www-data", "2750")
    assert node.stat(f"{root}/shared/wp-config.php") == ("root", "alpha_production", "640")
    assert node.stat("/etc/pressluft/secrets/alpha_production.json") == ("root", "root", "600")
    passwd = node.exec("getent", "passwd", "alpha_production").stdout.split(":")
    assert passwd[5] == root and passwd[6].strip() == "/usr/sbin/nologin"
    uids = {node.exec("id", "-u", f"{s}_production").stdout for s in ("alpha", "beta")}
    assert len(uids) == 2
    assert "redis" in node.exec("id", "-nG", "alpha_production").stdout.split()


def test_fpm_workers_run_as_the_env_user(stack):
    wait_status(stack.node, "alpha.localhost", 200)
    users = stack.node.sh("ps -o user:32=,args= -C php-fpm8.2 | grep 'pool alpha_production' || true")
    assert users and all(line.split()[0] == "alpha_production" for line in users.splitlines()), users


ISOLATION_PHP = r"""
$out = [];
$out['config'] = @file_get_contents('/var/www/sites/beta/production/shared/wp-config.php') !== false;
$out['uploads'] = @scandir('/var/www/sites/beta/production/shared/uploads') !== false;
$out['root'] = @scandir('/var/www/sites/beta/production') !== false;
$out['secrets'] = @file_get_contents('/etc/pressluft/secrets/beta_production.json') !== false;
$cfg = file_get_contents('/var/www/sites/alpha/production/shared/wp-config.php');
preg_match("/'DB_PASSWORD', '([^']*)'/", $cfg, $db);
preg_match("/WP_REDIS_PASSWORD', array\('alpha_production', '([^']*)'/", $cfg, $rp);
mysqli_report(MYSQLI_REPORT_OFF);
$own = @new mysqli('localhost', 'alpha_production', $db[1], 'alpha_production');
$out['own_db'] = !$own->connect_errno;
$other = @new mysqli('localhost', 'alpha_production', $db[1], 'beta_production');
$out['other_db'] = !$other->connect_errno;
$r = new Redis();
$r->connect('/run/redis/redis-server.sock');
$out['redis_auth'] = $r->auth(['alpha_production', $rp[1]]);
$out['own_key'] = $r->set('alpha_production:k', 'v');
try { $out['other_key'] = $r->get('beta_production:secret') !== false; }
catch (RedisException $e) { $out['other_key'] = false; }
try { $k = $r->keys('*'); $out['keys'] = is_array($k) && count($k) > 0; }
catch (RedisException $e) { $out['keys'] = false; }
echo json_encode($out);
"""


def test_sites_are_isolated(stack):
    node = stack.node
    admin = "REDISCLI_AUTH=$(cat /etc/redis/pressluft-admin.pass) redis-cli --no-auth-warning " \
            "-s /run/redis/redis-server.sock --user pressluft-admin"
    node.sh(f"{admin} SET beta_production:secret s3cret")
    out = json.loads(node.exec("php", "-r", ISOLATION_PHP, user="alpha_production").stdout)
    assert out == {"config": False, "uploads": False, "root": False, "secrets": False, "own_db": True,
                   "other_db": False, "redis_auth": True, "own_key": True, "other_key": False,
                   "keys": False}, out


# What a compromised site would do to outlive the next deploy: point current at code it can write, or plant a
# release or state that release_switch would trust. Its PHP runs as the environment user.
TAMPER_PHP = r"""
$root = '/var/www/sites/alpha/production';
$live = readlink("$root/current");
$out = [];
$out['link_current'] = @symlink("$root/shared/uploads", "$root/current.new") || @unlink("$root/current");
$out['add_release'] = @mkdir("$root/releases/planted");
$out['rename_release'] = @rename($live, "$root/releases/moved");
$out['write_state'] = @file_put_contents("$root/.pressluft-releases.json", '{}') !== false;
$out['uploads'] = @file_put_contents("$root/shared/uploads/ok.txt", 'ok') !== false;
echo json_encode($out);
"""


def test_php_cannot_change_its_own_code_or_release_state(stack):
    node = stack.node
    out = json.loads(node.exec("php", "-r", TAMPER_PHP, user="alpha_production").stdout)
    assert out == {"link_current": False, "add_release": False, "rename_release": False, "write_state": False,
                   "uploads": True}, out
    assert "Alpha Title 7Q" in wait_status(node, "alpha.localhost", 200)


def test_php_in_uploads_never_runs(stack):
    node = stack.node
    uploads = "/var/www/sites/alpha/production/shared/uploads"
    node.exec("install", "-o", "alpha_production", "-g", "www-data", "-m", "0644", "/dev/stdin",
              f"{uploads}/evil.php", input="<?php echo 'EXEC' . 'UTED';")
    for path in ("/wp-content/uploads/evil.php", "/wp-content/uploads/evil.php/x",
                 "/wp-content/uploads/EVIL.PHP"):
        status, body = http_get(node, "alpha.localhost", path)
        assert status in (403, 404) and "EXECUTED" not in body, (path, status, body[:200])
    assert http_get(node, "alpha.localhost", "/wp-config.php")[0] == 403
    assert http_get(node, "alpha.localhost", "/.htaccess")[0] == 403


def test_second_run_and_check_mode_change_nothing(stack):
    again = stack.site("site_create.yml", "alpha")
    assert again.rc == 0 and again.changed_tasks() == [], again.explain()
    check = stack.site("site_create.yml", "alpha", check=True)
    assert check.rc == 0 and check.changed_tasks() == [], check.explain()


def test_a_drifted_database_user_is_converged_back(stack):
    """env_tree puts back the password of the secrets file and ALL on the site's own database only."""
    node = stack.node
    node.sh("mysql -e \"ALTER USER 'alpha_production'@'localhost' IDENTIFIED BY 'drifted-password-123'; "
            "GRANT SELECT ON beta_production.* TO 'alpha_production'@'localhost'\"")
    assert http_get(node, "alpha.localhost")[0] == 500  # WordPress cannot reach its database
    again = stack.site("site_create.yml", "alpha")
    assert again.rc == 0, again.explain()
    assert any("create the users, directories, database" in t for t in again.changed_tasks()), again.explain()
    grants = node.sh("mysql -N --raw -e \"SHOW GRANTS FOR 'alpha_production'@'localhost'\"").splitlines()
    assert [g for g in grants if not g.startswith("GRANT USAGE")] == [
        "GRANT ALL PRIVILEGES ON `alpha\\_production`.* TO `alpha_production`@`localhost`"], grants
    assert "Alpha Title 7Q" in wait_status(node, "alpha.localhost", 200)
    assert stack.site("site_create.yml", "alpha").changed_tasks() == []


@pytest.mark.parametrize("extra", [
    {"pressluft_site": "Alpha"}, {"pressluft_site": "al.pha"}, {"pressluft_site": "a;touch /tmp/x"},
    {"pressluft_site": "a" * 21}, {"pressluft_site": "root"}, {"pressluft_site": "mysql"},
    {"pressluft_site": "www-data"}, {"pressluft_site": "nginx"}, {"pressluft_env": "Prod"},
    {"pressluft_domains": ["gamma.localhost; evil"]}, {"pressluft_target": "all"},
], ids=["upper", "dot", "shell", "long", "root", "mysql", "www-data", "nginx", "env", "domain", "target"])
def test_bad_input_is_refused_before_the_node_is_touched(stack, extra):
    before = stack.snapshot()
    run = stack.site("site_create.yml", "gamma", **extra)
    assert run.rc != 0, run.explain()
    assert stack.node.name not in run.stats, run.explain()  # the node play never started
    assert stack.snapshot() == before


def test_stale_fencing_token_changes_nothing(stack):
    stack.node.sh("mkdir -p /var/lib/pressluft/fencing && echo 10 > /var/lib/pressluft/fencing/delta")
    before = stack.snapshot()
    stale = stack.site("site_create.yml", "delta", pressluft_fencing_token=5)
    assert stale.rc != 0 and "stale fencing token" in stale.stdout, stale.explain()
    assert stack.snapshot() == before
    # A stale delete of an existing site changes nothing either.
    stack.node.sh("echo 10 > /var/lib/pressluft/fencing/alpha")
    before = stack.snapshot()
    stale = stack.site("site_delete.yml", "alpha", pressluft_fencing_token=9)
    assert stale.rc != 0 and "stale fencing token" in stale.stdout, stale.explain()
    assert stack.snapshot() == before
    ok = stack.site("site_create.yml", "alpha", pressluft_fencing_token=11)
    assert ok.rc == 0 and ok.changed_tasks() == [], ok.explain()


def test_interrupted_run_converges(stack):
    """Config written, reload never ran (the run died in between): the next run reloads."""
    node = stack.node
    cut = stack.site("site_create.yml", "gamma", env={"ANSIBLE_SKIP_TAGS": "pressluft_reload"})
    assert cut.rc == 0, cut.explain()
    assert node.exec("test", "-f", "/etc/nginx/pressluft-sites/gamma_production.conf").returncode == 0
    assert http_get(node, "gamma.localhost")[0] == 0  # nginx has not loaded the server block
    again = stack.site("site_create.yml", "gamma")
    assert again.rc == 0, again.explain()
    assert "Gamma Title 7Q" in wait_status(node, "gamma.localhost", 200)
    # A lost marker only costs one extra reload.
    node.exec("rm", "-rf", "/var/lib/pressluft/reload")
    healed = stack.site("site_create.yml", "gamma")
    assert healed.rc == 0 and any("Reload nginx" in t for t in healed.changed_tasks()), healed.explain()
    wait_status(node, "gamma.localhost", 200)


# Site A's PHP asks opcache for every cached script and a reset, and prints what it got.
OPCACHE_PROBE = r"""<?php
$status = @opcache_get_status(true);
$reset = @opcache_reset();
echo json_encode(array('status' => is_array($status), 'reset' => $reset,
    'scripts' => is_array($status) ? array_keys($status['scripts']) : array(),
    'ini' => array(ini_get('opcache.restrict_api'), ini_get('opcache.validate_permission'))));
"""
# An observer pool of the same master whose API is allowed (its own root): it sees what is really cached.
OBSERVER_POOL = """[zz-observer]
user = www-data
group = www-data
listen = /run/php/zz-observer.sock
listen.owner = root
listen.mode = 0600
pm = ondemand
pm.max_children = 1
php_admin_value[opcache.restrict_api] = /var/lib/zz-observer/
"""
OBSERVER_SCRIPT = "<?php echo json_encode(array_keys(opcache_get_status(true)['scripts']));\n"
# One FastCGI GET of a script through a pool socket, run with the node's python3.
FASTCGI_GET = r"""
import socket, struct, sys
def rec(kind, body): return struct.pack('>BBHHBB', 1, kind, 1, len(body), 0, 0) + body
def pair(k, v): return bytes([len(k), len(v)]) + k + v
params = b''.join(pair(k.encode(), v.encode()) for k, v in (
    ('SCRIPT_FILENAME', sys.argv[2]), ('REQUEST_METHOD', 'GET'), ('GATEWAY_INTERFACE', 'CGI/1.1'),
    ('SERVER_PROTOCOL', 'HTTP/1.1'), ('REQUEST_URI', '/'), ('QUERY_STRING', '')))
s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])
s.sendall(rec(1, struct.pack('>HB5x', 1, 0)) + rec(4, params) + rec(4, b'') + rec(5, b''))
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
out, i = b'', 0
while i + 8 <= len(data):
    _v, kind, _id, n, pad, _r = struct.unpack('>BBHHBB', data[i:i + 8])
    if kind == 6: out += data[i + 8:i + 8 + n]
    i += 8 + n + pad
sys.stdout.write(out.split(b'\r\n\r\n', 1)[1].decode())
"""


def cached_scripts(node) -> list[str]:
    out = node.exec("python3", "-c", FASTCGI_GET, "/run/php/zz-observer.sock",
                    "/var/lib/zz-observer/status.php")
    return json.loads(out.stdout)


def reload_fpm_and_wait(node, socket: str) -> None:
    node.exec("systemctl", "reload", "php8.2-fpm")
    deadline = time.monotonic() + 20
    while node.exec("test", "-S", socket, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"{socket} did not appear"
        time.sleep(0.2)


def test_a_site_can_neither_list_nor_reset_another_sites_opcache(stack):
    """PHP of alpha calls opcache_get_status() and opcache_reset(): no beta path, beta stays cached."""
    node = stack.node
    probe = "/var/www/sites/alpha/production/current/opcache-probe.php"
    node.exec("install", "-d", "-m", "0755", "/var/lib/zz-observer")
    node.exec("install", "-m", "0644", "/dev/stdin", "/var/lib/zz-observer/status.php", input=OBSERVER_SCRIPT)
    node.exec("install", "-m", "0644", "/dev/stdin", "/etc/php/8.2/fpm/pool.d/zz-observer.conf",
              input=OBSERVER_POOL)
    node.exec("install", "-m", "0644", "/dev/stdin", probe, input=OPCACHE_PROBE)
    try:
        node.exec("rm", "-f", "/run/php/zz-observer.sock")
        reload_fpm_and_wait(node, "/run/php/zz-observer.sock")
        deadline = time.monotonic() + 30  # beta's pool comes back on the first request after the reload
        while not any("/sites/beta/" in p for p in cached_scripts(node)):
            assert time.monotonic() < deadline, cached_scripts(node)
            wait_status(node, "beta.localhost", 200)
        got = json.loads(wait_status(node, "alpha.localhost", 200, "/opcache-probe.php"))
        assert not any("/sites/beta/" in p for p in got["scripts"]), got
        # The pool's php_admin_value holds for these INI_SYSTEM settings (FPM sets them in each worker).
        assert got == {"status": False, "reset": False, "scripts": [], "ini": ["/dev/null/", "1"]}, got
        wait_status(node, "alpha.localhost", 200)  # a pending reset would happen at a request's start
        assert any("/sites/beta/" in p for p in cached_scripts(node)), "beta's scripts were reset"
    finally:
        node.exec("rm", "-f", probe, "/etc/php/8.2/fpm/pool.d/zz-observer.conf")
        node.exec("rm", "-rf", "/var/lib/zz-observer")
        node.exec("systemctl", "reload", "php8.2-fpm")


def test_an_account_pressluft_did_not_create_is_never_adopted_nor_removed(stack):
    """An admin's john_doe: site john, env doe is refused by name; deleting that site leaves john_doe."""
    node = stack.node
    node.exec("useradd", "-m", "-s", "/bin/bash", "-c", "John Doe,,,", "john_doe")
    account = node.sh("getent passwd john_doe; getent group john_doe; id john_doe; ls -la /home/john_doe")
    created = stack.site("site_create.yml", "john", pressluft_env="doe")
    assert created.rc != 0 and "the Linux account john_doe exists and Pressluft did not create it" \
        in created.stdout, created.explain()
    assert node.sh("getent passwd john_doe; getent group john_doe; id john_doe; ls -la /home/john_doe") \
        == account
    for path in ("/var/www/sites/john", "/etc/pressluft/secrets/john_doe.json"):
        assert node.exec("test", "-e", path, check=False).returncode != 0, path
    deleted = stack.site("site_delete.yml", "john", pressluft_env="doe")
    assert deleted.rc == 0, deleted.explain()
    assert node.sh("getent passwd john_doe; getent group john_doe; id john_doe; ls -la /home/john_doe") \
        == account


def test_delete_removes_everything_and_spares_the_other_site(stack):
    node = stack.node
    gone = stack.site("site_delete.yml", "beta")
    assert gone.rc == 0, gone.explain()
    assert node.exec("getent", "passwd", "beta_production", check=False).returncode != 0
    assert node.exec("getent", "group", "beta_production", check=False).returncode != 0
    for path in ("/etc/php/8.2/fpm/pool.d/pressluft-beta_production.conf",
                 "/run/php/pressluft-beta_production.sock",
                 "/etc/nginx/pressluft-sites/beta_production.conf", "/var/www/sites/beta",
                 "/etc/pressluft/secrets/beta_production.json"):
        assert node.exec("test", "-e", path, check=False).returncode != 0, path
    assert "beta" not in node.sh("mysql -N -e 'SELECT user FROM mysql.user; SHOW DATABASES'")
    assert "beta_production" not in stack.snapshot()
    assert http_get(node, "beta.localhost")[0] == 0
    assert "Alpha Title 7Q" in wait_status(node, "alpha.localhost", 200)
    again = stack.site("site_delete.yml", "beta")
    assert again.rc == 0 and again.changed_tasks() == [], again.explain()
