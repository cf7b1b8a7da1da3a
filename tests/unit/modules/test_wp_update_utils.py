"""module_utils/_wp_update: WP-CLI's JSON (Error rows fail whatever the exit code), zip headers, and the
tree comparison that proves a build changed only what it updated."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_update import (
    UpdateError,
    tree_changes,
    tree_index,
    wp_json,
    zip_package,
)


def test_wp_json_reads_rows_and_refuses_error_rows():
    rows = [{"name": "akismet", "status": "active", "version": "5.0", "update_version": "5.1"}]
    assert wp_json("Warning: something\n" + json.dumps(rows) + "\n", "plan") == rows
    assert wp_json("Success: Plugin already updated.\n", "plan") == []
    bad = [{"name": "akismet", "old_version": "5.0", "new_version": "5.0", "status": "Error"}]
    with pytest.raises(UpdateError, match="akismet"):
        wp_json(json.dumps(bad), "wp plugin update")
    with pytest.raises(UpdateError, match="no list of rows"):
        wp_json('["x"]', "plan")


def _zip(path, members: dict[str, str]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return str(path)


def test_zip_package_reads_plugin_theme_and_core_versions(tmp_path):
    header = "<?php\n/*\n * Plugin Name: pgood\n * Version: 2.1.3\n */\n"
    plugin = _zip(tmp_path / "p.zip", {"pgood/readme.txt": "x", "pgood/pgood.php": header})
    assert zip_package(plugin, "plugin") == ("pgood", "2.1.3")
    theme = _zip(tmp_path / "t.zip", {"tt/style.css": "/*\nTheme Name: TT\nVersion: 1.4\n*/"})
    assert zip_package(theme, "theme") == ("tt", "1.4")
    core = _zip(tmp_path / "c.zip", {"wordpress/wp-includes/version.php": "<?php\n$wp_version = '6.4.2';\n"})
    assert zip_package(core, "core") == ("wordpress", "6.4.2")


@pytest.mark.parametrize("members, match", [
    ({"a/a.php": "<?php /* Plugin Name: a\nVersion: 1 */", "b/b.php": "x"}, "one top directory"),
    ({"a/../../etc/x.php": "x"}, "unsafe member"),
    ({"a/a.php": "<?php /* Plugin Name: a */"}, "Version header"),
    ({"A B/x.php": "<?php /* Plugin Name: a\nVersion: 1 */"}, "slug"),
])
def test_zip_package_refuses_what_is_no_single_plugin(tmp_path, members, match):
    with pytest.raises(UpdateError, match=match):
        zip_package(_zip(tmp_path / "x.zip", members), "plugin")
    (tmp_path / "n.zip").write_text("not a zip")
    with pytest.raises(UpdateError, match="not a zip"):
        zip_package(str(tmp_path / "n.zip"), "plugin")


def test_tree_changes_sees_files_added_changed_and_linked_outside_the_skipped_dirs(tmp_path):
    root = tmp_path / "r"
    (root / "wp-content/plugins/pgood").mkdir(parents=True)
    (root / "wp-content/plugins/other").mkdir()
    (root / "index.php").write_text("x")
    (root / "wp-content/plugins/other/o.php").write_text("o")
    skip = ["wp-content/plugins/pgood", ".maintenance"]
    before = tree_index(str(root), skip)
    (root / "wp-content/plugins/pgood/new.php").write_text("allowed")
    (root / ".maintenance").write_text("allowed")
    assert tree_changes(before, tree_index(str(root), skip)) == []
    (root / "wp-content/plugins/other/o.php").write_text("changed!")
    (root / "wp-content/plugins/other/planted.php").write_text("x")
    os.symlink("/etc", root / "wp-content/link")
    assert tree_changes(before, tree_index(str(root), skip)) == [
        "wp-content/link", "wp-content/plugins/other/o.php", "wp-content/plugins/other/planted.php"]
