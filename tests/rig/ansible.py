"""Run playbooks of this checkout's collection the way users do: ansible-playbook + an inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def collections_path() -> Path:
    """A collections path in which pressluft.wordpress is this checkout (a symlink)."""
    base = ROOT / "build" / "src-collections"
    link = base / "ansible_collections" / "pressluft" / "wordpress"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)
    return base


@dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    stats: dict
    tasks: list[tuple[str, bool]] = field(default_factory=list)  # ("host: task name", changed)

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())

    @property
    def failed(self) -> int:
        return sum(h.get("failures", 0) + h.get("unreachable", 0) for h in self.stats.values())

    def changed_tasks(self) -> list[str]:
        return [name for name, changed in self.tasks if changed]

    def explain(self) -> str:
        """What to print when an assertion on this run fails."""
        return f"rc={self.rc}\nSTDERR:\n{self.stderr[-4000:]}\nSTDOUT:\n{self.stdout[-8000:]}"


def run_playbook(playbook: str | Path, inventory: dict | Path, tmp_path: Path, extravars: dict | None = None,
                 check: bool = False, diff: bool = False, limit: str | None = None,
                 env: dict | None = None, timeout: float = 1800) -> PlaybookResult:
    """ansible-playbook with JSON stdout; returns rc, output and per-host stats."""
    if isinstance(inventory, dict):
        inv = tmp_path / f"inventory-{os.getpid()}-{len(list(tmp_path.iterdir()))}.yml"
        inv.write_text(yaml.safe_dump(inventory))
    else:
        inv = inventory
    pb = Path(playbook)
    if not pb.is_absolute():
        pb = ROOT / "playbooks" / pb
    args = [str(BIN / "ansible-playbook"), "-i", str(inv), str(pb)]
    if extravars:
        ev = tmp_path / f"extravars-{len(list(tmp_path.iterdir()))}.json"
        ev.write_text(json.dumps(extravars))
        ev.chmod(0o600)
        args += ["-e", f"@{ev}"]
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if limit:
        args += ["--limit", limit]
    full_env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-tmp"),
        **(env or {}),
    }
    proc = subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)
    keep = os.environ.get("PRESSLUFT_TEST_PLAYBOOK_LOG")
    if keep:  # every run's JSON, for tests/rig/profile.py (where the suite's time goes)
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"{time.time():.6f}-{os.getpid()}-{pb.stem}.json").write_text(proc.stdout)
    stats: dict = {}
    tasks: list = []
    try:
        data = json.loads(proc.stdout)
        stats = data.get("stats", {})
        for play in data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    tasks.append((f"{host}: {task['task']['name']}", bool(res.get("changed"))))
    except json.JSONDecodeError:
        pass
    return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, stats, tasks)


def run_module(module, capsys, tmpdir: Path | str, args: dict) -> dict:
    """One in-process run of a collection module's main() with `args`: its JSON result."""
    import pytest
    from ansible.module_utils.testing import patch_module_args

    args = {"_ansible_tmpdir": str(tmpdir), "_ansible_remote_tmp": str(tmpdir),
            "_ansible_keep_remote_files": False, **args}
    capsys.readouterr()
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)
