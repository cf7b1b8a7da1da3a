"""Podman containers booting systemd, reachable over SSH on 127.0.0.1, used as Pressluft nodes.

Each node publishes SSH and HTTP on loopback ports only and uses slirp4netns networking, which
adds no firewall or NAT rules to the host (RIG.md, Host safety).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE = os.environ.get("PRESSLUFT_NODE_IMAGE", "localhost/pressluft-node:current")
LABEL = "pressluft.rig=node"
OWNER_LABEL = "pressluft.rig.owner"  # PID of the test process that started the node
SSH_USER = "pressluft"
# Capabilities a node needs for ufw/iptables and fail2ban inside its own network namespace.
HARDENING_CAPS = ("NET_ADMIN", "NET_RAW")


class RigError(RuntimeError):
    """The rig could not start or reach a node."""


def require_podman() -> None:
    """Fail (never skip silently) where podman is missing."""
    if shutil.which("podman") is None:
        import pytest

        pytest.fail("podman is missing: run scripts/setup --tests (node tests never skip silently)")


def _run(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout, **kw)


@dataclass
class Node:
    """A running podman node and how Ansible reaches it."""

    name: str
    ssh_port: int
    http_port: int
    key_file: Path
    hostvars: dict = field(default_factory=dict)
    https_port: int = 0  # the node's 443 on loopback
    host: str = "127.0.0.1"  # a loopback address of its own when started with `bind`

    @property
    def ansible_vars(self) -> dict:
        return {
            "ansible_host": self.host,
            "ansible_port": self.ssh_port,
            "ansible_user": SSH_USER,
            "ansible_ssh_private_key_file": str(self.key_file),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become": True,
            **self.hostvars,
        }

    def exec(self, *cmd: str, check: bool = True, user: str | None = None, timeout: float = 120,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command inside the node (as root, or as `user`), without going through SSH."""
        args = ["podman", "exec", "-i"]
        if user:
            args += ["--user", user]
        return _run(*args, self.name, *cmd, check=check, timeout=timeout, input=input)

    def sh(self, script: str, check: bool = True, user: str | None = None) -> str:
        return self.exec("/bin/sh", "-c", script, check=check, user=user).stdout

    def unit_active(self, unit: str) -> bool:
        return self.exec("systemctl", "is-active", "--quiet", unit, check=False).returncode == 0

    def stat(self, path: str) -> tuple[str, str, str]:
        """(owner, group, octal mode) of a path on the node."""
        owner, group, mode = self.exec("stat", "-c", "%U %G %a", path).stdout.split()
        return owner, group, mode


def _published_port(name: str, container_port: int) -> int:
    out = _run("podman", "port", name, f"{container_port}/tcp").stdout.strip().splitlines()[0]
    return int(out.rsplit(":", 1)[1])


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RigError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_node(workdir: Path, caps: Iterable[str] = (), memory: str | None = None,
               image: str | None = None, volumes: Iterable[str] = (), bind: str | None = None,
               name: str | None = None) -> Node:
    """Boot one node and return once systemd is running and SSH accepts our key.

    `bind`: a loopback address (127.x.y.z) the node is published on, SSH at port 22 as a cloud server's
    public address (tests/rig/hcloud_api.py). HTTP and HTTPS get free ports there: a single-server
    test's nginx on this host listens on 0.0.0.0:80, and port 80 on the address failed `podman run`."""
    name = name or f"pressluft-node-{uuid.uuid4().hex[:8]}"
    key = workdir / f"{name}.key"
    if not key.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
    args = ["podman", "run", "-d", "--name", name, "--hostname", name, "--label", LABEL,
            "--label", f"{OWNER_LABEL}={os.getpid()}",
            "--systemd=always", "--network", "slirp4netns:allow_host_loopback=true",
            *(["-p", f"{bind}:22:22", "-p", f"{bind}::80", "-p", f"{bind}::443"] if bind else
              ["-p", "127.0.0.1::22", "-p", "127.0.0.1::80", "-p", "127.0.0.1::443"])]
    for cap in caps:
        args += ["--cap-add", cap]
    if memory:
        args += ["--memory", memory]
    for volume in volumes:
        args += ["-v", volume]
    _run(*args, image or IMAGE, "/sbin/init")
    node = Node(name, _published_port(name, 22), _published_port(name, 80), key,
                https_port=_published_port(name, 443), host=bind or "127.0.0.1")
    try:
        node.exec("install", "-m", "0600", "-o", SSH_USER, "-g", SSH_USER, "/dev/stdin",
                  f"/home/{SSH_USER}/.ssh/authorized_keys", input=Path(f"{key}.pub").read_text())
        _wait(lambda: _ssh_ok(node), 60, f"SSH on {name}")
        _wait(lambda: node.exec("systemctl", "is-system-running", check=False).stdout.strip()
              in ("running", "degraded"), 60, f"systemd on {name}")
    except Exception:
        stop_nodes([node])
        raise
    return node


def _ssh_ok(node: Node) -> bool:
    r = _run("ssh", "-i", str(node.key_file), "-p", str(node.ssh_port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             "-o", "ConnectTimeout=2", f"{SSH_USER}@{node.host}", "true", check=False, timeout=10)
    return r.returncode == 0


def stop_nodes(nodes: Iterable[Node]) -> None:
    names = [n.name for n in nodes]
    if names:
        _run("podman", "rm", "-f", "-t", "0", *names, check=False, timeout=120)


def remove_stale_nodes() -> None:
    """Remove nodes left behind by test runs that died before their cleanup.

    Only nodes whose owning process is gone: several test runs may share this host.
    """
    out = _run("podman", "ps", "-a", "--filter", f"label={LABEL}", "--format",
               f'{{{{.Names}}}} {{{{index .Labels "{OWNER_LABEL}"}}}}', check=False).stdout
    stale = []
    for line in out.splitlines():
        name, _, pid = line.partition(" ")
        pid = pid.strip()
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.append(name)
    if stale:
        _run("podman", "rm", "-f", "-t", "0", *stale, check=False, timeout=120)


def inventory(nodes: Iterable[Node], group: str = "nodes", extra: dict | None = None) -> dict:
    """A YAML-ready static inventory of the given nodes."""
    hosts = {n.name: {**n.ansible_vars, **(extra or {})} for n in nodes}
    return {"all": {"children": {group: {"hosts": hosts}}}}


def local_node_vars(python: str) -> dict:
    """Connection variables for the host itself as a node (single-server mode)."""
    return {"ansible_connection": "local", "ansible_python_interpreter": python}


def random_password() -> str:
    return secrets.token_urlsafe(18)
