"""A node that can run WordPress without the full stack: php-cli, MariaDB, the core archive, WP-CLI.

For tests of the modules that drive WP-CLI (the real phar, tests/rig/wpcli.py). The environment layout mirrors
role site_env (docs/contracts.md) so modules meet the tree they meet in production.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

from tests.rig import nodes as rig
from tests.rig import wpcli
from tests.rig.nodes import Node
from tests.rig.wordpress import Archive, build

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("php-cli", "php-mysql", "mariadb-server")
NODE_ARCHIVE = "/var/tmp/wordpress.tar.gz"
MYSQL_SOCKET = "/run/mysqld/mysqld.sock"


# Installing MariaDB and PHP costs 1-2 minutes: do it once per base image, in a derived image.
# policy-rc.d keeps the build from starting MariaDB; systemd starts it when a node boots.
CONTAINERFILE = f"""ARG BASE
FROM ${{BASE}}
RUN printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \\
 && (apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)} \\
     || (apt-get update -q && apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)})) \\
 && apt-get clean && rm -f /usr/sbin/policy-rc.d
"""


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, timeout=timeout)


def image() -> str:
    """The node image plus PHP and MariaDB, built when missing; tagged by base image and recipe."""
    base = _podman("image", "inspect", "--format", "{{.Id}}", rig.IMAGE).stdout.strip()
    key = hashlib.sha256(f"{base}\n{CONTAINERFILE}".encode()).hexdigest()[:16]
    tag = f"localhost/pressluft-wpnode:{key}"
    if subprocess.run(["podman", "image", "exists", tag], check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as ctx:
            (Path(ctx) / "Containerfile").write_text(CONTAINERFILE)
            _podman("build", "-q", "--build-arg", f"BASE={rig.IMAGE}", "-t", tag, ctx, timeout=900)
        # Drop images of older bases or recipes; one still in use by a running node stays (no --force).
        listed = _podman("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/pressluft-wpnode")
        old = listed.stdout.split()
        for stale in set(old) - {tag}:
            subprocess.run(["podman", "rmi", stale], check=False, capture_output=True, timeout=120)
    return tag


def start(workdir: Path) -> Node:
    """A booted node from image() with MariaDB up, WP-CLI and the WordPress archive in place."""
    node = rig.start_node(workdir, image=image())
    try:
        provision(node)
    except Exception:
        rig.stop_nodes([node])
        raise
    return node


def copy_to(node: Node, src: Path, dest: str, mode: str = "0644") -> None:
    _podman("cp", str(src), f"{node.name}:{dest}")
    node.exec("chown", "root:root", dest)
    node.exec("chmod", mode, dest)


def provision(node: Node) -> Archive:
    """WP-CLI as /usr/local/bin/wp and the archive on a node of image(); waits for MariaDB."""
    phar, _sha512 = wpcli.checked()
    archive = build()
    deadline = time.monotonic() + 60
    while node.exec("mysqladmin", "ping", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise rig.RigError(f"MariaDB did not start on {node.name}")
        time.sleep(0.2)
    copy_to(node, phar, "/usr/local/bin/wp", "0755")
    copy_to(node, archive.path, NODE_ARCHIVE)
    return archive


def make_env(node: Node, site: str, env: str, db_password: str, table_prefix: str = "wp_") -> str:
    """User, group, tree, database and shared/wp-config.php of an environment, as role site_env makes them."""
    name = f"{site}_{env}"
    root = f"/var/www/sites/{site}/{env}"
    node.exec("groupadd", "-f", name)
    if node.exec("id", name, check=False).returncode != 0:
        node.exec("useradd", "-g", name, "-d", root, "-M", "-s", "/usr/sbin/nologin", name)
    node.exec("install", "-d", "-m", "0711", "-o", "root", "-g", "root", f"/var/www/sites/{site}")
    for path, owner, group, mode in (
        (root, name, "www-data", "0750"),
        (f"{root}/releases", name, "www-data", "0750"),
        (f"{root}/shared", "root", name, "0751"),
        (f"{root}/shared/uploads", name, "www-data", "2750"),
        (f"{root}/tmp", name, name, "0700"),
    ):
        node.exec("install", "-d", "-m", mode, "-o", owner, "-g", group, path)
    db = name.replace("_", "\\_")
    node.exec("mysql", "-e", f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4; "
              f"CREATE USER IF NOT EXISTS '{name}'@'localhost' IDENTIFIED BY '{db_password}'; "
              f"GRANT ALL ON `{db}`.* TO '{name}'@'localhost';")
    config = (
        "<?php\n"
        f"define('DB_NAME', '{name}');\ndefine('DB_USER', '{name}');\n"
        f"define('DB_PASSWORD', '{db_password}');\ndefine('DB_HOST', 'localhost:{MYSQL_SOCKET}');\n"
        "define('DB_CHARSET', 'utf8mb4');\ndefine('DB_COLLATE', '');\n"
        f"$table_prefix = '{table_prefix}';\n"
        f"if (!defined('ABSPATH')) {{\n    define('ABSPATH', '{root}/current/');\n}}\n"
        "require_once ABSPATH . 'wp-settings.php';\n"
    )
    node.exec("install", "-m", "0640", "-o", "root", "-g", name, "/dev/stdin", f"{root}/shared/wp-config.php",
              input=config)
    return root
