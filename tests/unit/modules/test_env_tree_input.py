"""env_tree's main() in process: input refused before anything on the host is touched.

The real runs (user, tree, secrets, wp-config.php on a node) are in tests/integration/test_site.py.
"""

from __future__ import annotations

import pytest
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
