"""env_clone and env_drift_info in process: bad input refused before the fence (nothing recorded), and the
schema hash of a --no-data dump. The copies and reports themselves run on a node in
tests/integration/test_env_create.py."""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import env_clone, env_drift_info

from tests.rig.ansible import run_module


@pytest.mark.parametrize(("args", "message"), [
    ({"site": "Shop"}, "invalid site name"),
    ({"env": "production"}, "is the environment itself"),
    ({"source_env": "../x"}, "invalid environment name"),
    ({"database": False, "uploads": False, "code": False}, "nothing to copy"),
    ({"run_as": "shop_staging"}, "run_as does not apply"),
    ({"site": "root"}, "reserved"),
    ({"env": "production", "source_env": "staging", "tables": ["wp_posts`; DROP"]}, "invalid table names"),
    ({"tables": ["--help"]}, "invalid table names"),
    ({"tables": ["wp_options"], "database": False}, "tables are copied with database=true"),
    ({"step": "snapshot", "tables": ["wp_options"]}, "step=snapshot copies everything"),
    ({"step": "fill", "uploads": False}, "step=fill copies everything"),
    ({"step": "later"}, "value of step must be one of"),
])
def test_clone_bad_input_is_refused_before_the_fence(capsys, tmp_path, args, message):
    base = {"site": "shop", "env": "staging", "fencing_dir": str(tmp_path / "f"), "fencing_token": 3}
    out = run_module(env_clone, capsys, tmp_path, {**base, **args})
    assert out.get("failed") and message in out["msg"], out
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize(("args", "message"), [
    ({"against": "staging"}, "is the environment itself"),
    ({"since": "yesterday"}, "invalid since"),
    ({"since": "2026-12-06 10:00:00'; DROP"}, "invalid since"),
    ({"against": "Prod"}, "invalid environment name"),
])
def test_drift_bad_input_is_refused(capsys, tmp_path, args, message):
    out = run_module(env_drift_info, capsys, tmp_path, {"site": "shop", "env": "staging", **args})
    assert out.get("failed") and message in out["msg"], out


def test_schema_hash_ignores_the_auto_increment_counter_only():
    one = ("CREATE TABLE `wp_posts` (\n  `ID` bigint(20) NOT NULL,\n  PRIMARY KEY (`ID`)\n) ENGINE=InnoDB "
           "AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4;\n")
    later = one.replace("AUTO_INCREMENT=5", "AUTO_INCREMENT=900")
    changed = one.replace("bigint(20)", "int(11)")
    assert set(env_drift_info.schema(one)) == {"wp_posts"}
    assert env_drift_info.schema(one) == env_drift_info.schema(later)
    assert env_drift_info.schema(one) != env_drift_info.schema(changed)
