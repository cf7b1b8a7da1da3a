"""module_utils/_import.py: the import analysis on real archives and dumps (tar.gz, zip, .sql, .sql.gz)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils._import import (
    ImportRefused,
    analyze,
    rewrite_dump,
    url_tables,
)

MYSQL8_DUMP = """-- MySQL dump 10.13  Distrib 8.0.36
/*!40101 SET NAMES utf8mb4 */;
CREATE TABLE `shop7_options` (
  `option_id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `option_name` varchar(191) COLLATE utf8mb4_0900_ai_ci NOT NULL DEFAULT '',
  PRIMARY KEY (`option_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
INSERT INTO `shop7_options` VALUES (1,'note','keeps utf8mb4_0900_ai_ci and DEFINER=`a`@`b` as data');
CREATE TABLE `shop7_users` (`ID` bigint) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_as_cs;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=`olduser`@`%` SQL SECURITY DEFINER */
/*!50001 VIEW `shop7_v` AS select 1 AS `x` */;
CREATE DEFINER=`root`@`localhost` TRIGGER t1 BEFORE INSERT ON shop7_users FOR EACH ROW SET @x = 1;
"""
WP_CONFIG = ("<?php\ndefine('DB_NAME', 'x');\n$table_prefix = 'shop7_';\n"
             "require_once ABSPATH . 'wp-settings.php';\n")


def add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def site_tar(path, dump_name="db.sql.gz", dump=MYSQL8_DUMP, extra=(), config=WP_CONFIG):
    body = gzip.compress(dump.encode()) if dump_name.endswith(".gz") else dump.encode()
    with tarfile.open(path, "w:gz") as tf:
        add(tf, "site/wp-load.php", b"<?php\n")
        add(tf, "site/wp-includes/version.php", b"<?php\n$wp_version = '6.4.3';\n")
        add(tf, "site/wp-config.php", config.encode())
        add(tf, "site/wp-content/uploads/2024/01/a.jpg", b"jpg")
        add(tf, "site/wp-content/uploads/2024/01/shell.php", b"<?php system($_GET['c']);")
        add(tf, f"site/{dump_name}", body)
        for name, data in extra:
            add(tf, name, data)
    return path


def run(tmp_path, archive, free=10**12):
    return analyze(str(tmp_path / "work"), str(archive), str(tmp_path / "dump.sql"), free)


def test_mysql8_dump_gzip_custom_prefix_analysed_and_rewritten(tmp_path):
    a = run(tmp_path, site_tar(tmp_path / "s.tar.gz"))
    assert a["wordpress_version"] == "6.4.3" and a["table_prefix"] == "shop7_" and not a["wp_content_only"]
    assert a["collations_rewritten"] == 3 and a["definers_stripped"] == 2
    assert a["php_in_uploads"] == ["2024/01/shell.php"]
    out = (tmp_path / "dump.sql").read_text()
    assert "0900" not in out.split("INSERT")[0] and "utf8mb4_unicode_520_ci" in out
    assert "DEFINER=`olduser`" not in out and "CREATE  TRIGGER t1" in out
    assert "keeps utf8mb4_0900_ai_ci and DEFINER=`a`@`b` as data" in out, "row data is never rewritten"


def test_plain_dump_and_prefix_from_the_dump_without_wp_config(tmp_path):
    a = run(tmp_path, site_tar(tmp_path / "s.tar.gz", dump_name="backup.sql", config="<?php\n"))
    assert a["table_prefix"] == "shop7_" and a["dump_bytes"] > 0


def test_zip_of_wp_content_only_and_a_zipped_symlink_refused(tmp_path):
    link = tmp_path / "l.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("wp-content/uploads/l")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/shadow")
    with pytest.raises(ImportRefused, match="link"):
        run(tmp_path, link)
    path = tmp_path / "c.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("wp-content/themes/t/style.css", "/* Theme Name: t */")
        zf.writestr("wp-content/uploads/x.png", "png")
        zf.writestr("dump.sql", MYSQL8_DUMP.replace("shop7_", "wp_"))
    a = run(tmp_path, path)
    assert a["wp_content_only"] and a["wordpress_version"] is None and a["table_prefix"] == "wp_"
    assert a["php_in_uploads_count"] == 0


@pytest.mark.parametrize(("case", "message"), [
    ("corrupt", "corrupt"), ("truncated_dump", "dump cannot be read"), ("multisite", "multisite"),
    ("no_dump", "no database dump"), ("traversal", "unsafe path"), ("symlink", "link or special file"),
    ("disk", "not enough free disk"), ("no_tables", "creates no tables"),
])
def test_refusals_say_why(tmp_path, case, message):
    archive = tmp_path / "s.tar.gz"
    free = 10**12
    if case == "corrupt":
        site_tar(archive)
        archive.write_bytes(archive.read_bytes()[:300])
    elif case == "truncated_dump":
        gz = gzip.compress(MYSQL8_DUMP.encode())[:-30]
        with tarfile.open(archive, "w:gz") as tf:
            add(tf, "wp-content/uploads/a", b"a")
            add(tf, "db.sql.gz", gz)
    elif case == "multisite":
        site_tar(archive, config=WP_CONFIG + "define( 'MULTISITE', true );\n")
    elif case == "no_dump":
        with tarfile.open(archive, "w:gz") as tf:
            add(tf, "wp-content/uploads/a", b"a")
    elif case == "traversal":
        site_tar(archive, extra=[("../evil.php", b"x")])
    elif case == "symlink":
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo("wp-content/uploads/link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/shadow"
            tf.addfile(info)
    elif case == "disk":
        site_tar(archive)
        free = 100
    elif case == "no_tables":
        site_tar(archive, dump_name="x.sql", dump="SELECT 1;\n")
    with pytest.raises(ImportRefused, match=message):
        run(tmp_path, archive, free)
    assert not (tmp_path / "escaped").exists()


def test_rewrite_keeps_bytes_it_cannot_decode(tmp_path):
    src = tmp_path / "in.sql"
    src.write_bytes(b"CREATE TABLE `wp_options` (x int) COLLATE=utf8mb4_0900_ai_ci;\n"
                    b"INSERT INTO t VALUES ('\xff\xfe');\n")
    rewrite_dump(str(src), str(tmp_path / "out.sql"))
    assert b"'\xff\xfe'" in (tmp_path / "out.sql").read_bytes()


def test_url_tables_finds_the_tables_whose_rows_hold_the_host(tmp_path):
    dump = tmp_path / "d.sql"
    dump.write_bytes(
        b"CREATE TABLE `wp_options` (x text) DEFAULT CHARSET=utf8mb4;\n"
        b"INSERT INTO `wp_options` VALUES ('a'),('https:\\\\/\\\\/Old.Example.com\\\\/x');\n"
        b"INSERT INTO `wp_orders` VALUES ('no url here'),('old.example.org');\n"
        b"INSERT INTO wp_blobs VALUES (0x4142);\n"
        b"INSERT INTO `wp_posts` (`ID`, `c`) VALUES\n(1,'x'),\n(2,'<a href=\"http://old.example.com\">');\n"
        b"INSERT INTO `wp_postmeta` VALUES (1,'s:22:\"http://old.example.com\";');\n")
    every = ["http", "https", "http_escaped", "https_escaped"]
    assert url_tables(str(dump), "old.example.com") == (["wp_blobs", "wp_options", "wp_postmeta", "wp_posts"],
                                                        every)
    assert url_tables(str(dump), "elsewhere.test") == (["wp_blobs"], every)
    dump.write_bytes(b"INSERT INTO `wp_options` VALUES ('https:\\\\/\\\\/old.example.com'),('x');\n"
                     b"INSERT INTO `wp_posts` VALUES ('HTTPS://OLD.example.com/a');\n")
    assert url_tables(str(dump), "old.example.com") == (["wp_options", "wp_posts"],
                                                        ["https", "https_escaped"])


@pytest.mark.parametrize("dump", [
    b"CREATE TABLE `t` (x text DEFAULT 'http://old.example.com');\nINSERT INTO `t` VALUES ('a');\n",
    b"INSERT INTO `odd-name` VALUES ('http://old.example.com');\n",
    b"INSERT INTO `t` VALUES ('multi\nline http://old.example.com');\n",
])
def test_url_tables_means_every_table_when_unsure(tmp_path, dump):
    (tmp_path / "d.sql").write_bytes(dump)
    assert url_tables(str(tmp_path / "d.sql"), "old.example.com") == (None, None)


def test_a_view_s_definer_becomes_sql_security_invoker(tmp_path):
    src = tmp_path / "in.sql"
    src.write_bytes(b"CREATE TABLE `wp_options` (x int);\n"
                    b"/*!50001 CREATE ALGORITHM=UNDEFINED */\n"
                    b"/*!50013 DEFINER=`a`@`%` SQL SECURITY DEFINER */\n"
                    b"/*!50001 VIEW `v1` AS select 1 AS `x` */;\n"
                    b"/*!50013 DEFINER=`shop`@`localhost` SQL SECURITY INVOKER */\n"
                    b"CREATE ALGORITHM=UNDEFINED DEFINER=`r`@`l` SQL SECURITY DEFINER VIEW v2 AS select 2;\n"
                    b"/*!50003 CREATE*/ /*!50017 DEFINER=`r`@`l`*/ /*!50003 TRIGGER t AFTER INSERT ON x\n"
                    b"CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()\n")
    assert rewrite_dump(str(src), str(tmp_path / "out.sql"))["definers_stripped"] == 5
    assert (tmp_path / "out.sql").read_bytes().splitlines()[2:] == [
        b"/*!50013 SQL SECURITY INVOKER */", b"/*!50001 VIEW `v1` AS select 1 AS `x` */;",
        b"/*!50013 SQL SECURITY INVOKER */",
        b"CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW v2 AS select 2;",
        b"/*!50003 CREATE*/  /*!50003 TRIGGER t AFTER INSERT ON x", b"CREATE  PROCEDURE `p`()"]
