"""One command on a node over SSH (or locally for a local node), killed at a hard deadline.

The remote side of ssh is a shell line: every element is a validated, whitelisted value and is quoted
with shlex, so nothing a user typed or the database holds is ever parsed as shell syntax there. Data
(a login request) goes over stdin, never onto the command line.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pressluft_lib.errors import NodeUnreachable, ValidationError

# The seeds' bound: a node query answers (or fails) within 10 seconds, connection setup included.
DEADLINE_SECONDS = 10.0

_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,253}|\[[0-9A-Fa-f:.]+\]")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def known_hosts_options(data_dir: Path) -> list[str]:
    """The host-key policy shared with Ansible (execution/ansible_exec.py): trust on first use, remembered
    per control plane in <data dir>/known_hosts; a changed key is refused."""
    return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={data_dir / 'known_hosts'}"]


@dataclass(frozen=True)
class Target:
    """How to reach a node: the same settings the inventory plugin gives Ansible."""

    name: str
    host: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    local: bool = False

    def validate(self) -> Target:
        if not self.local:
            if not _HOST_RE.fullmatch(self.host or ""):
                raise ValidationError(f"node {self.name}: invalid host {self.host!r}")
            if not _USER_RE.fullmatch(self.user or ""):
                raise ValidationError(f"node {self.name}: invalid SSH user {self.user!r}")
            if not 1 <= int(self.port) <= 65535:
                raise ValidationError(f"node {self.name}: invalid port {self.port!r}")
        return self

    @property
    def as_root(self) -> bool:
        return (os.geteuid() == 0) if self.local else self.user == "root"


def ssh_argv(target: Target, remote: list[str], data_dir: Path, deadline: float) -> list[str]:
    """The ssh command line that runs `remote` (an argv) on the target."""
    argv = ["ssh", "-T", "-p", str(int(target.port))]
    if target.key_file:
        argv += ["-i", target.key_file, "-o", "IdentitiesOnly=yes"]
    argv += known_hosts_options(data_dir)
    argv += [
        "-o", "BatchMode=yes",  # never a password or passphrase prompt
        # Longer than the deadline: the deadline's kill is the one bound, whatever stage hangs.
        "-o", f"ConnectTimeout={int(deadline) + 1}",
        "-o", "ControlPath=none",  # never ride on (or leave) a shared master connection
        "-o", "LogLevel=ERROR",
        "--", f"{target.user}@{target.host}", shlex.join(remote),
    ]
    return argv


@dataclass
class Answer:
    rc: int
    stdout: str
    stderr: str
    seconds: float


def run(target: Target, remote: list[str], data_dir: Path, *, stdin: str = "",
        deadline: float = DEADLINE_SECONDS) -> Answer:
    """Run `remote` on the node; NodeUnreachable when SSH fails or the deadline passes (the whole process
    group, ssh and anything it started, is killed then)."""
    target.validate()
    argv = remote if target.local else ssh_argv(target, remote, data_dir, deadline)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
    except OSError as exc:
        raise NodeUnreachable(f"node {target.name}: cannot run {argv[0]}: {exc.strerror}",
                              details={"node": target.name}) from None
    try:
        out, err = proc.communicate(stdin, timeout=deadline)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise NodeUnreachable(f"node {target.name} did not answer within {deadline:g} s",
                              details={"node": target.name, "deadline_seconds": deadline}) from None
    seconds = time.monotonic() - started
    if not target.local and proc.returncode == 255:  # ssh's own failure: refused, auth, host key
        first = (err.strip().splitlines() or ["ssh failed"])[-1]
        raise NodeUnreachable(f"node {target.name}: {first[:300]}", details={"node": target.name})
    return Answer(proc.returncode, out, err, seconds)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
