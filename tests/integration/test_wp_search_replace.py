"""pressluft.wordpress.wp_search_replace on a real node: MariaDB, the real WP-CLI phar, ansible-playbook.

The fixtures hold a URL in each form real sites store it: serialized and nested-serialized options, a widget
array, block-editor JSON with escaped slashes, a page-builder meta value (JSON in post meta) and a custom
table without a primary key (which WP-CLI's search-replace skips by itself).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.rig import wpnode
from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory, random_password, stop_nodes
from tests.rig.wordpress import build
from tests.rig.wpnode import NODE_ARCHIVE, make_env

pytestmark = pytest.mark.node

SITE, ENV = "shop", "staging"
ROOT = f"/var/www/sites/{SITE}/{ENV}"
SOURCE = "https://shop.example.com"
TARGET = "http://staging.shop.localhost"
DB = f"{SITE}_{ENV}"

FIXTURES = r"""
kses_remove_filters();
$u = 'https://shop.example.com';
update_option('pl_serial', array('url' => "$u/s", 'list' => array("$u/a", 'http://shop.example.com/b')));
update_option('pl_nested', array('inner' => serialize(array('u' => "$u/n", 'deep' => array("$u/d")))));
update_option('widget_text', array(2 => array('title' => 'Hi', 'text' => "<a href=\"$u/w\">w</a>"),
                                   '_multiwidget' => 1));
$block = '<!-- wp:image {"id":5,"url":"https:\/\/shop.example.com\/wp-content\/uploads\/a.jpg"} -->'
       . '<figure><img src="https://shop.example.com/wp-content/uploads/a.jpg"/></figure><!-- /wp:image -->';
$id = wp_insert_post(wp_slash(array('post_title' => 'Blocks', 'post_content' => $block,
                                    'post_status' => 'publish')), true);
update_post_meta($id, '_elementor_data',
                 wp_slash('[{"id":"1","settings":{"link":{"url":"https:\/\/shop.example.com\/pb"}}}]'));
global $wpdb;
$wpdb->query("CREATE TABLE {$wpdb->prefix}pl_log (note varchar(100), data longtext)");
$wpdb->insert("{$wpdb->prefix}pl_log", array('note' => "$u/log", 'data' => serialize(array('u' => "$u/k"))));
echo $id;
"""

READ_BACK = r"""
global $wpdb;
$id = POST_ID;
echo json_encode(array(
  'serial' => get_option('pl_serial'),
  'nested' => unserialize(get_option('pl_nested')['inner']),
  'widget' => get_option('widget_text'),
  'content' => get_post($id)->post_content,
  'guid' => get_post($id)->guid,
  'elementor' => json_decode(get_post_meta($id, '_elementor_data', true), true),
  'log' => array_map(function ($r) { return array($r->note, unserialize($r->data)); },
                     $wpdb->get_results("SELECT * FROM {$wpdb->prefix}pl_log")),
  'home' => get_option('home'),
));
"""


def wp(node, *args, check=True):
    return node.exec("runuser", "-u", DB, "--", "wp", f"--path={ROOT}/current", "--skip-plugins",
                     "--skip-themes", *args, check=check)


def dump(node) -> str:
    return node.exec("mysqldump", "--skip-extended-insert", "--skip-dump-date", DB).stdout


def module_runs(tmp_path, node, *runs):
    """One ansible-playbook with a task per (module name, args, check); returns (result, module results)."""
    tasks = [{"name": f"task {i}", f"pressluft.wordpress.{name}": args, "check_mode": check,
              "ignore_errors": True} for i, (name, args, check) in enumerate(runs)]
    playbook = tmp_path / f"sr-{len(list(tmp_path.iterdir()))}.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "nodes", "gather_facts": False, "tasks": tasks}]))
    result = run_playbook(playbook, inventory([node]), tmp_path)
    try:
        outs = [t["hosts"][node.name] for t in json.loads(result.stdout)["plays"][0]["tasks"]]
    except (json.JSONDecodeError, KeyError, IndexError):
        outs = []
    if result.rc != 0 or len(outs) != len(runs):
        pytest.fail(f"the playbook did not run every task: {result.explain()}")
    return result, outs


def sr(check=False, **extra):
    args = {"site": SITE, "env": ENV, "from_url": SOURCE, "to_url": TARGET, **extra}
    return ("wp_search_replace", args, check)


@pytest.fixture(scope="module")
def cloned(tmp_path_factory):
    """A node whose environment holds the fixtures under SOURCE, then: a check-mode run, the real run, a
    second real run, a check-mode run (each its own task); dumps before and after check mode."""
    node = wpnode.start(tmp_path_factory.mktemp("nodes"))
    try:
        make_env(node, SITE, ENV, random_password())
        tmp = tmp_path_factory.mktemp("sr")
        install = ("wp_site", {"site": SITE, "env": ENV, "version": build().version, "src": NODE_ARCHIVE,
                               "url": SOURCE, "title": "Shop", "admin_user": "owner",
                               "admin_email": "owner@example.com", "admin_password": random_password()},
                   False)
        result, (out,) = module_runs(tmp, node, install)
        assert not out.get("failed"), result.explain()
        post_id = wp(node, "eval", FIXTURES).stdout.strip()
        assert post_id.isdigit(), post_id
        before = dump(node)
        result, (checked,) = module_runs(tmp, node, sr(check=True))
        after_check = dump(node)
        result, outs = module_runs(tmp, node, sr(), sr(), sr(check=True))
        yield node, post_id, before, checked, after_check, outs, tmp
    finally:
        stop_nodes([node])


def test_check_mode_counts_and_changes_nothing(cloned):
    _node, _id, before, checked, after_check, _outs, _tmp = cloned
    assert not checked.get("failed"), {k: checked.get(k) for k in ("msg", "module_stderr", "module_stdout")}
    assert checked["changed"] is True and checked["verified"] is False
    assert before == after_check
    rows = {p["search"]: p["rows"] for p in checked["passes"]}
    assert rows["https://shop.example.com"] > 0 and rows["http://shop.example.com"] > 0
    assert rows["https:\\/\\/shop.example.com"] > 0


def test_every_pass_replaces_and_reports_its_rows(cloned):
    _node, _id, _before, checked, _after, (first, second, recheck), _tmp = cloned
    assert not first.get("failed"), first
    assert first["changed"] is True and first["verified"] is True
    assert [p["search"] for p in first["passes"]] == [
        "http://shop.example.com", "https://shop.example.com",
        "http:\\/\\/shop.example.com", "https:\\/\\/shop.example.com"]
    escaped = TARGET.replace("/", "\\/")
    assert [p["replace"] for p in first["passes"]] == [TARGET, TARGET, escaped, escaped]
    # What check mode counted is what the real run replaced.
    assert [p["rows"] for p in first["passes"]] == [p["rows"] for p in checked["passes"]]
    assert first["total_rows"] == sum(p["rows"] for p in first["passes"])
    assert any("without primary key" in t for p in first["passes"] for t in p["tables"]), first["passes"]
    # Nothing left: the second run and a dry run count 0 in every pass.
    for out in (second, recheck):
        assert not out.get("failed") and out["changed"] is False and out["total_rows"] == 0, out


def test_serialized_json_and_keyless_values_are_rewritten_and_stay_valid(cloned):
    node, post_id, *_ = cloned
    got = json.loads(wp(node, "eval", READ_BACK.replace("POST_ID", str(int(post_id)))).stdout)
    assert got["serial"] == {"url": f"{TARGET}/s", "list": [f"{TARGET}/a", f"{TARGET}/b"]}
    assert got["nested"] == {"u": f"{TARGET}/n", "deep": [f"{TARGET}/d"]}
    assert got["widget"]["2"]["text"] == f'<a href="{TARGET}/w">w</a>'
    escaped = TARGET.replace("/", "\\/")
    assert f'"url":"{escaped}\\/wp-content\\/uploads\\/a.jpg"' in got["content"]
    assert f'src="{TARGET}/wp-content/uploads/a.jpg"' in got["content"]
    assert got["elementor"][0]["settings"]["link"]["url"] == f"{TARGET}/pb"
    assert got["log"] == [[f"{TARGET}/log", {"u": f"{TARGET}/k"}]]
    assert got["home"] == TARGET
    # guid never changes: it is the only place the old host remains.
    assert got["guid"].startswith(SOURCE + "/")
    text = dump(node)
    query = "SELECT COUNT(*) FROM wp_posts WHERE guid LIKE '%shop.example.com%'"
    guids = int(node.exec("mysql", "-N", "-e", query, DB).stdout)
    assert guids >= 1 and text.count("shop.example.com") == guids


def test_bad_input_is_refused_and_changes_nothing(cloned):
    node, _id, _before, _checked, _after, _outs, tmp = cloned
    before = dump(node)
    bad = (
        ({"to_url": "http://shop.example.com.staging.test"}, "a dry run would never"),
        ({"to_url": "ftp://x.example"}, "invalid to_url"),
        ({"from_url": "https://a.example/x'y"}, "invalid from_url"),
        ({"skip_columns": ["guid", "a`b"]}, "invalid column name"),
        ({"run_as": "root"}, "must not be root"),
        ({"env": "nothere"}, "holds no WordPress"),
    )
    _result, outs = module_runs(tmp, node, *(sr(**args) for args, _msg in bad))
    for (args, msg), out in zip(bad, outs, strict=True):
        assert out.get("failed") and msg in out["msg"], (args, out.get("msg"))
    assert dump(node) == before
