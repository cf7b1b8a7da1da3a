"""The WP-CLI stand-in (tests/wpcli/wp) speaks WP-CLI 2.12's command lines, output and exit codes.

Run on a real node with php-cli and MariaDB against a real WordPress database; docs/wp-cli.md lists
the command lines checked here.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.rig import wpnode
from tests.rig.nodes import random_password, stop_nodes
from tests.rig.wordpress import build

pytestmark = pytest.mark.node

USER = "blog_production"
WP = "/var/www/sites/blog/production/current"
PASSWORD = "two words " + random_password()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A node with an unpacked WordPress whose database exists but is not installed yet."""
    n = wpnode.start(tmp_path_factory.mktemp("nodes"))
    try:
        root = wpnode.make_env(n, "blog", "production", random_password())
        n.exec("install", "-d", "-o", "root", "-g", "root", f"{root}/releases/one")
        n.exec("tar", "-xzf", wpnode.NODE_ARCHIVE, "-C", f"{root}/releases/one", "--strip-components=1")
        n.exec("ln", "-s", f"{root}/shared/wp-config.php", f"{root}/releases/one/wp-config.php")
        n.exec("ln", "-s", f"{root}/releases/one", f"{root}/current")
    except Exception:
        stop_nodes([n])
        raise
    yield n
    stop_nodes([n])


def wp(node, *args, user=USER, stdin=None, cwd=None):
    """Run the stand-in as the environment user (root only when asked); returns the CompletedProcess."""
    cmd = ["runuser", "-u", user, "--"] if user != "root" else []
    if cwd:
        cmd += ["env", "-C", cwd]
    path = [] if cwd else [f"--path={WP}"]
    return node.exec(*cmd, "wp", *path, *args, check=False, input=stdin)


def install(node, *extra, stdin=None):
    return wp(node, "core", "install", "--url=http://blog.localhost", "--title=Blog",
              "--admin_user=editor", "--admin_email=editor@example.com", "--skip-email", *extra, stdin=stdin)


def test_refuses_root_without_allow_root(node):
    r = wp(node, "core", "version", user="root")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("Error: YIKES! It looks like you're running this as root.")
    assert "--allow-root" in r.stderr
    allowed = wp(node, "core", "version", "--allow-root", user="root")
    assert allowed.returncode == 0 and allowed.stdout.strip() == build().version


def test_core_version(node):
    assert wp(node, "core", "version").stdout == build().version + "\n"
    extra = wp(node, "core", "version", "--extra").stdout.splitlines()
    assert extra[0] == f"WordPress version: {build().version}"
    assert re.fullmatch(r"Database revision: \d+", extra[1])
    assert re.fullmatch(r"TinyMCE version:   \d\.\d+ \(\d+-\d+\)", extra[2])
    assert extra[3] == "Package language:  en_US" and len(extra) == 4


def test_before_install(node):
    r = wp(node, "core", "is-installed")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "")
    r = wp(node, "option", "get", "blogname")
    assert r.returncode == 1
    assert r.stderr == ("Error: The site you have requested is not installed.\n"
                        "Run `wp core install` to create database tables.\n")


def test_install_validates_parameters(node):
    r = wp(node, "core", "install", "--title=Blog")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "Error: Parameter errors:",
        " missing --url parameter (The address of the new site.)",
        " missing --admin_user parameter (The name of the admin user.)",
        " missing --admin_email parameter (The email address for the admin user.)",
    ]
    r = wp(node, "core", "install", "--url=http://blog.localhost", "--title=Blog", "--admin_user=editor",
           "--admin_email=not-an-email", "--admin_password=x", "--skip-email")
    assert (r.returncode, r.stderr) == (1, "Error: The 'not-an-email' email address is invalid.\n")
    assert wp(node, "core", "is-installed").returncode == 1


def test_install_reads_the_password_from_stdin(node):
    r = install(node, "--prompt=admin_password", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1/1 [--admin_password=<password>]: Success: WordPress installed successfully.\n"
    assert PASSWORD not in r.stdout + r.stderr
    assert wp(node, "core", "is-installed").returncode == 0
    check = node.exec("runuser", "-u", USER, "--", "php", "-r",
                      f"define('WP_INSTALLING', true); require '{WP}/wp-load.php';"
                      "$u = get_user_by('login', 'editor');"
                      "$ok = wp_check_password(stream_get_contents(STDIN), $u->user_pass, $u->ID);"
                      "echo $ok ? 'ok' : 'bad';",
                      input=PASSWORD)
    assert check.stdout == "ok"
    again = install(node, f"--admin_password={random_password()}")
    assert (again.returncode, again.stdout) == (0, "WordPress is already installed.\n")


def test_options(node):
    assert wp(node, "option", "get", "blogname").stdout == "Blog\n"
    assert wp(node, "option", "get", "siteurl").stdout == "http://blog.localhost\n"
    assert wp(node, "option", "get", "home", "--format=json").stdout == '"http:\\/\\/blog.localhost"\n'
    assert wp(node, "option", "get", "active_plugins").stdout == "array (\n)\n"
    missing = wp(node, "option", "get", "no_such_option")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "Error: Could not get 'no_such_option' option. Does it exist?\n"
    usage = wp(node, "option", "get")
    assert (usage.returncode, usage.stdout) == (1, "usage: wp option get <key> [--format=<format>]\n")
    updated = wp(node, "option", "update", "blogname", "New name")
    assert (updated.returncode, updated.stdout) == (0, "Success: Updated 'blogname' option.\n")
    same = wp(node, "option", "update", "blogname", "New name")
    assert same.stdout == "Success: Value passed for 'blogname' option is unchanged.\n"
    assert wp(node, "option", "update", "home", "https://blog.example.com/").returncode == 0
    assert wp(node, "option", "get", "home").stdout == "https://blog.example.com\n"
    assert wp(node, "option", "get", "blogname", "--quiet").stdout == "New name\n"
    assert wp(node, "option", "update", "blogname", "Blog", "--quiet").stdout == ""


def test_user_list(node):
    assert wp(node, "user", "list", "--field=user_login").stdout == "editor\n"
    users = json.loads(wp(node, "user", "list", "--format=json").stdout)
    assert len(users) == 1
    assert list(users[0]) == ["ID", "user_login", "display_name", "user_email", "user_registered", "roles"]
    assert users[0]["ID"] == 1 and users[0]["roles"] == "administrator"
    assert users[0]["user_email"] == "editor@example.com"
    assert wp(node, "user", "list", "--format=count").stdout == "1\n"


def test_user_update_reads_the_password_from_stdin(node):
    new = "rotated " + random_password()
    r = wp(node, "user", "update", "editor", "--prompt=user_pass", "--skip-email", stdin=new + "\n")
    want = "1/1 [--user_pass=<password>]: Success: Updated user 1.\n"
    assert (r.returncode, r.stdout) == (0, want), r.stderr
    assert new not in r.stdout + r.stderr
    check = node.exec("runuser", "-u", USER, "--", "php", "-r",
                      f"require '{WP}/wp-load.php'; $u = get_user_by('login', 'editor');"
                      "$ok = wp_check_password(stream_get_contents(STDIN), $u->user_pass, $u->ID);"
                      "echo $ok ? 'ok' : 'bad';",
                      input=new)
    assert check.stdout == "ok"
    missing = wp(node, "user", "update", "nobody", "--user_pass=x")
    assert (missing.returncode, missing.stderr) == (1, "Error: Invalid user ID, email or login: 'nobody'\n")


def test_cache_flush(node):
    r = wp(node, "cache", "flush")
    assert (r.returncode, r.stdout) == (0, "Success: The cache was flushed.\n")


def test_db_export_import_check(node):
    dump = "/var/www/sites/blog/production/tmp/dump.sql"
    r = wp(node, "db", "export", dump, "--single-transaction")
    assert (r.returncode, r.stdout) == (0, f"Success: Exported to '{dump}'.\n"), r.stderr
    assert "CREATE TABLE `wp_options`" in node.exec("cat", dump).stdout
    assert wp(node, "option", "update", "blogname", "Changed").returncode == 0
    r = wp(node, "db", "import", dump)
    assert (r.returncode, r.stdout) == (0, f"Success: Imported from '{dump}'.\n"), r.stderr
    assert wp(node, "option", "get", "blogname").stdout == "Blog\n"
    r = wp(node, "db", "check")
    assert r.returncode == 0 and r.stdout.endswith("Success: Database checked.\n")
    assert re.search(r"blog_production\.wp_options\s+OK", r.stdout)
    r = wp(node, "db", "export", "-")
    assert r.returncode == 0 and "INSERT INTO `wp_options`" in r.stdout and "Success" not in r.stdout


def test_finds_wordpress_from_the_working_directory(node):
    assert wp(node, "option", "get", "blogname", cwd=f"{WP}/wp-admin").stdout == "Blog\n"
    r = wp(node, "option", "get", "blogname", cwd="/tmp")
    assert r.returncode == 1
    assert r.stderr == ("Error: This does not seem to be a WordPress installation.\nThe used path is: /tmp/\n"
                        "Pass --path=`path/to/wordpress` or run `wp core download`.\n")


def test_unknown_commands(node):
    r = wp(node, "plugin-that-is-not", "list")
    assert r.returncode == 1
    assert r.stderr == ("Error: 'plugin-that-is-not' is not a registered wp command. "
                        "See 'wp help' for available commands.\n")
    r = wp(node, "core", "frobnicate")
    assert r.returncode == 1
    assert r.stderr == ("Error: 'frobnicate' is not a registered subcommand of 'core'. "
                        "See 'wp help core' for available subcommands.\n")
    r = wp(node, "option", "get", "blogname", "--bogus")
    assert (r.returncode, r.stderr) == (1, "Error: Parameter errors:\n unknown --bogus parameter\n")
