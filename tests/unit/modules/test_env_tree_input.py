"""env_tree's main() in process: input refused before anything on the host is touched.

The real runs (user, tree, secrets, wp-config.php on a node) are in tests/integration/test_site.py.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.pressluft.wordpress.plugins.modules import env_tree


def run(capsys, tmp_path, **args) -> dict:
    args = {"extra_groups": ["root"], "secrets_dir": str(tmp_path / "secrets"),
            "fencing_dir": str(tmp_path / "f"),
            "_ansible_tmpdir": str(tmp_path), "_ansible_remote_tmp": str(tmp_path),
            "_ansible_keep_remote_files": False, **args}
    capsys.readouterr()
    with patch_module_args(args), pytest.raises(SystemExit):
        env_tree.main()
    return json.loads(capsys.readouterr().out)


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
