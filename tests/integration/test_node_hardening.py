"""node_hardening on real systemd nodes: firewall, sshd, fail2ban, sysctls, and its refusal guards.

In this rig every connection from the host reaches a node through slirp4netns from the node's own
address, i.e. over `lo`, which ufw always accepts. Filtering is therefore probed from a private
network namespace joined to the node by a veth pair, inside the node's own namespace.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rig import nodes as rig
from tests.rig.ansible import ROOT, PlaybookResult, run_playbook

pytestmark = pytest.mark.node

PLAYBOOK = ROOT / "tests/integration/playbooks/node_hardening.yml"
# ignoreself=false: rig connections come from the node's own address, which fail2ban ignores by
# default. A high maxretry keeps the few failures these tests cause from banning Ansible itself.
HOSTVARS = {"node_hardening_fail2ban_ignoreself": False, "node_hardening_fail2ban_maxretry": 20}
NET_KEYS = {"net.ipv4.tcp_syncookies": "1", "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv4.conf.default.accept_redirects": "0", "net.ipv4.conf.all.rp_filter": "1",
            "net.ipv6.conf.all.accept_redirects": "0"}
GLOBAL_KEYS = ("kernel.kptr_restrict", "kernel.dmesg_restrict", "fs.protected_symlinks",
               "fs.protected_regular")
SSH_OPTS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR")
ROLE_FILES = ("/etc/ssh/sshd_config.d/60-pressluft.conf", "/etc/sysctl.d/60-pressluft.conf",
              "/etc/fail2ban/jail.d/pressluft.conf")
GUARD_TASKS = {"Validating arguments against arg spec", "Refuse a local connection",
               "Refuse to disable SSH passwords while Ansible logs in with one",
               "Read the node's machine id", "Refuse a target that is the controller itself"}

# Connects to each port from a network namespace behind a veth pair, so packets enter on a real
# interface and cross the node's INPUT chain (never /proc/sys or the host: all inside the node).
PROBE = r"""
set -e
unshare --net --fork sleep 60 & P=$!
i=0; while [ "$(readlink /proc/$P/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do
  i=$((i+1)); [ $i -lt 100 ] || exit 3; sleep 0.05; done
ip link add plh0 type veth peer name plh1 netns $P
ip addr add 192.168.77.1/24 dev plh0 && ip link set plh0 up
nsenter -t $P -n ip addr add 192.168.77.2/24 dev plh1
nsenter -t $P -n ip link set plh1 up
for port in "$@"; do nsenter -t $P -n python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("192.168.77.1", int(sys.argv[1]))); print(sys.argv[1], "open")
except ConnectionRefusedError: print(sys.argv[1], "open")  # reached the node, nothing listens
except OSError: print(sys.argv[1], "dropped")
' "$port"; done
ip link del plh0; kill $P
"""


def _require_podman() -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run scripts/setup --tests (node tests never skip silently)")


def _inv(*hosts: rig.Node, local: bool = False, **extra) -> dict:
    inv = rig.inventory(hosts, extra={**HOSTVARS, **extra})
    if local:
        inv["all"]["children"]["nodes"]["hosts"]["localhost"] = rig.local_node_vars(sys.executable)
    return inv


def _privileged(node: rig.Node, script: str, *args: str) -> str:
    """A script in the node with all capabilities (unshare, mounts); it only affects the node."""
    return subprocess.run(["podman", "exec", "--privileged", node.name, "/bin/sh", "-c", script, "sh", *args],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def _probe(node: rig.Node, *ports: int) -> dict[int, str]:
    out = _privileged(node, PROBE, *map(str, ports))
    return {int(p): state for p, state in (line.split() for line in out.splitlines())}


def _snapshot(run) -> str:
    """What the role would change on a machine: its files, packages, firewall and sshd state."""
    script = ("for f in " + " ".join(ROLE_FILES) + "; do [ -e $f ] && md5sum $f || echo absent $f; done; "
              "dpkg-query -W -f='${Package} ${Status}\\n' ufw fail2ban 2>&1; "
              "ls -la --time-style=full-iso /etc/ssh/sshd_config.d /etc/sysctl.d /etc/fail2ban /etc/ufw 2>&1;"
              " true")
    return run(script)


def _host_sh(script: str) -> str:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False).stdout


def _host_sysctls() -> dict[str, str]:
    keys = [*NET_KEYS, *GLOBAL_KEYS]
    return {k: Path("/proc/sys", k.replace(".", "/")).read_text().strip() for k in keys}


def _task_names(result: PlaybookResult) -> set[str]:
    names = {name.split(" : ", 1)[-1] for name, _ in result.tasks}
    validating = "Validating arguments against arg spec"
    return {validating if n.startswith(validating) else n for n in names}


def _jail(node: rig.Node) -> str:
    return node.exec("fail2ban-client", "status", "sshd").stdout


def _failed_total(node: rig.Node) -> int:
    return int(re.search(r"Total failed:\s+(\d+)", _jail(node)).group(1))


def _msg(result: PlaybookResult, host: str, task: str) -> str:
    """The message a debug task printed for one host ('' if it did not run there)."""
    for play in json.loads(result.stdout)["plays"]:
        for t in play["tasks"]:
            if t["task"]["name"].endswith(task):
                return t["hosts"].get(host, {}).get("msg", "")
    return ""


@dataclass
class Nodes:
    caps: rig.Node  # with HARDENING_CAPS and writable net.* sysctls
    plain: rig.Node  # without netfilter caps, as other suites' nodes
    tmp: Path


@dataclass
class Hardened(Nodes):
    first: PlaybookResult
    host_sysctls: dict


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Two nodes, not hardened yet. The caps node's net.* sysctls (per network namespace) are made
    writable as on a VM; kernel.* and fs.* are the host kernel's and stay read-only in containers."""
    _require_podman()
    tmp = tmp_path_factory.mktemp("hardening")
    started: list[rig.Node] = []
    try:
        started.append(rig.start_node(tmp, caps=rig.HARDENING_CAPS))
        started.append(rig.start_node(tmp))
        _privileged(started[0], "mount --bind /proc/sys/net /proc/sys/net"
                    " && mount -o remount,bind,rw /proc/sys/net")
        yield Nodes(started[0], started[1], tmp)
    finally:
        rig.stop_nodes(started)


@pytest.fixture(scope="module")
def hardened(nodes):
    """Both nodes hardened by one run (Ansible works on them in parallel)."""
    host_before = _host_sysctls()
    t0 = time.monotonic()
    first = run_playbook(PLAYBOOK, _inv(nodes.caps, nodes.plain), nodes.tmp)
    print(f"\nnode_hardening first run (2 nodes): {time.monotonic() - t0:.1f}s, {first.changed} changed")
    assert first.rc == 0, first.explain()
    # For the firewall probe (ip); the role has just refreshed the package lists.
    nodes.caps.exec("apt-get", "install", "-y", "-q", "--no-install-recommends", "iproute2", timeout=300)
    return Hardened(nodes.caps, nodes.plain, nodes.tmp, first, host_before)


# --- guards: each refusal must happen before anything changes -------------------------------------

def test_guard_refuses_local_connection_and_stops_the_whole_play(nodes):
    node = nodes.plain
    host_before, node_before = _snapshot(_host_sh), _snapshot(node.sh)
    result = run_playbook(PLAYBOOK, _inv(node, local=True), nodes.tmp)
    assert result.rc != 0, result.explain()
    refusal = "node_hardening refuses to run on localhost: the connection is local"
    assert refusal in result.stdout, result.explain()
    # any_errors_fatal: the SSH node in the same play got no further task either.
    assert _task_names(result) <= GUARD_TASKS - {"Read the node's machine id"}, _task_names(result)
    assert _snapshot(_host_sh) == host_before
    assert _snapshot(node.sh) == node_before


def test_guard_refuses_a_target_with_the_controllers_machine_id(nodes):
    node = nodes.plain
    controller_id = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
    if not controller_id:
        pytest.skip("this controller has no /etc/machine-id, so the machine-id guard is inert here")
    own_id = node.exec("cat", "/etc/machine-id").stdout
    node_before = _snapshot(node.sh)
    node.exec("/bin/sh", "-c", "cat > /etc/machine-id", input=controller_id + "\n")
    try:
        result = run_playbook(PLAYBOOK, _inv(node), nodes.tmp)
    finally:
        node.exec("/bin/sh", "-c", "cat > /etc/machine-id", input=own_id)
    assert result.rc != 0, result.explain()
    assert "it has the controller's machine id" in result.stdout, result.explain()
    assert _snapshot(node.sh) == node_before


def test_guard_refuses_while_ansible_logs_in_with_a_password(nodes):
    node = nodes.plain
    node_before = _snapshot(node.sh)
    result = run_playbook(PLAYBOOK, _inv(node, ansible_password="not-a-real-password"), nodes.tmp)
    assert result.rc != 0, result.explain()
    assert "Ansible connects with a password" in result.stdout, result.explain()
    assert _snapshot(node.sh) == node_before


def test_check_mode_on_a_fresh_node_previews_and_changes_nothing(nodes):
    node = nodes.plain
    node_before = _snapshot(node.sh)
    result = run_playbook(PLAYBOOK, _inv(node), nodes.tmp, check=True)
    assert result.rc == 0, result.explain()
    if f"absent {ROLE_FILES[0]}" in node_before:  # fresh (tests run alone may find it hardened)
        assert any(t.endswith("Write the key-only sshd drop-in") for t in result.changed_tasks())
    assert _snapshot(node.sh) == node_before


# --- a node without netfilter caps --------------------------------------------------------------

def test_without_netfilter_the_firewall_is_skipped_visibly(hardened):
    node, first = hardened.plain, hardened.first
    assert "WARNING: firewall (ufw) SKIPPED" in _msg(first, node.name, "Warn that the firewall is skipped")
    # ufw itself cannot even read the rules here; its config shows it was never enabled.
    assert "ENABLED=no" in node.exec("cat", "/etc/ufw/ufw.conf").stdout
    # Everything else still applies.
    assert "passwordauthentication no" in node.exec("sshd", "-T").stdout.splitlines()
    assert "Journal matches:\t_SYSTEMD_UNIT=ssh.service + _COMM=sshd" in _jail(node)
    # A plain container exposes all of /proc/sys read-only: every key is persisted for boot only.
    boot_only = _msg(first, node.name, "Say which kernel settings apply only at boot")
    assert all(k in boot_only for k in [*NET_KEYS, *GLOBAL_KEYS]), boot_only


def test_an_earlier_sshd_dropin_that_wins_is_an_error(hardened):
    node = hardened.plain
    # sshd keeps the first value it reads; cloud images ship such a file.
    node.exec("/bin/sh", "-c", "cat > /etc/ssh/sshd_config.d/50-cloud-init.conf",
              input="PasswordAuthentication yes\n")
    try:
        result = run_playbook(PLAYBOOK, _inv(node), hardened.tmp)
    finally:
        node.exec("rm", "-f", "/etc/ssh/sshd_config.d/50-cloud-init.conf")
    assert result.rc != 0
    assert "does not use PasswordAuthentication no" in result.stdout, result.explain()


def test_firewall_required_fails_without_netfilter(hardened):
    node = hardened.plain
    result = run_playbook(PLAYBOOK, _inv(node), hardened.tmp,
                          extravars={"node_hardening_firewall_required": True})
    assert result.rc != 0
    assert "cannot manage its packet filter" in result.stdout, result.explain()
    assert "ENABLED=no" in node.exec("cat", "/etc/ufw/ufw.conf").stdout


# --- a node with netfilter caps -------------------------------------------------------------------

def test_first_run_hardens(hardened):
    assert hardened.first.changed > 0
    assert _msg(hardened.first, hardened.caps.name, "Warn that the firewall is skipped") == ""


def test_firewall_denies_incoming_except_ssh_http_https(hardened):
    node = hardened.caps
    status = node.exec("ufw", "status", "verbose").stdout
    assert "Status: active" in status and "Default: deny (incoming)" in status, status
    allowed = {line.split()[0] for line in status.splitlines() if "ALLOW IN" in line and "(v6)" not in line}
    # sshd's own port (22), not the port Ansible connects on, which the rig forwards from the host.
    assert allowed == {"22/tcp", "80/tcp", "443/tcp"}, status
    assert "-P INPUT DROP" in node.exec("iptables", "-S", "INPUT").stdout
    assert _probe(node, 22, 80, 443, 8080) == {22: "open", 80: "open", 443: "open", 8080: "dropped"}


def test_sshd_is_key_only(hardened):
    node = hardened.caps
    assert node.stat(ROLE_FILES[0]) == ("root", "root", "644")
    effective = node.exec("sshd", "-T").stdout.splitlines()
    for line in ("passwordauthentication no", "kbdinteractiveauthentication no",
                 "permitrootlogin without-password", "pubkeyauthentication yes"):
        assert line in effective, line
    # The server offers nothing but public keys to a client that has only a password.
    attempt = subprocess.run(
        ["ssh", "-p", str(node.ssh_port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password,keyboard-interactive", f"{rig.SSH_USER}@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=30)
    assert attempt.returncode == 255 and "Permission denied (publickey)." in attempt.stderr, attempt.stderr
    # A new key login (no multiplexed master connection to ride on) still works after the reload.
    login = subprocess.run(["ssh", "-i", str(node.key_file), "-p", str(node.ssh_port), *SSH_OPTS,
                            "-o", "ControlPath=none", f"{rig.SSH_USER}@127.0.0.1", "sudo", "-n", "true"],
                           capture_output=True, text=True, timeout=30)
    assert login.returncode == 0, login.stderr


def test_sysctls_applied_where_the_node_allows(hardened):
    node = hardened.caps
    persisted = dict(line.split(" = ") for line in node.exec("cat", ROLE_FILES[1]).stdout.splitlines()
                     if " = " in line)
    for key, value in {**NET_KEYS, "kernel.kptr_restrict": "2", "fs.protected_regular": "2"}.items():
        assert persisted[key] == value, key
    # net.* applied now (writable here); kernel.*/fs.* are the host kernel's and reported as boot-only.
    for key, value in NET_KEYS.items():
        assert node.exec("sysctl", "-n", key).stdout.strip() == value, key
    boot_only = _msg(hardened.first, node.name, "Say which kernel settings apply only at boot")
    assert all(k in boot_only for k in GLOBAL_KEYS) and not any(k in boot_only for k in NET_KEYS), boot_only
    assert _host_sysctls() == hardened.host_sysctls


def test_second_run_over_ssh_changes_nothing(hardened):
    t0 = time.monotonic()
    again = run_playbook(PLAYBOOK, _inv(hardened.caps, hardened.plain), hardened.tmp)
    print(f"\nnode_hardening second run (2 nodes): {time.monotonic() - t0:.1f}s")
    assert again.rc == 0, again.explain()
    assert again.changed_tasks() == []


def test_fail2ban_counts_ssh_failures_and_bans(hardened):
    node = hardened.caps
    assert node.unit_active("fail2ban")
    before = _failed_total(node)
    subprocess.run(["ssh", "-i", str(node.key_file), "-p", str(node.ssh_port), *SSH_OPTS,
                    "nosuchuser@127.0.0.1", "true"], capture_output=True, timeout=30, check=False)
    deadline = time.monotonic() + 30
    while _failed_total(node) <= before:
        assert time.monotonic() < deadline, f"fail2ban did not see the failed login:\n{_jail(node)}"
        time.sleep(0.3)
    node.exec("fail2ban-client", "set", "sshd", "banip", "192.0.2.7")
    try:
        assert "-A f2b-sshd -s 192.0.2.7/32 -j REJECT" in node.exec("iptables", "-S", "f2b-sshd").stdout
    finally:
        node.exec("fail2ban-client", "set", "sshd", "unbanip", "192.0.2.7")


def test_firewall_drift_is_reported_in_check_mode_then_repaired(hardened):
    node, tmp = hardened.caps, hardened.tmp
    node.exec("ufw", "delete", "allow", "80/tcp")
    assert _probe(node, 80) == {80: "dropped"}
    check = run_playbook(PLAYBOOK, _inv(node), tmp, check=True)
    assert check.rc == 0, check.explain()
    assert [t.split(" : ")[-1] for t in check.changed_tasks()] == ["Allow SSH and the web ports"]
    assert _probe(node, 80) == {80: "dropped"}
    fixed = run_playbook(PLAYBOOK, _inv(node), tmp)
    assert fixed.rc == 0, fixed.explain()
    assert _probe(node, 80) == {80: "open"}
