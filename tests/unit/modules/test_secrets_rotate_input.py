"""secrets_rotate in process: input refused before the fence, and wp-config.php rewritten value by value.

The rotation itself (MariaDB, Redis, WP-CLI, wp-config.php on a node) is tested through the worker in
tests/integration/test_control_plane.py.
"""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils._secrets import SecretsError
from ansible_collections.pressluft.wordpress.plugins.modules import secrets_rotate

from tests.rig.ansible import run_module


def run(capsys, tmp_path, **args) -> dict:
    defaults = {"secrets_dir": str(tmp_path / "secrets"), "fencing_dir": str(tmp_path / "f"),
                "fencing_token": 3}
    return run_module(secrets_rotate, capsys, tmp_path, {**defaults, **args})


@pytest.mark.parametrize(("args", "message"), [
    ({"site": "Shop"}, "invalid site name"),
    ({"site": "shop", "env": "x"}, "invalid environment name"),
    ({"site": "shop", "drain_seconds": 601}, "drain_seconds"),
    ({"site": "shop", "admin_user": "-x"}, "not a WordPress login"),
    ({"site": "shop", "admin_user": "a b"}, "not a WordPress login"),
    ({"site": "shop", "admin_user": "a'b"}, "not a WordPress login"),
    ({"site": "shop", "run_as": "root"}, "must not be root"),
])
def test_bad_input_is_refused_before_the_fence(capsys, tmp_path, args, message):
    out = run(capsys, tmp_path, **args)
    assert out.get("failed") and message in out["msg"], out
    assert not (tmp_path / "f").exists() and not (tmp_path / "secrets").exists()


def test_an_environment_without_secrets_file_is_refused(capsys, tmp_path):
    out = run(capsys, tmp_path, site="shop")
    assert out.get("failed") and "create the environment first" in out["msg"], out


def test_wp_config_is_rewritten_value_by_value():
    old, new = "o" * 20, "n" * 20
    items = [("db_password", old, new), ("salts.AUTH_KEY", "a" * 64, "b" * 64),
             ("wordpress_admin_password", "x", "y")]
    text = f"define('DB_PASSWORD', '{old}');\ndefine('AUTH_KEY', '{'a' * 64}');\n"
    done = secrets_rotate.rewrite_config(text, items)
    assert done == f"define('DB_PASSWORD', '{new}');\ndefine('AUTH_KEY', '{'b' * 64}');\n"
    assert secrets_rotate.rewrite_config(done, items) == done  # a repeated run finds the new values
    with pytest.raises(SecretsError, match="neither the current nor the new db_password"):
        secrets_rotate.rewrite_config("define('DB_PASSWORD', 'other');", items)


def test_a_failure_message_never_holds_a_secret():
    """A tool may echo its input (MariaDB quotes the statement near a syntax error): values are masked."""
    seen = {}

    class Module:  # AnsibleModule's fail_json, recorded
        def fail_json(self, **kw):
            seen.update(kw)
            raise SystemExit(1)

    run = secrets_rotate.Rotation(Module(), {"db_user": "shop_production"})
    run.secrets = ["OldPassword-1234567890", "NewPassword-0987654321"]
    run.phases = ["generate"]
    with pytest.raises(SystemExit):
        run.fail("near 'USING PASSWORD('OldPassword-1234567890') OR ... PASSWORD('NewPassword-0987654321')'")
    assert seen["msg"] == "near 'USING PASSWORD('********') OR ... PASSWORD('********')'"
    assert seen["phases"] == ["generate"]
