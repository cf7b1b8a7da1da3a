"""wp_search_replace in process: its passes, WP-CLI's report parsed, bad input refused before the fence.

The replacements themselves run against MariaDB and the real WP-CLI in
tests/integration/test_wp_search_replace.py.
"""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import wp_search_replace

from tests.rig.ansible import run_module


def test_passes_cover_both_schemes_plain_and_json_escaped():
    assert wp_search_replace.passes("https://shop.example.com/blog", "http://stage.localhost") == [
        ("http://shop.example.com/blog", "http://stage.localhost"),
        ("https://shop.example.com/blog", "http://stage.localhost"),
        ("http:\\/\\/shop.example.com\\/blog", "http:\\/\\/stage.localhost"),
        ("https:\\/\\/shop.example.com\\/blog", "http:\\/\\/stage.localhost"),
    ]


def test_report_counts_per_table_and_names_skipped_tables():
    out = ("Table\tColumn\tReplacements\tType\nwp_options\toption_value\t3\tPHP\n"
           "wp_posts\tpost_content\t2\tSQL\nwp_posts\tpost_excerpt\t1\tSQL\nwp_log\t\tskipped\t\n"
           "Success: Made 6 replacements.\n")
    assert wp_search_replace.parse_report(out) == ({"wp_options": 3, "wp_posts": 3}, ["wp_log"])
    with pytest.raises(wp_search_replace.SearchReplaceError, match="unexpected line"):
        wp_search_replace.parse_report("wp_posts\tx\tmany\tSQL\n")


@pytest.mark.parametrize(("args", "message"), [
    ({"site": "Shop"}, "invalid site name"),
    ({"env": "x"}, "invalid environment name"),
    ({"from_url": "shop.example.com"}, "invalid from_url"),
    ({"to_url": "https://a.example/?q=1"}, "invalid to_url"),
    ({"to_url": "https://a.example/x y"}, "invalid to_url"),
    ({"to_url": "https://a.example/$(id)'"}, "invalid to_url"),
    ({"to_url": "https://shop.example.com.test"}, "a dry run would never count 0"),
    ({"tables": ["wp_posts", "--all-tables"]}, "invalid table name"),
    ({"tables": ["wp_$x"]}, "invalid table name"),
    ({"tables": ["wp_*"]}, "invalid table name"),
    ({"to_url": "https://shop.example.com/staging"}, "a dry run would never count 0"),
    ({"skip_columns": ["guid", "x;y"]}, "invalid column name"),
    ({"run_as": "root"}, "must not be root"),
    ({"forms": ["http", "ftp"]}, "forms"),
])
def test_bad_input_is_refused_before_the_fence(capsys, tmp_path, args, message):
    base = {"site": "shop", "env": "staging", "from_url": "https://shop.example.com",
            "to_url": "http://staging.localhost", "fencing_dir": str(tmp_path / "f"), "fencing_token": 3}
    out = run_module(wp_search_replace, capsys, tmp_path, {**base, **args})
    assert out.get("failed") and message in out["msg"], out
    assert not (tmp_path / "f").exists()
