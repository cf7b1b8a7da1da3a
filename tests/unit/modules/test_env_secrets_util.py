"""module_utils/_secrets in process: the secrets file (kept, completed, refused), references resolved.

env_tree and env_secrets both use it; their runs on a node are in tests/integration/test_site.py.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _secrets

from tests.rig.ansible import run_module


def test_first_ensure_generates_everything_and_writes_0600(tmp_path):
    path = tmp_path / "secrets" / "shop_production.json"
    changed, data = _secrets.ensure(str(path), {"db_password": "x" * 20}, check_mode=False)
    assert changed and data["db_password"] == "x" * 20
    assert len(data["redis_password"]) == 32 and set(data["salts"]) == set(_secrets.SALT_KEYS)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads(path.read_text()) == data


def test_existing_values_are_kept_and_missing_ones_added(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"db_password": "keep-this-password-1"}))
    path.chmod(0o600)
    changed, data = _secrets.ensure(str(path), {"db_password": "other-password-123"}, check_mode=False)
    assert changed and data["db_password"] == "keep-this-password-1" and "wordpress_admin_password" in data
    again, same = _secrets.ensure(str(path), {}, check_mode=False)
    assert (again and os.geteuid() != 0) or (not again and same == data)


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "s.json"
    changed, _data = _secrets.ensure(str(path), {}, check_mode=True)
    assert changed and not path.exists()


@pytest.mark.parametrize("text", ["[1, 2]", "{not json"])
def test_a_broken_file_is_refused_and_left_alone(tmp_path, text):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(_secrets.SecretsError, match="JSON"):
        _secrets.ensure(str(path), {}, check_mode=False)
    assert path.read_text() == text


@pytest.mark.parametrize(("initial", "message"), [
    ({"api_key": "x" * 20}, "accepts only"),
    ({"db_password": "short"}, "at least 16"),
    ({"db_password": "x" * 20 + "'"}, "without quotes"),
])
def test_bad_initial_secrets_are_refused(initial, message):
    with pytest.raises(_secrets.SecretsError, match=message):
        _secrets.check_initial(initial)


def test_references_resolve_to_the_secrets():
    data = {"db_password": "pw1", "redis_password": "pw2", "wordpress_admin_password": "pw3",
            "salts": {"AUTH_KEY": "s1"}}
    text = "a '@@pressluft_secret:db_password@@' b '@@pressluft_secret:salts.AUTH_KEY@@' @@other@@"
    assert _secrets.resolve(text, data) == "a 'pw1' b 's1' @@other@@"


@pytest.mark.parametrize("ref", ["@@pressluft_secret:salts@@", "@@pressluft_secret:salts.NOPE@@",
                                 "@@pressluft_secret:path@@", "@@pressluft_secret:db_password.x@@"])
def test_unknown_references_are_refused(ref):
    data = {"db_password": "pw1", "salts": {"AUTH_KEY": "s1"}, "path": "/x"}
    with pytest.raises(_secrets.SecretsError, match="unknown secret reference"):
        _secrets.resolve(ref, data)


def test_env_secrets_returns_the_initial_secrets_unmasked(capsys, tmp_path):
    """The controller passes the returned DB password on to mysql_user: masking it would set a constant."""
    from ansible_collections.pressluft.wordpress.plugins.modules import env_secrets

    initial = {"db_password": "db-password-from-the-store",
               "wordpress_admin_password": "admin-password-from-store"}
    args = {"site": "shop", "secrets_dir": str(tmp_path / "s"), "fencing_dir": str(tmp_path / "f"),
            "initial_secrets": initial, "_ansible_no_log": True}
    out = run_module(env_secrets, capsys, tmp_path, args)
    assert out["secrets"]["db_password"] == initial["db_password"], out
    assert out["secrets"]["wordpress_admin_password"] == initial["wordpress_admin_password"]


def test_a_file_of_an_earlier_version_gets_the_admin_password_key_renamed(tmp_path):
    """Nodes set up before the key took the control plane's name (wp_admin_password) keep their password."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"db_password": "d" * 20, "redis_password": "r" * 20,
                                "wp_admin_password": "the-old-admin-password"}))
    path.chmod(0o600)
    changed, data = _secrets.ensure(str(path), {"wordpress_admin_password": "x" * 20}, check_mode=False)
    assert changed and data["wordpress_admin_password"] == "the-old-admin-password"
    assert "wp_admin_password" not in json.loads(path.read_text())
    # References written with the old name still resolve.
    assert _secrets.resolve("@@pressluft_secret:wp_admin_password@@", data) == "the-old-admin-password"
