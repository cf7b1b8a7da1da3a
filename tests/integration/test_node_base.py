"""The first proof through the rig: node_base applied over SSH to a real systemd node."""

from __future__ import annotations

import pytest

from tests.rig.ansible import ROOT, run_playbook
from tests.rig.nodes import inventory

PLAYBOOK = ROOT / "tests/integration/playbooks/node_base.yml"

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def based(module_node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node_base")
    first = run_playbook(PLAYBOOK, inventory([module_node]), tmp)
    assert first.rc == 0, first.explain()
    return module_node, tmp, first


def test_first_run_changes_the_node(based):
    _, _, first = based
    assert first.changed > 0


def test_packages_and_services(based):
    node, _, _ = based
    for pkg in ("sudo", "cron", "python3-pymysql", "unattended-upgrades"):
        status = node.exec("dpkg-query", "-W", "-f=${Status}", pkg).stdout
        assert status == "install ok installed", pkg
    assert node.unit_active("cron")
    assert node.exec("systemctl", "is-enabled", "cron").stdout.strip() == "enabled"


def test_identity_file(based):
    node, _, _ = based
    assert node.stat("/etc/pressluft/node.yml") == ("root", "root", "640")
    assert node.stat("/etc/pressluft") == ("root", "root", "750")
    assert f"node: \"{node.name}\"" in node.exec("cat", "/etc/pressluft/node.yml").stdout


def test_security_only_upgrades(based):
    node, _, _ = based
    conf = node.exec("cat", "/etc/apt/apt.conf.d/52pressluft-unattended-upgrades").stdout
    origins = [line.strip() for line in conf.splitlines() if line.strip().startswith('"origin=')]
    assert origins and all("label=Debian-Security" in o for o in origins), origins
    # apt itself parses the file: a syntax error would make apt-config fail.
    dump = node.exec("apt-config", "dump", "Unattended-Upgrade::Origins-Pattern").stdout
    assert "Debian-Security" in dump


def test_timesync_skipped_in_container(based):
    node, _, first = based
    assert "Time sync skipped" in first.stdout
    status = node.exec("dpkg-query", "-W", "-f=${Status}", "systemd-timesyncd", check=False).stdout
    assert "install ok installed" not in status


def test_second_run_changes_nothing(based):
    node, tmp, _ = based
    again = run_playbook(PLAYBOOK, inventory([node]), tmp)
    assert again.rc == 0, again.explain()
    assert again.changed_tasks() == []


def test_check_mode_reports_no_change(based):
    node, tmp, _ = based
    check = run_playbook(PLAYBOOK, inventory([node]), tmp, check=True)
    assert check.rc == 0, check.explain()
    assert check.changed_tasks() == []


def test_drift_is_repaired(based):
    node, tmp, _ = based
    node.exec("chmod", "0666", "/etc/pressluft/node.yml")
    node.exec("systemctl", "stop", "cron")
    fixed = run_playbook(PLAYBOOK, inventory([node]), tmp)
    assert fixed.rc == 0, fixed.explain()
    assert node.stat("/etc/pressluft/node.yml")[2] == "640"
    assert node.unit_active("cron")
    assert len(fixed.changed_tasks()) == 2, fixed.changed_tasks()
