"""env_tree's main() in process: input refused before anything on the host is touched.

The real runs (user, tree, secrets, wp-config.php on a node) are in tests/integration/test_site.py.
"""

from __future__ import annotations

import pwd
from types import SimpleNamespace

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names
from ansible_collections.pressluft.wordpress.plugins.modules import env_tree

from tests.rig.ansible import run_module


def run(capsys, tmp_path, **args) -> dict:
    defaults = {"extra_groups": ["root"], "secrets_dir": str(tmp_path / "secrets"),
                "fencing_dir": str(tmp_path / "f")}
    return run_module(env_tree, capsys, tmp_path, {**defaults, **args})


@pytest.mark.parametrize(("args", "message"), [
    ({"site": "Shop"}, "invalid site name"),
    ({"site": "shop", "extra_groups": ["no such group!"]}, "invalid group name"),
    ({"site": "shop", "wp_config": "'@@pressluft_secret:db_password@@'"}, "set secrets=true"),
    ({"site": "shop", "secrets": True, "initial_secrets": {"db_password": "short"}}, "at least 16"),
    ({"site": "shop", "secrets": True, "initial_secrets": {"token": "x" * 20}}, "accepts only"),
    ({"site": "shop", "redis": {}}, "redis needs secrets=true"),
])
def test_bad_input_is_refused_and_nothing_written(capsys, tmp_path, args, message):
    out = run(capsys, tmp_path, **args)
    assert out.get("failed") and message in out["msg"], out
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "f").exists()


def _pw(name, gecos):
    """A passwd entry as pwd returns it (struct_passwd built by hand trips a CPython GC bug under pytest)."""
    return SimpleNamespace(pw_name=name, pw_passwd="x", pw_uid=1001, pw_gid=1001, pw_gecos=gecos,
                           pw_dir="/home/" + name, pw_shell="/bin/bash")


def _gr(name):
    return SimpleNamespace(gr_name=name, gr_passwd="x", gr_gid=1001, gr_mem=[])


@pytest.mark.parametrize(("pw", "gr", "refused"), [
    (None, None, None),  # a new environment: useradd -U creates both
    (_pw("john_doe", "Pressluft john/doe"), _gr("john_doe"), None),  # ours: converged
    (_pw("john_doe", "Pressluft john/doe"), None, None),  # ours, group lost: recreated
    (_pw("john_doe", "John Doe,,,"), _gr("john_doe"), "the Linux account john_doe exists"),
    (_pw("john_doe", ""), None, "the Linux account john_doe exists"),
    (_pw("john_doe", "Pressluft john/staging"), _gr("john_doe"), "the Linux account john_doe exists"),
    (None, _gr("john_doe"), "the Linux group john_doe exists without a user"),
])
def test_only_accounts_pressluft_created_are_used(pw, gr, refused):
    names = env_names("john", "doe")
    problem = env_tree.account_refusal(names, pw, gr)
    assert (problem is None) if refused is None else (refused in problem and "nothing was changed" in problem)


def test_an_existing_account_is_refused_before_anything_is_written(capsys, tmp_path, monkeypatch):
    """A real main() run: the admin's account john_doe is named in the message; no file, no fencing."""
    real = pwd.getpwnam
    monkeypatch.setattr(pwd, "getpwnam", lambda n: _pw(n, "John Doe,,,") if n == "john_doe" else real(n))
    out = run(capsys, tmp_path, site="john", env="doe", secrets=True, fencing_token=3)
    assert out.get("failed") and "john_doe" in out["msg"] and "did not create" in out["msg"], out
    assert not (tmp_path / "secrets").exists() and not (tmp_path / "f").exists()
