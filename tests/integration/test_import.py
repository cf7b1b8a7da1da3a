"""site_import on one provisioned podman node with a real site, real MariaDB and the real WP-CLI.

The archives are made here from the site's own database (wp db export), changed the way a site from
elsewhere differs: MySQL 8's utf8mb4_0900_ai_ci collations, another table prefix (shop7_), another URL,
a marker post title. One node, imports in order (each check of a failure reads the state the previous
import left live):
  1. a tar.gz of a whole WordPress tree with a gzip MySQL 8 dump, prefix shop7_ and an imported
     wp-config.php full of wrong settings: live, URLs rewritten, backup taken, old release kept;
  2. a zip of wp-content only with a plain dump, prefix wp_: live with the live release's core;
  3. a corrupt archive, 4. a dump that fails half way: the job fails saying why, nothing live changes;
  5. code that fatals once the tables are swapped in: reverted, views, triggers and routines included.
"""

from __future__ import annotations

import gzip
import http.client
import io
import itertools
import json
import tarfile
import zipfile

import pytest

from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE, USER = "shop", "shop_production"
HOST = "shop.localhost"
ROOT = f"/var/www/sites/{SITE}/production"
TOKENS = itertools.count(1000)
RELEASES = itertools.count(1)
OLD_URL = "https://old.example.com"
IMPORTED_CONFIG = (
    "<?php\ndefine('DB_NAME', 'elsewhere');\ndefine('DB_USER', 'root');\ndefine('DB_PASSWORD', 'x');\n"
    "define('DB_HOST', '10.9.9.9');\n$table_prefix = 'shop7_';\n"
    "define('SHOP_MODE', 'it\\'s \"live\" \\\\ ?> ok');\ndefine( \"SHOP_LIMIT\", 25 );\n"
    "define('SHOP_KEY', getenv('SHOP_KEY'));\nrequire_once ABSPATH . 'wp-settings.php';\n"
)
# A view, a trigger and a procedure as mysqldump writes them on MySQL 8, with a definer that does not exist
# here.
OBJECTS = b"""
/*!50001 DROP VIEW IF EXISTS `shop7_recent`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=`olduser`@`%` SQL SECURITY DEFINER */
/*!50001 VIEW `shop7_recent` AS select `shop7_posts`.`ID` AS `ID` from `shop7_posts` */;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`olduser`@`%`*/ /*!50003 TRIGGER `shop7_meta_added` AFTER INSERT ON
`shop7_commentmeta` FOR EACH ROW SET @meta_added = 1 */;;
DELIMITER ;
DELIMITER ;;
CREATE DEFINER=`olduser`@`%` PROCEDURE `shop7_hello`()
BEGIN
  SELECT CONCAT('hello-', 'from-procedure');
END ;;
DELIMITER ;
"""
# What PHP makes of SHOP_MODE's literal above.
SHOP_MODE = 'it\'s "live" \\ ?> ok'


class Site:
    def __init__(self, node, tmp):
        self.node, self.tmp = node, tmp

    def play(self, playbook: str, **extra):
        extravars = {"pressluft_target": "nodes", "pressluft_site": SITE,
                     "pressluft_fencing_token": next(TOKENS), **extra}
        res = run_playbook(playbook, inventory([self.node]), self.tmp, extravars=extravars,
                           env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"})
        try:
            res.custom = json.loads(res.stdout).get("global_custom_stats", {})
        except json.JSONDecodeError:
            res.custom = {}
        res.imported = res.custom.get("pressluft_import") or {}
        return res

    def import_(self, archive, **extra):
        n = next(RELEASES)
        return self.play("site_import.yml", pressluft_import_archive=str(archive),
                         pressluft_release=f"imp{n}", pressluft_pre_import_backup_id=f"pre-import-{n}",
                         **extra)

    def wp(self, *args: str) -> str:
        argv = ("runuser", "-u", USER, "--", "wp", f"--path={ROOT}/current", *args)
        return self.node.exec(*argv).stdout.strip()

    def current(self) -> str:
        return self.node.exec("readlink", f"{ROOT}/current").stdout.strip().rsplit("/", 1)[-1]

    def prefix(self) -> str:
        config = self.node.exec("cat", f"{ROOT}/shared/wp-config.php").stdout
        return next(line for line in config.splitlines() if line.startswith("$table_prefix"))

    def home(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.node.http_port, timeout=60)
        try:
            conn.request("GET", "/", headers={"Host": HOST})
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            assert resp.status == 200, (resp.status, body[:500])
            return body
        finally:
            conn.close()

    def live_state(self):
        """What a failed import must leave alone."""
        return (self.current(), self.prefix(), self.wp("option", "get", "home"),
                self.node.sh(f"ls {ROOT}/shared/uploads"), self.home().count("imported-"),
                self.node.sh("mysql -N -e 'SHOW DATABASES' | grep -c _imp || true").strip())


def db_objects(site: Site) -> list[str]:
    """The environment database's views (v:), triggers (t:) and routines (r:)."""
    return site.node.sh(
        "mysql -N -e \"SELECT CONCAT('v:', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA="
        f"'{USER}' UNION ALL SELECT CONCAT('t:', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE "
        f"TRIGGER_SCHEMA='{USER}' UNION ALL SELECT CONCAT('r:', ROUTINE_NAME) FROM "
        f"information_schema.ROUTINES WHERE ROUTINE_SCHEMA='{USER}'\"").split()


def source_dump(site: Site, prefix: str, marker: str, mysql8: bool) -> bytes:
    """The site's database as another host would have dumped it."""
    sql = site.node.exec("runuser", "-u", USER, "--", "wp", f"--path={ROOT}/current", "db", "export",
                         "-", "--skip-plugins", "--skip-themes").stdout
    sql = sql.replace("http://" + HOST, OLD_URL)
    for title in ("Hello world!", "imported-one", "imported-two"):  # the first post's title so far
        sql = sql.replace(title, marker)
    if prefix != "wp_":
        sql = sql.replace("`wp_", f"`{prefix}").replace("'wp_", f"'{prefix}")
    if mysql8:
        sql = sql.replace("utf8mb4_unicode_520_ci", "utf8mb4_0900_ai_ci").replace(
            "utf8mb4_unicode_ci", "utf8mb4_0900_ai_ci")
        assert "0900_ai_ci" in sql
    return sql.encode()


def add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def site(provisioned_node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("import")
    s = Site(provisioned_node, tmp)
    created = s.play("site_create.yml", pressluft_wordpress_src=str(wordpress_archive()))
    assert created.rc == 0, created.explain()
    # WordPress makes this month's uploads directory whenever it first needs it, e.g. in the WP-cron run a
    # health check's request spawns, which may finish during a later test: make it now, so the live state
    # those tests compare changes only by what an import does.
    s.wp("eval", "wp_upload_dir();")
    return s


def test_whole_tree_mysql8_gzip_dump_other_prefix(site):
    before = site.current()
    archive = site.tmp / "whole.tar.gz"
    with tarfile.open(wordpress_archive()) as core, tarfile.open(archive, "w:gz") as out:
        for m in core.getmembers():
            out.addfile(m, core.extractfile(m) if m.isreg() else None)
        add(out, "wordpress/wp-config.php", IMPORTED_CONFIG.encode())
        add(out, "wordpress/wp-content/uploads/2024/01/photo.jpg", b"jpeg")
        add(out, "wordpress/wp-content/uploads/2024/01/shell.php", b"<?php echo 1;")
        add(out, "wordpress/db.sql.gz", gzip.compress(source_dump(site, "shop7_", "imported-one", True)
                                                      + OBJECTS))
    res = site.import_(archive, pressluft_import_keep_constants=["SHOP_MODE", "SHOP_LIMIT"])
    assert res.rc == 0, res.explain()
    a = res.imported["analysis"]
    assert a["custom_constants"] == ["SHOP_MODE", "SHOP_LIMIT", "SHOP_KEY"], a
    assert a["constants_not_literal"] == ["SHOP_KEY"] and a["constants_kept"] == ["SHOP_MODE", "SHOP_LIMIT"]
    # Carried over as data: PHP reads back exactly the imported values; the imported DB_* are not used.
    assert site.wp("eval", "echo SHOP_MODE, '|', SHOP_LIMIT + 1, '|', DB_NAME;") == f"{SHOP_MODE}|26|{USER}"
    assert site.node.stat(f"{ROOT}/shared/constants.php") == ("root", USER, "640")
    # Only tables whose rows hold the old host are rewritten (the stage read the dump).
    assert res.imported["replaced_rows"] > 0 and "shop7_options" in res.imported["url_tables"]
    assert "shop7_terms" not in res.imported["url_tables"]
    # The view, trigger and procedure are live, their definer the environment's user, the view INVOKER.
    assert a["objects"] == {"view": 1, "trigger": 1, "procedure": 1, "function": 0}
    assert site.node.sh(
        "mysql -N -e \"SELECT SECURITY_TYPE, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA="
        f"'{USER}' UNION ALL SELECT TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS WHERE "
        f"TRIGGER_SCHEMA='{USER}'\"").split() == ["INVOKER", f"{USER}@localhost", "shop7_meta_added",
                                                   f"{USER}@localhost"]
    assert "hello-from-procedure" in site.wp("db", "query", "CALL shop7_hello()")
    assert int(site.wp("db", "query", "--skip-column-names", "SELECT COUNT(*) FROM shop7_recent")) > 0
    assert res.imported["state"] == "live" and res.imported["table_prefix"] == "shop7_"
    assert a["collations_rewritten"] > 0 and a["php_in_uploads"] == ["2024/01/shell.php"]
    assert res.imported["from_url"] == OLD_URL and res.imported["to_url"] == "http://" + HOST
    assert res.imported["backup"] == "pre-import-1"
    assert site.node.exec("test", "-d", f"/var/backups/pressluft/{USER}/pre-import-1").returncode == 0
    # Pressluft's wp-config.php with the imported prefix; the imported one is gone.
    assert site.prefix() == "$table_prefix = 'shop7_';"
    assert site.node.exec("readlink", f"{ROOT}/current/wp-config.php").stdout.strip() == \
        f"{ROOT}/shared/wp-config.php"
    assert site.wp("option", "get", "home") == "http://" + HOST
    assert "imported-one" in site.home()
    assert site.current() == "imp1" and before in site.node.sh(f"ls {ROOT}/releases")
    assert site.node.stat(f"{ROOT}/releases/imp1/wp-login.php") == ("root", "root", "644")
    assert site.node.exec("cat", f"{ROOT}/shared/uploads/2024/01/photo.jpg").stdout == "jpeg"
    assert site.node.sh("mysql -N -e 'SHOW DATABASES'").split().count(f"{USER}_pre") == 0
    assert site.node.exec("test", "-e", f"{ROOT}/.import-imp1", check=False).returncode != 0


def test_zip_of_wp_content_with_a_plain_dump(site):
    archive = site.tmp / "content.zip"
    dump = source_dump(site, "wp_", "imported-two", False)
    # The live dump has prefix shop7_ now: give it back wp_.
    dump = dump.replace(b"`shop7_", b"`wp_").replace(b"'shop7_", b"'wp_")
    with zipfile.ZipFile(archive, "w") as zf, tarfile.open(wordpress_archive()) as core:
        for m in core.getmembers():  # the theme the database names
            if m.isreg() and m.name.startswith("wordpress/wp-content/themes/"):
                zf.writestr(m.name.removeprefix("wordpress/"), core.extractfile(m).read())
        zf.writestr("wp-content/plugins/hello-import.php", "<?php\n/* Plugin Name: hello-import */\n")
        zf.writestr("wp-content/uploads/2025/05/new.txt", "new upload")
        zf.writestr("dump.sql", dump)
    res = site.import_(archive)
    assert res.rc == 0, res.explain()
    assert res.imported["analysis"]["wp_content_only"] and site.prefix() == "$table_prefix = 'wp_';"
    # The previous import's view, trigger and procedure went with its tables (RENAME TABLE cannot move them);
    # this dump (wp db export of the site as it was: views and triggers, no routines) brought its own.
    assert db_objects(site) == ["v:wp_recent", "t:wp_meta_added"]
    # No --keep-constant this time: the previous import's constants went too.
    assert site.node.exec("test", "-e", f"{ROOT}/shared/constants.php", check=False).returncode != 0
    assert "imported-two" in site.home() and site.current() == "imp2"
    assert site.node.exec("test", "-f", f"{ROOT}/releases/imp2/wp-includes/version.php").returncode == 0
    assert site.node.exec("cat", f"{ROOT}/shared/uploads/2025/05/new.txt").stdout == "new upload"


def test_corrupt_archive_and_a_dump_failing_half_way_change_nothing(site):
    live = site.live_state()
    corrupt = site.tmp / "corrupt.tar.gz"
    corrupt.write_bytes((site.tmp / "whole.tar.gz").read_bytes()[:4000])
    res = site.import_(corrupt)
    assert res.rc != 0 and res.imported["state"] == "failed"
    assert "corrupt" in res.imported["reason"], res.imported
    assert site.live_state() == live

    lines = source_dump(site, "wp_", "imported-three", False).split(b"\n")
    half = len(lines) // 2
    broken = b"\n".join([*lines[:half], b"INSERT INTO `wp_nothere` VALUES (1,,);", *lines[half:]])
    archive = site.tmp / "broken.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        add(tf, "wp-content/uploads/x.txt", b"x")
        add(tf, "broken.sql", broken)
    res = site.import_(archive)
    assert res.rc != 0 and res.imported["state"] == "failed"
    assert "the dump failed to import" in res.imported["reason"], res.imported
    assert "ERROR" in res.imported["reason"]
    assert site.live_state() == live


def test_a_failure_after_the_swap_puts_back_the_views_triggers_and_routines(site):
    """The imported code fatals once its tables are swapped in: the release check fails and the revert
    brings back the old tables, and the live view, trigger and procedure, which RENAME TABLE cannot move,
    are recreated from their saved definitions and work for the environment's user."""
    # An active plugin that fatals: WP-CLI skips plugins while the import works on its scratch database
    # (a must-use plugin would fail it there, before the swap); the release checks load it.
    dump = source_dump(site, "wp_", "imported-four", False)
    inactive = b"'active_plugins','a:0:{}'"
    assert inactive in dump
    dump = dump.replace(inactive, b"'active_plugins','a:1:{i:0;s:8:\"boom.php\";}'")
    archive = site.tmp / "fatal.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("wp-content/plugins/boom.php",
                    "<?php\n/* Plugin Name: boom */\nthrow new Error('boom from the import');\n")
        zf.writestr("dump.sql", dump)
    # Objects only the live database has (made after the dump): the revert must make them again.
    site.node.exec("mysql", USER, "-e", "CREATE PROCEDURE wp_hello() SELECT 'hello-back'; "
                   "CREATE VIEW wp_live_only AS SELECT ID FROM wp_users; "
                   "CREATE TRIGGER wp_live_added AFTER INSERT ON wp_postmeta FOR EACH ROW SET @live = 1")
    before = sorted(db_objects(site))
    assert before == ["r:wp_hello", "t:wp_live_added", "t:wp_meta_added", "v:wp_live_only", "v:wp_recent"]
    live = site.live_state()
    res = site.import_(archive)
    assert res.rc != 0 and res.imported["state"] == "failed", res.explain()
    assert res.imported["phase"] == "reverted", res.imported["reason"]  # failed after the swap, not before
    assert site.live_state() == live
    assert sorted(db_objects(site)) == before
    queries = ("SELECT COUNT(*) > 0 FROM wp_live_only", "CALL wp_hello()")
    assert [site.wp("db", "query", q, "--skip-column-names") for q in queries] == ["1", "hello-back"]


@pytest.fixture(scope="module")
def source_node(tmp_path_factory):
    """A second node with a site of its own (src), reachable from the first over SSH as user puller."""
    from tests.rig import nodes as rig
    from tests.rig import provisioned

    node = provisioned.start(tmp_path_factory.mktemp("source"))
    yield node
    rig.stop_nodes([node])


def test_pull_from_a_second_node_over_ssh(site, source_node):
    tmp = site.tmp
    made = run_playbook("site_create.yml", inventory([source_node]), tmp, extravars={
        "pressluft_target": "nodes", "pressluft_site": "src",
        "pressluft_wordpress_src": str(wordpress_archive())})
    assert made.rc == 0, made.explain()
    src_root = "/var/www/sites/src/production"
    source_node.exec("runuser", "-u", "src_production", "--", "wp", f"--path={src_root}/current",
                     "post", "update", "1", "--post_title=pulled-over-ssh", "--skip-plugins", "--skip-themes")
    # Its uploads are a link (current/wp-content/uploads -> shared/uploads, outside the release): followed,
    # that path only; a link inside them is not.
    source_node.sh(f"install -d -o www-data {src_root}/shared/uploads/2024 && echo pulled > "
                   f"{src_root}/shared/uploads/2024/pulled.txt && ln -s /etc/passwd "
                   f"{src_root}/shared/uploads/2024/leak")
    # The puller reads the site as its group does (wp-config.php, the release; uploads are www-data's).
    source_node.sh("useradd -m -s /bin/bash -G src_production,www-data puller && "
                   "install -d -o puller -m 700 /home/puller/.ssh")
    site.node.sh("test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
    pub = site.node.exec("cat", "/root/.ssh/id_ed25519.pub").stdout
    source_node.exec("sh", "-c", "cat > /home/puller/.ssh/authorized_keys && chown puller /home/puller/.ssh/"
                     "authorized_keys", input=pub)
    n = next(RELEASES)
    common = {"pressluft_import_ssh_user": "puller", "pressluft_import_ssh_host": "10.0.2.2",
              "pressluft_import_ssh_port": source_node.ssh_port,
              "pressluft_import_ssh_path": f"{src_root}/current",
              "pressluft_pre_import_backup_id": f"pre-import-{n}"}
    # Strict host key checking by default: the source's key is not known yet.
    refused = site.play("site_import.yml", pressluft_release=f"imp{n}", **common)
    assert refused.rc != 0 and "Host key verification failed" in refused.imported["reason"], refused.imported
    res = site.play("site_import.yml", pressluft_release=f"imp{n}b",
                    pressluft_import_ssh_host_key="accept-new", **common)
    assert res.rc == 0, res.explain()
    assert res.imported["from_url"] == "http://src.localhost" and res.imported["to_url"] == "http://" + HOST
    assert "pulled-over-ssh" in site.home() and site.current() == f"imp{n}b"
    assert site.wp("option", "get", "home") == "http://" + HOST
    assert site.node.exec("cat", f"{ROOT}/shared/uploads/2024/pulled.txt").stdout == "pulled\n"
    assert site.node.exec("test", "-e", f"{ROOT}/shared/uploads/2024/leak", check=False).returncode != 0
