"""Run one allowlisted playbook through ansible-runner without leaving secrets on disk.

This module knows nothing about the database: runner.py binds it to jobs. Everything a run
writes (inventory, vars files, artifacts, fact cache, Ansible's local temp) lives in one 0700
directory that is removed when the run ends, whatever happens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import yaml

from pressluft_lib.execution import process_group
from pressluft_lib.nodequery.ssh import known_hosts_options
from pressluft_lib.states import JobState

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]  # the repository (collection) root
# Worker environment variables that must never reach Ansible or the runner's artifacts.
_SECRET_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE)|^PRESSLUFT_DB$", re.I)
REDACTED = "********"
MESSAGE_LIMIT = 500  # characters of a failure message kept in events and in a job's error_message
# Runner event -> the status recorded in job_events.
_STATUS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_item_on_failed": "failed",
}
_FINAL = {
    "successful": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELLED,
    "timeout": JobState.TIMED_OUT,
}


# A stop request: (the state the run ends in, why), e.g. ("cancelled", "cancel requested").
Stop = tuple[str, str]


@dataclass
class RunOutcome:
    state: str  # succeeded | failed | cancelled | timed_out, or a stop request's state
    rc: int | None
    status: str
    stats: dict  # per-host counts from the playbook_on_stats event (ok, changed, failures, dark)
    # What the playbook returned with ansible.builtin.set_stats (aggregated, not per host), redacted.
    artifacts: dict = field(default_factory=dict)
    reason: str | None = None  # why a stop request ended the run
    failure: str | None = None  # why a failed run failed: the last failed task, or Ansible's error
    # check=True: every task that would change something, with its diff (redacted, bounded).
    changes: list = field(default_factory=list)


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
        out["msg"] = "the output has been hidden (no_log)" if hidden else _result_msg(res, secrets)
        if data.get("ignore_errors"):
            out["ignored"] = True
    return redact(out, secrets)


DIFF_LIMIT = 4000  # characters of one task's diff kept in a drift report


def change_of(event: dict, summary: dict, secrets: Iterable[str]) -> dict:
    """A task that would change something (check mode): task, host and its diff as unified text."""
    res = event.get("event_data", {}).get("res") or {}
    out = {"task": summary["task"], "host": summary["host"]}
    if summary.get("hidden"):
        out["diff"] = "(hidden: no_log)"
        return out
    diffs = res.get("diff") or [r.get("diff") for r in res.get("results") or () if isinstance(r, dict)]
    diffs = [d for d in (diffs if isinstance(diffs, list) else [diffs]) if d]
    text = "\n".join(_diff_text(d) for d in diffs).strip()
    if text:
        text = redact(text, secrets)
        out["diff"] = text if len(text) <= DIFF_LIMIT else text[: DIFF_LIMIT - 1] + "…"
    return out


def _diff_text(diff) -> str:
    import difflib

    if isinstance(diff, str):
        return diff
    if not isinstance(diff, dict):
        return ""
    if "prepared" in diff:
        return str(diff["prepared"])
    before, after = diff.get("before", ""), diff.get("after", "")
    if not isinstance(before, str) or not isinstance(after, str):
        before, after = (json.dumps(v, sort_keys=True, indent=1) for v in (before, after))
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        str(diff.get("before_header", "before")), str(diff.get("after_header", "after")),
    )
    return "".join(lines)


def bounded(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())  # one line: it is shown in tables and logs
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _result_msg(res: dict, secrets: Iterable[str]) -> str:
    """A failed result's message, redacted before it is cut (a cut secret would escape redaction)."""
    return bounded(redact(_why(res), secrets))


def _why(res: dict) -> str:
    msg = str(res.get("msg") or "")
    items = [r for r in res.get("results") or () if isinstance(r, dict) and r.get("failed")]
    if items:  # a loop: the first failed item says why
        item = "the output has been hidden (no_log)" if items[0].get("_ansible_no_log") else _why(items[0])
        return f"{msg}: {item}" if msg else item
    if not msg or msg.startswith("non-zero return code"):  # a failed command often says why only there
        extra = str(res.get("stderr") or "").strip() or str(res.get("stdout") or "").strip()
        return f"{msg}: {extra}" if msg and extra else msg or extra
    return msg


def failure_message(summary: dict) -> str:
    """error_message of a job whose playbook failed at this (failed or unreachable) task event."""
    task, host, msg = summary.get("task") or "?", summary.get("host") or "?", summary.get("msg") or ""
    if summary["status"] == "unreachable":
        text = f"host {host} unreachable (task {task!r}): {msg}"
    else:
        text = f"task {task!r} failed on {host}: {msg}"
    return bounded(text.rstrip(": "))


def _ansible_error(stdout: Path, secrets: Iterable[str]) -> str | None:
    """Ansible's own error (no task failed: a play that could not start, a syntax error)."""
    try:
        text = redact(stdout.read_text(errors="replace"), secrets)
    except OSError:
        return None
    found = re.search(r"^(?:ERROR!|\[ERROR\]:)\s*(.*(?:\n(?!\n).*)*)", text, re.M)
    return bounded(f"ansible-playbook: {found.group(1)}") if found else None


def run_playbook(
    playbook: str | Path,
    *,
    data_dir: Path,
    inventory: dict | str,
    extravars: dict,
    secret_vars: dict | None = None,
    on_event: Callable[[dict], None] | None = None,
    should_stop: Callable[[], Stop | None] | None = None,
    timeout: float | None = None,
    stop_grace: float = 10.0,
    ident: str = "run",
    check: bool = False,
) -> RunOutcome:
    """Run playbooks/<playbook>.yml of the collection and return its outcome.

    `inventory` is either a dict (a static inventory written as JSON) or the text of an inventory
    plugin config (YAML, e.g. for pressluft.wordpress.pressluft). `secret_vars` reach Ansible
    through a 0600 vars file only; their values are redacted from every recorded event.

    `should_stop` is polled about every 0.25 s; when it returns a Stop (or `timeout` s have passed:
    "timed_out"), the playbook's process groups get SIGTERM, then SIGKILL after `stop_grace` s, each
    reported through `on_event`, and the outcome carries the Stop's state and reason.

    `check`: run with --check --diff (nothing changes on the node); the outcome's `changes` lists
    every task that would have changed something, with its diff.
    """
    if should_stop is not None and (early := should_stop()) is not None:
        return RunOutcome(state=early[0], rc=None, status="not started", stats={}, reason=early[1])
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
        vars_file = private / "vars.yml"
        _write_private(vars_file, unsafe_yaml({**extravars, **secret_vars}))
        final_stats: dict = {}
        artifacts: dict = {}

        failures: list[str] = []
        changes: list[dict] = []

        def handle(event: dict) -> bool:
            summary = summarize_event(event, secrets)
            if check and summary is not None and summary.get("status") == "changed":
                changes.append(change_of(event, summary, secrets))
            if summary is not None and "msg" in summary and not summary.get("ignored"):
                failures.append(failure_message(summary))
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
            # Trust on first use, remembered per control plane: a changed host key fails the job (node
            # queries use the same options).
            "ANSIBLE_SSH_COMMON_ARGS": shlex.join(known_hosts_options(data_dir)),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_INVENTORY_ENABLED": "pressluft.wordpress.pressluft,ansible.builtin.yaml",
        }
        r = ansible_runner.interface.init_runner(
            private_data_dir=str(private),
            playbook=str(pb),
            inventory=str(inv_file),
            cmdline=f"-e @{vars_file}" + (" --check --diff" if check else ""),
            envvars=envvars,
            suppress_env_files=True,
            quiet=not os.environ.get("PRESSLUFT_RUNNER_VERBOSE"),
            event_handler=handle,
            ident=ident,
        )
        # The runner copied os.environ; drop the worker's secrets before anything is written.
        r.config.env = {k: v for k, v in r.config.env.items() if k in envvars or not _SECRET_ENV.search(k)}
        watcher = _Watcher(str(private), should_stop, timeout, stop_grace, on_event)
        watcher.start()
        failure = None
        try:
            r.run()
        except Exception as exc:  # e.g. pexpect's EOF wait timing out while a stop kills the group
            failure = exc
        finally:
            watcher.finish()
        if watcher.stop is not None:
            state, reason = watcher.stop
            return RunOutcome(state, r.rc, r.status or "stopped", final_stats, artifacts, reason=reason)
        if failure is not None:
            raise failure
        state = _FINAL.get(r.status, JobState.FAILED)
        failure = None
        if state == JobState.FAILED:
            failure = (
                failures[-1] if failures else _ansible_error(Path(r.config.artifact_dir, "stdout"), secrets)
            )
        if check:  # a no_log result is censored, even whether it changed: only the host's count tells
            for host, count in sorted((final_stats.get("changed") or {}).items()):
                unseen = count - sum(1 for c in changes if c["host"] == host)
                if unseen > 0:
                    changes.append({"task": f"{unseen} task(s) with hidden output (no_log)", "host": host,
                                    "diff": "(hidden: no_log)"})
        return RunOutcome(state, r.rc, r.status, final_stats, artifacts, failure=failure, changes=changes)
    finally:
        shutil.rmtree(private, ignore_errors=True)


class _Watcher(threading.Thread):
    """Stops the run when asked (or at its timeout): every process it started, SIGTERM then SIGKILL."""

    def __init__(self, marker, should_stop, timeout, grace, on_event):
        super().__init__(name=f"stop-{Path(marker).name}", daemon=True)
        self.marker, self.should_stop, self.grace, self.on_event = marker, should_stop, grace, on_event
        self.deadline = time.monotonic() + timeout if timeout else None
        self.stop: Stop | None = None
        self.root: int | None = None  # the ansible-playbook process
        self.run_ended = threading.Event()

    def _wanted(self) -> Stop | None:
        if self.should_stop is not None and (stop := self.should_stop()) is not None:
            return stop
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return (JobState.TIMED_OUT, "the run's time limit passed")
        return None

    def run(self) -> None:
        while not self.run_ended.wait(0.25):
            if self.root is None:  # found while the playbook runs: it may exit before its children
                self.root = process_group.find_child(self.marker)
            if (stop := self._wanted()) is not None:
                self.stop = stop
                break
        if self.stop is None:
            return
        self.root = self.root or process_group.find_child(self.marker)
        if self.root is None:
            return  # nothing started, or it is gone already

        event = {"event": "stop", "state": self.stop[0], "reason": self.stop[1], "grace_s": self.grace}

        def record(sig: str) -> None:
            try:
                self.on_event({**event, "signal": sig})
            except Exception:
                log.exception("could not record the %s of %s", sig, self.marker)

        # Recorded beside the kill, never before it: the database may be the very thing that is gone.
        reports: list[threading.Thread] = []

        def report(sig: str) -> None:
            if self.on_event is not None:
                reports.append(threading.Thread(target=record, args=(sig,), daemon=True))
                reports[-1].start()

        process_group.terminate(self.root, self.grace, report)
        for r in reports:
            r.join(2.0)  # in order before the job's final event, unless the database hangs

    def finish(self) -> None:
        """The runner returned: let a stop in progress end (every process of the group gone)."""
        self.run_ended.set()
        self.join()


class _Unsafe(str):
    """A string Ansible must never template (written as YAML `!unsafe`)."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


# Double-quoted: every character (NUL, line separators, quotes) is escaped, nothing is lost.
_UnsafeDumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style='"'))


def _mark(value):
    if isinstance(value, str):
        # ansible-core loads `!unsafe ""` as None (then `is match` and `length` fail); an empty string
        # has nothing to template, so it stays a plain one.
        return _Unsafe(value) if value else ""
    if isinstance(value, dict):
        return {str(k): _mark(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(v) for v in value]
    return value


def unsafe_yaml(variables: dict) -> str:
    """An extra-vars file in which every string, at any depth, is `!unsafe`.

    Job input is data: ansible-core templates strings of an extra-vars file (`{{ lookup('pipe', ...) }}`
    in a health marker ran on the worker), and an unsafe string is never templated, also not when a
    role re-templates the variable that holds it. Keys are variable names (validated by the queue).
    """
    return yaml.dump(_mark(variables), Dumper=_UnsafeDumper, sort_keys=True)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
