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
