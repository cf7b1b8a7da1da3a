"""Run one allowlisted playbook through ansible-runner without leaving secrets on disk.

This module knows nothing about the database: runner.py binds it to jobs. Everything a run
writes (inventory, vars files, artifacts, fact cache, Ansible's local temp) lives in one 0700
directory that is removed when the run ends, whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner

ROOT = Path(__file__).resolve().parents[2]  # the repository (collection) root
# Worker environment variables that must never reach Ansible or the runner's artifacts.
_SECRET_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE)|^PRESSLUFT_DB$", re.I)
REDACTED = "********"
# Runner event -> the status recorded in job_events.
_STATUS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_item_on_failed": "failed",
}
_FINAL = {"successful": "succeeded", "failed": "failed", "canceled": "cancelled", "timeout": "timed_out"}


@dataclass
class RunOutcome:
    state: str  # succeeded | failed | cancelled | timed_out
    rc: int | None
    status: str
    stats: dict  # per-host counts from the playbook_on_stats event (ok, changed, failures, dark)
    # What the playbook returned with ansible.builtin.set_stats (aggregated, not per host), redacted.
    artifacts: dict = field(default_factory=dict)


def collections_path(data_dir: Path) -> str:
    """An ANSIBLE_COLLECTIONS_PATH in which pressluft.wordpress resolves.

    PRESSLUFT_COLLECTIONS_PATH wins; from a checkout (galaxy.yml beside pressluft_lib) a symlink
    to it under the data dir; otherwise Ansible's own path, where the collection is installed.
    """
    explicit = os.environ.get("PRESSLUFT_COLLECTIONS_PATH")
    if explicit:
        return explicit
    if (ROOT / "galaxy.yml").is_file() and (ROOT / "playbooks").is_dir():
        base = data_dir / "collections"
        link = base / "ansible_collections" / "pressluft" / "wordpress"
        if not link.is_symlink() or link.resolve() != ROOT:
            link.parent.mkdir(parents=True, exist_ok=True)
            # Unique per thread: a worker runs concurrent jobs in threads of one process.
            tmp = link.with_name(f".wordpress-{os.getpid()}-{threading.get_ident()}")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(ROOT, target_is_directory=True)
            os.replace(tmp, link)
        return os.pathsep.join([str(base), os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")]).rstrip(os.pathsep)
    return os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")


def playbook_path(name: str, collections: str) -> Path:
    """The playbook file `name`.yml of the pressluft.wordpress collection."""
    for base in [p for p in collections.split(os.pathsep) if p]:
        candidate = Path(base, "ansible_collections", "pressluft", "wordpress", "playbooks", f"{name}.yml")
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"playbook {name}.yml not found in the pressluft.wordpress collection")


def redact(value, secrets: Iterable[str]):
    """`value` with every secret string replaced, recursively."""
    secrets = [s for s in secrets if s]
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


def summarize_event(event: dict, secrets: Iterable[str]) -> dict | None:
    """The part of a runner event worth storing: task, host, status; never a no_log result body."""
    kind = event.get("event", "")
    data = event.get("event_data", {})
    if kind == "playbook_on_play_start":
        return {"event": kind, "play": data.get("play", "")}
    if kind == "playbook_on_stats":
        return {
            "event": kind,
            "failures": data.get("failures", {}),
            "changed": data.get("changed", {}),
            "ok": data.get("ok", {}),
            "dark": data.get("dark", {}),
        }
    if kind not in _STATUS:
        return None
    res = data.get("res") or {}
    status = _STATUS[kind]
    if status == "ok" and res.get("changed"):
        status = "changed"
    out = {"event": kind, "task": data.get("task", ""), "host": data.get("host", ""), "status": status}
    hidden = bool(res.get("_ansible_no_log") or "censored" in res)
    if hidden:
        out["hidden"] = True  # no_log: Ansible censored the result, even whether it changed
    if status in ("failed", "unreachable"):
        msg = "the output has been hidden (no_log)" if hidden else str(res.get("msg", ""))[:500]
        out["msg"] = msg
    return redact(out, secrets)


def run_playbook(
    playbook: str | Path,
    *,
    data_dir: Path,
    inventory: dict | str,
    extravars: dict,
    secret_vars: dict | None = None,
    on_event: Callable[[dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    timeout: int | None = None,
    ident: str = "run",
) -> RunOutcome:
    """Run playbooks/<playbook>.yml of the collection and return its outcome.

    `inventory` is either a dict (a static inventory written as JSON) or the text of an inventory
    plugin config (YAML, e.g. for pressluft.wordpress.pressluft). `secret_vars` reach Ansible
    through a 0600 vars file only; their values are redacted from every recorded event.
    """
    secret_vars = secret_vars or {}
    secrets = [str(v) for v in secret_vars.values() if v not in (None, "")]
    jobs_dir = data_dir / "runs"
    jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    collections = collections_path(data_dir)
    # A name resolves in the collection (the allowlist is the caller's); a Path is used as is (tests).
    pb = playbook.resolve() if isinstance(playbook, Path) else playbook_path(playbook, collections)
    private = Path(tempfile.mkdtemp(prefix=f"{ident}-", dir=jobs_dir))  # mkdtemp: 0700
    try:
        inv_dir = private / "inventory"
        inv_dir.mkdir(mode=0o700)
        if isinstance(inventory, dict):
            inv_file = inv_dir / "hosts.json"
            _write_private(inv_file, json.dumps(inventory))
        else:
            inv_file = inv_dir / "nodes.pressluft.yml"
            _write_private(inv_file, inventory)
        vars_file = private / "vars.json"
        _write_private(vars_file, json.dumps({**extravars, **secret_vars}))
        last_check = [0.0, False]

        def cancel() -> bool:
            # The flag lives in the database: look at most once a second.
            if should_cancel is None:
                return False
            now = time.monotonic()
            if now - last_check[0] >= 1.0:
                last_check[0], last_check[1] = now, bool(should_cancel())
            return last_check[1]

        final_stats: dict = {}
        artifacts: dict = {}

        def handle(event: dict) -> bool:
            summary = summarize_event(event, secrets)
            if summary is not None and summary["event"] == "playbook_on_stats":
                final_stats.update({k: v for k, v in summary.items() if k != "event"})
                artifacts.update(redact(event.get("event_data", {}).get("artifact_data") or {}, secrets))
            if summary is not None and on_event is not None:
                on_event(summary)
            return False  # never write event files (they hold result bodies)

        bindir = str(Path(sys.executable).parent)
        envvars = {
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_COLLECTIONS_PATH": collections,
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            # Trust on first use, remembered per control plane: a changed host key fails the job.
            "ANSIBLE_SSH_COMMON_ARGS": "-o StrictHostKeyChecking=accept-new "
            f"-o UserKnownHostsFile={data_dir / 'known_hosts'}",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_INVENTORY_ENABLED": "pressluft.wordpress.pressluft,ansible.builtin.yaml",
        }
        r = ansible_runner.interface.init_runner(
            private_data_dir=str(private),
            playbook=str(pb),
            inventory=str(inv_file),
            cmdline=f"-e @{vars_file}",
            envvars=envvars,
            suppress_env_files=True,
            quiet=not os.environ.get("PRESSLUFT_RUNNER_VERBOSE"),
            event_handler=handle,
            cancel_callback=cancel,
            timeout=timeout,
            ident=ident,
        )
        # The runner copied os.environ; drop the worker's secrets before anything is written.
        r.config.env = {k: v for k, v in r.config.env.items() if k in envvars or not _SECRET_ENV.search(k)}
        r.run()
        state = _FINAL.get(r.status, "failed")
        return RunOutcome(state=state, rc=r.rc, status=r.status, stats=final_stats, artifacts=artifacts)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
