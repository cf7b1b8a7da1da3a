"""module_utils/_php_constants.py: constants of an imported wp-config.php read as text, and written back as
PHP literals that the real PHP reads as the same values."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils._php_constants import (
    constants_php,
    owned,
    php_literal,
    read_constants,
)

CONFIG = r'''<?php
define( 'DB_NAME', 'elsewhere' );
define('SHOP_MODE', 'live');
define("SHOP_TITLE", "Tab\there \"quoted\" \x41 \101 \$5");
define('SHOP_PATH', 'C:\dir\\sub\'s');
define('SHOP_LIMIT', 25);
define('SHOP_HEX', 0x1F);
define('SHOP_OCT', 0755);
define('SHOP_RATE', -1.5e3);
define('SHOP_ON', TRUE);
define('SHOP_OFF', false);
define('SHOP_NONE', null);
define('SHOP_FIRST', 1);
define('SHOP_FIRST', 2);
define('SHOP_ENV', getenv('SHOP_ENV'));
define('SHOP_SUM', 60 * 60);
define('SHOP_VAR', "hello $name");
// define('SHOP_COMMENTED', 1);
/* define('SHOP_BLOCK', 1); */
# define('SHOP_HASH', 1);
$x = "define('SHOP_IN_STRING', 1)";
if (!defined('SHOP_COND')) { define('SHOP_COND', 'yes'); }
$o->define('SHOP_METHOD', 1);
require_once ABSPATH . 'wp-settings.php';
'''


def test_only_scalar_literals_have_values():
    c = read_constants(CONFIG)
    values = {k: v for k, (v, literal) in c.items() if literal}
    assert values == {
        "DB_NAME": "elsewhere", "SHOP_MODE": "live", "SHOP_TITLE": 'Tab\there "quoted" A A $5',
        "SHOP_PATH": "C:\\dir\\sub's", "SHOP_LIMIT": 25, "SHOP_HEX": 31, "SHOP_OCT": 493,
        "SHOP_RATE": -1500.0,
        "SHOP_ON": True, "SHOP_OFF": False, "SHOP_NONE": None, "SHOP_FIRST": 1, "SHOP_COND": "yes"}
    assert {k for k, (_v, literal) in c.items() if not literal} == {"SHOP_ENV", "SHOP_SUM", "SHOP_VAR"}
    for name in ("SHOP_COMMENTED", "SHOP_BLOCK", "SHOP_HASH", "SHOP_IN_STRING", "SHOP_METHOD"):
        assert name not in c


def test_owned_names():
    for name in ("DB_PASSWORD", "db_host", "AUTH_KEY", "NONCE_SALT", "WP_HOME", "WP_SITEURL", "ABSPATH",
                 "WP_ENVIRONMENT_TYPE", "WP_REDIS_PREFIX", "WP_CACHE_KEY_SALT", "MULTISITE"):
        assert owned(name), name
    assert not owned("SHOP_MODE") and not owned("DISALLOW_FILE_MODS")


@pytest.mark.parametrize("value, source", [
    ("it's", r"'it\'s'"), ("back\\slash", r"'back\\slash'"), ("\\'", r"'\\\''"), ("end\\", r"'end\\'"),
    (None, "null"), (True, "true"), (7, "7"), (0.25, "0.25"),
])
def test_php_literal_quotes_as_var_export(value, source):
    assert php_literal(value) == source


def test_written_constants_read_back_by_php(tmp_path):
    if not shutil.which("php"):
        pytest.skip("php is not installed on this host (scripts/setup --tests installs it)")
    tricky = {"SHOP_Q": "it's \\ a \"test\" ?> <?php $x {$y} \\'", "SHOP_N": -3, "SHOP_F": 1.5,
              "SHOP_B": False, "SHOP_Z": None, "SHOP_NL": "line1\nline2\x00end"}
    path = tmp_path / "constants.php"
    path.write_text(constants_php(tricky))
    out = subprocess.run(
        ["php", "-r", "require $argv[1]; echo json_encode(array_map('constant', json_decode($argv[2])));",
         str(path), json.dumps(list(tricky))], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == list(tricky.values())
    # And the parser reads its own output back to the same values.
    assert {k: v for k, (v, _lit) in read_constants(path.read_text()).items()} == tricky


def test_owned_names_are_never_written():
    with pytest.raises(ValueError):
        constants_php({"DB_PASSWORD": "x"})


def test_the_control_plane_refuses_the_same_names():
    from ansible_collections.pressluft.wordpress.plugins.module_utils import _php_constants as module

    from pressluft_lib.jobs import imports

    assert imports.OWNED_CONSTANTS == module.OWNED
    assert imports.OWNED_CONSTANT_PREFIXES == module.OWNED_PREFIXES
