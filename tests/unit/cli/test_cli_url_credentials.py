"""Repository URLs with credentials are refused, and the credential is never printed or stored."""

from __future__ import annotations

import pytest

from .dbsnap import db_snapshot
from .test_cli_backups import run
from .test_cli_backups import sites as sites

SECRET = "Pa55-w0rd-XYZ"
REPOS = [
    f"rest:https://user:{SECRET}@backup.example.com/repo",
    f"rest:https://{SECRET}@backup.example.com/repo",  # a token as the user name
    f"s3:https://AKIA:{SECRET}@s3.example.com/bucket",
    f"sftp://user:{SECRET}@host//srv/restic",
]
GITS = [
    f"https://user:{SECRET}@git.example.com/shop.git",
    f"https://{SECRET}@github.com/org/shop.git",  # GitHub's token-as-user form
    f"ssh://git:{SECRET}@git.example.com/shop.git",
    f"https://user:{SECRET}@git.example.com/shop .git",  # also invalid otherwise: still never echoed
]


def refused(sites_url, *args):
    before = db_snapshot(sites_url)
    for extra in ((), ("--json",)):
        result = run(*args, *extra, ok=False)
        assert result.exit_code == 2, result.output
        assert "credentials" in result.output
        assert SECRET not in result.output
    after = db_snapshot(sites_url)
    assert after == before, "a refused URL writes nothing (no job, no row, no audit row)"
    assert SECRET not in repr(after)


@pytest.mark.parametrize("url", REPOS)
def test_backup_repository_with_credentials(sites, url):
    refused(sites, "backup", "repo", "set", "--url", url)


@pytest.mark.parametrize("url", GITS)
def test_git_url_with_credentials(sites, url):
    refused(sites, "deploy", "shop", "--git", url)


@pytest.mark.parametrize(
    "url", ["ssh://git@git.example.com/shop.git", "git@github.com:org/shop.git", "https://github.com/o/s.git"]
)
def test_ssh_logins_and_public_urls_are_fine(sites, url):
    result = run("deploy", "shop", "--git", url, "--json", ok=False)
    assert result.exit_code in (0, 4), result.output  # 4: the site may be busy with its create job
    assert "credentials" not in result.output
