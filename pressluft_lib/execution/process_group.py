"""Stop a playbook run with everything it started: SIGTERM to its process groups, SIGKILL after a grace.

ansible-runner starts ansible-playbook through pexpect (a session of its own), but the run does not
stay in one process group: ansible-core 2.19 puts each worker fork in a new session (its module
processes follow it), and the ssh connection starts every ssh client with start_new_session. So
signalling the playbook's group, as ansible-runner's own cancel does, misses the processes that touch
the node. This module collects the process groups of the whole tree under the playbook process and
signals each; groups it saw once stay targeted, so a process orphaned by its parent's death (and
reparented away from the tree) is still reached. Linux only (reads /proc), as the control plane is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def _table() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, process group) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()  # fields from state on
                out[int(d.name)] = (f[0], int(f[1]), int(f[2]))
            except (OSError, IndexError, ValueError):
                pass  # exited meanwhile
    return out


def find_child(marker: str) -> int | None:
    """The pid of this process's child whose command line contains `marker`, or None."""
    me = os.getpid()
    for pid, (_state, ppid, _pgrp) in _table().items():
        if ppid != me:
            continue
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


class Tree:
    """The processes of a run: the root, its descendants, and every process group they were seen in."""

    def __init__(self, root: int):
        self.root = root
        self.groups: set[int] = set()
        self.own = os.getpgid(0)  # the worker's group: never signalled as a whole

    def live(self) -> list[int]:
        table = _table()
        children: dict[int, list[int]] = {}
        for pid, (_s, ppid, _g) in table.items():
            children.setdefault(ppid, []).append(pid)
        found, todo = set(), [self.root] if self.root in table else []
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo.extend(c for c in children.get(pid, ()) if c not in found)
        found |= {pid for pid, (_s, _p, pgrp) in table.items() if pgrp in self.groups}
        live = [pid for pid in found if table[pid][0] != "Z" and pid != os.getpid()]
        self.groups |= {table[pid][2] for pid in live if table[pid][2] not in (self.own, 0, 1)}
        return live

    def signal(self, sig: signal.Signals) -> None:
        for pgid in self.groups:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        table = _table()
        for pid in self.live():  # a member of the worker's own group, if any, one by one
            if pid in table and table[pid][2] == self.own:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass


def terminate(root: int, grace: float, on_signal: Callable[[str], None] | None = None) -> str | None:
    """SIGTERM every process group of the run under `root`, wait up to `grace` s for them to go, then
    SIGKILL what is left. Returns the last signal sent ("SIGTERM", "SIGKILL"), or None if none was needed.
    """
    tree = Tree(root)
    sent = None
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not tree.live():
            return sent
        tree.signal(sig)
        sent = sig.name
        if on_signal is not None:
            on_signal(sent)
        deadline = time.monotonic() + wait
        while tree.live() and time.monotonic() < deadline:
            time.sleep(0.1)
    return sent
