"""A node with more than 1,024 environments still reloads and serves every site (issue 21).

Debian's php-fpm starts with a soft limit of 1,024 descriptors and its master holds one listening socket
per pool: the reload after the ~1,014th pool failed ("Too many open files", "FPM initialization failed")
and took every site of that PHP version down. nginx holds two log files per environment in every process.
The node roles now size both services' limits; site jobs count the pools against FPM's limit before a
reload and refuse a pool past it.

Cheap enough for CI: the node is filled with generated pool files and server blocks (a PHP file shared by
all, per-site logs as site_env writes them), not with 1,000 site_create jobs; one real site_create then
reloads FPM and nginx through the product's path.
"""

from __future__ import annotations

import pytest

from tests.integration.test_site import Stack, http_get, wait_status
from tests.rig import nodes as rig

pytestmark = pytest.mark.node

GENERATED = 1100
FPM_CONF = "/etc/php/8.2/fpm/php-fpm.conf"
FILL = r"""
set -eu
install -d -m 0755 /var/www/gen
printf '%s' '<?php echo "gen ", $_SERVER["SERVER_NAME"];' >/var/www/gen/index.php
for i in $(seq -w 1 "$1"); do
  n="g${i}_production"
  cat >"/etc/php/8.2/fpm/pool.d/pressluft-$n.conf" <<POOL
[$n]
user = www-data
group = www-data
listen = /run/php/pressluft-$n.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = ondemand
pm.max_children = 1
pm.process_idle_timeout = 2s
POOL
  cat >"/etc/nginx/pressluft-sites/$n.conf" <<NGINX
server {
    listen 80;
    server_name g$i.localhost;
    root /var/www/gen;
    index index.php;
    access_log /var/log/nginx/$n.access.log;
    error_log /var/log/nginx/$n.error.log;
    location ~ \.php\$ { include snippets/pressluft-php.conf; fastcgi_pass unix:/run/php/pressluft-$n.sock; }
}
NGINX
done
"""


def fpm_master(node: rig.Node) -> tuple[str, int]:
    """(pid, open descriptors) of the PHP-FPM 8.2 master."""
    pid = node.exec("cat", "/run/php/php8.2-fpm.pid").stdout.strip()
    return pid, int(node.sh(f"ls /proc/{pid}/fd | wc -l").strip())


def sample() -> list[str]:
    """Every 50th generated site and the last ten."""
    picks = set(range(1, GENERATED + 1, 50)) | set(range(GENERATED - 9, GENERATED + 1))
    return [f"g{i:04d}.localhost" for i in sorted(picks)]


@pytest.fixture(scope="module")
def full(provisioned_node, tmp_path_factory):
    """The provisioned node with GENERATED environments besides the sites the tests create."""
    node = provisioned_node
    node.exec("bash", "-s", "--", str(GENERATED), input=FILL)
    return Stack(node, tmp_path_factory.mktemp("pools"))


def test_site_create_reloads_and_every_site_serves_past_1024_pools(full):
    node = full.node
    created = full.site("site_create.yml", "last")
    assert created.rc == 0, created.explain()
    assert "Last Title 7Q" in wait_status(node, "last.localhost", 200)
    for host in sample():
        assert wait_status(node, host, 200) == f"gen {host}"
    pid, fds = fpm_master(node)
    assert fds > GENERATED + 1, f"the FPM master holds one socket per pool: {fds} descriptors"
    limits = node.sh(f"grep 'open files' /proc/{pid}/limits")
    assert int(limits.split()[3]) > 1024, limits
    assert node.unit_active("php8.2-fpm") and node.unit_active("nginx")


def test_a_pool_past_the_fpm_limit_is_refused_and_every_site_keeps_serving(full):
    node = full.node
    pools = int(node.sh("grep -h '^\\[' /etc/php/8.2/fpm/pool.d/*.conf | wc -l").strip())
    pid_before, _ = fpm_master(node)
    # A limit with room for exactly the pools there are (the master keeps 32 descriptors for itself).
    node.sh(f"cp {FPM_CONF} /root/php-fpm.conf.orig && "
            f"sed -i 's/^rlimit_files = .*/rlimit_files = {pools + 32}/' {FPM_CONF} && "
            f"grep -q '^rlimit_files = {pools + 32}$' {FPM_CONF}")
    try:
        refused = full.site("site_create.yml", "over")
        assert refused.rc != 0
        assert f"open-files limit is {pools + 32}" in refused.stdout, refused.explain()
        assert node.exec("test", "-e", "/etc/php/8.2/fpm/pool.d/pressluft-over_production.conf",
                         check=False).returncode == 1, "the refused pool is not written"
    finally:
        node.sh(f"cp /root/php-fpm.conf.orig {FPM_CONF}")
    assert fpm_master(node)[0] == pid_before and node.unit_active("php8.2-fpm"), "FPM was not touched"
    for host in ["last.localhost", *sample()[-3:]]:
        status, _ = http_get(node, host)
        assert status == 200, host
