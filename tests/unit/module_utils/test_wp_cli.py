"""module_utils/_wp_cli.py: the argv every module runs WP-CLI with, and what a failure says."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError

# A stand-in for the wp binary: prints its cwd and argv; fails when an argument says so.
FAKE_WP = """#!/bin/sh
echo "cwd=$(pwd)"
for a in "$@"; do echo "arg=$a"; done
for a in "$@"; do [ "$a" = fail ] && { echo "Error: told to fail" >&2; exit 3; }; done
exit 0
"""


class Module:
    """The part of AnsibleModule WpCli uses, running real processes."""

    def __init__(self, wp_cli):
        self.params = {'wp_cli': wp_cli}

    def get_bin_path(self, name, required=False):
        return shutil.which(name)

    def run_command(self, argv, data=None, cwd=None, binary_data=False):
        proc = subprocess.run(argv, input=data, cwd=cwd, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def wp(tmp_path):
    script = tmp_path / 'wp'
    script.write_text(FAKE_WP)
    script.chmod(0o755)
    return str(script)


def test_runs_as_the_user_without_plugins_or_themes(wp, tmp_path):
    user = getpass.getuser()
    cli = WpCli(Module(wp), user, str(tmp_path))
    # As root through runuser (modules run with become), otherwise only as that user itself.
    runuser = [shutil.which('runuser'), '-u', user, '--'] if os.geteuid() == 0 else []
    assert cli.base == [*runuser, wp, f'--path={tmp_path}', '--skip-plugins', '--skip-themes']
    assert cli.out(['option', 'get', 'home']).splitlines() == [
        f'cwd={tmp_path}', f'arg=--path={tmp_path}', 'arg=--skip-plugins', 'arg=--skip-themes',
        'arg=option', 'arg=get', 'arg=home']


def test_a_failure_names_the_command_the_environment_the_code_and_stderr(wp, tmp_path):
    cli = WpCli(Module(wp), getpass.getuser(), str(tmp_path), cwd='/', label='shop/staging')
    with pytest.raises(WpCliError) as exc:
        cli.run(['db', 'fail'])
    assert str(exc.value) == 'wp db fail (shop/staging) failed (rc=3): Error: told to fail'
    with pytest.raises(WpCliError, match=r'^wp plugin update x \(shop/staging\) failed \(rc=3\)'):
        cli.out(['plugin', 'fail'], what='wp plugin update x')
    rc, out, err = cli.run(['db', 'fail'], check=False)
    assert (rc, err.strip()) == (3, 'Error: told to fail')
    assert 'cwd=/' in out.splitlines()
