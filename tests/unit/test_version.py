"""One version for the wheel, the CLI and the collection (scripts/build builds both from it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pressluft_cli.main import cli

from pressluft_lib import __version__, collection_version

ROOT = Path(__file__).resolve().parents[2]


def test_galaxy_yml_carries_the_library_version():
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"] == collection_version()


@pytest.mark.parametrize(("pep440", "semver"), [
    ("1.0.0", "1.0.0"), ("1.0.0.dev0", "1.0.0-dev0"), ("1.2.3rc1", "1.2.3-rc1"), ("2.0.0b2", "2.0.0-b2"),
])
def test_collection_version(pep440, semver):
    assert collection_version(pep440) == semver


@pytest.mark.parametrize("bad", ["1.0", "1.0.0.post1", "v1.0.0", "1.0.0+local"])
def test_versions_galaxy_cannot_carry_are_refused(bad):
    with pytest.raises(ValueError):
        collection_version(bad)


def test_version_command():
    out = json.loads(CliRunner().invoke(cli, ["version", "--json"]).stdout)
    assert (out["pressluft"], out["collection"]) == (__version__, collection_version())


def test_the_wheel_lists_every_package():
    """pyproject.toml names the packages one by one (cli/ is installed as pressluft_cli): a new
    subpackage missing there is missing from the wheel and the EE image, while the editable install
    of a checkout still finds it (the EE smoke test found pressluft_lib.nodequery and .cloud missing)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    def dotted(init: Path) -> str:
        parts = init.parent.relative_to(ROOT).parts
        return ".".join(("pressluft_cli", *parts[1:]) if parts[0] == "cli" else parts)

    found = {dotted(p) for top in ("pressluft_lib", "cli") for p in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages"
