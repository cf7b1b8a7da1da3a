"""meta/runtime.yml's action group `pressluft.wordpress.wordpress` names every module, so one
module_defaults entry (group/pressluft.wordpress.wordpress) reaches all of them."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_the_action_group_lists_every_module_once():
    files = (ROOT / "plugins" / "modules").glob("*.py")
    modules = sorted(p.stem for p in files if not p.stem.startswith("_"))
    group = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["action_groups"]["wordpress"]
    assert group == modules, "meta/runtime.yml action_groups.wordpress must list plugins/modules/*.py, sorted"
