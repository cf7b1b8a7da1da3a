"""`pressluft install-service`: a system user, its data dir, and the worker and scheduler units.

The worker's unit stops gracefully: systemd sends SIGTERM to the worker process only
(KillMode=mixed), the worker claims nothing new and lets its running jobs finish (the playbooks it
started are not signalled); after TimeoutStopSec systemd kills what is left, and that job is
re-queued by the next worker's stall sweep (non-destructive types) or left stalled for an operator
(destructive ones): never silently lost. Restart=on-failure brings a crashed worker back.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pressluft_lib import jobtypes
from pressluft_lib.errors import ConfigError, ValidationError
from pressluft_lib.execution.runner import STOP_GRACE

UNIT_DIR = Path("/etc/systemd/system")
CONFIG_DIR = Path("/etc/pressluft")
WORKER, SCHEDULER = "pressluft-worker.service", "pressluft-scheduler.service"
TIMER = "pressluft-scheduler.timer"
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}")


@dataclass
class Settings:
    user: str = "pressluft"
    data_dir: Path = Path("/var/lib/pressluft")
    concurrency: int = 1
    heartbeat_timeout: int = 60
    # Long enough for the longest job type to finish after SIGTERM (plus its own stop grace).
    stop_timeout: int = max(jt.timeout for jt in jobtypes.JOB_TYPES.values()) + int(STOP_GRACE) + 30
    schedule: str = "*:0/5"  # OnCalendar: every 5 minutes; each task has its own interval
    executable: str = ""

    def validate(self) -> None:
        if not _USER_RE.fullmatch(self.user) or self.user == "root":
            raise ValidationError(f"invalid service user {self.user[:40]!r}: a login name, not root")
        plain = re.fullmatch(r"/[A-Za-z0-9_./-]+", str(self.data_dir)) and ".." not in self.data_dir.parts
        # At least two levels deep: the user gets to own it (never /, /var, /srv).
        if not plain or len(self.data_dir.parts) < 3:
            raise ValidationError(
                f"invalid data dir {str(self.data_dir)[:200]!r}: a plain path such as /var/lib/pressluft"
            )
        if not re.fullmatch(r"[0-9*:/,.-]{1,40}|hourly|daily|minutely", self.schedule):
            raise ValidationError(f"invalid schedule {self.schedule[:40]!r}: an OnCalendar time like *:0/5")
        if not self.executable or not re.fullmatch(r"/[A-Za-z0-9_./+-]+", self.executable):
            raise ConfigError(f"cannot use {self.executable[:200]!r} as the pressluft executable")


def default_executable() -> str:
    """The `pressluft` script beside this Python (a venv or a system install)."""
    beside = Path(sys.executable).parent / "pressluft"
    return str(beside if beside.is_file() else shutil.which("pressluft") or beside)


def render(s: Settings) -> dict[str, str]:
    """{unit file name: text}."""
    common = f"""User={s.user}
Group={s.user}
EnvironmentFile=-{CONFIG_DIR}/pressluft.env
Environment=PRESSLUFT_HOME={s.data_dir} HOME={s.data_dir}
WorkingDirectory={s.data_dir}
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
"""
    worker = f"""[Unit]
Description=Pressluft worker (claims and runs queued jobs)
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
{common}ExecStartPre={s.executable} db upgrade
ExecStart={s.executable} worker --concurrency {s.concurrency} --heartbeat-timeout {s.heartbeat_timeout}
# SIGTERM to the worker only: it claims nothing new and lets running jobs finish; their playbooks
# are not signalled. A second SIGTERM would cancel them, so systemd sends just one.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={s.stop_timeout}
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""
    scheduler = f"""[Unit]
Description=Pressluft scheduler (due backups, rotations, metrics, drift checks)
After=network-online.target postgresql.service

[Service]
Type=oneshot
{common}ExecStart={s.executable} scheduler run
"""
    timer = f"""[Unit]
Description=Run the Pressluft scheduler periodically

[Timer]
OnCalendar={s.schedule}
Persistent=true
RandomizedDelaySec=30

[Install]
WantedBy=timers.target
"""
    return {WORKER: worker, SCHEDULER: scheduler, TIMER: timer}


def _run(*argv: str) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise ConfigError(f"{argv[0]} {argv[1]} failed: {(r.stderr or r.stdout).strip()[:300]}")


def _ensure_user(s: Settings) -> bool:
    try:
        pwd.getpwnam(s.user)
        return False
    except KeyError:
        pass
    _run("useradd", "--system", "--user-group", "--home-dir", str(s.data_dir), "--no-create-home",
         "--shell", "/usr/sbin/nologin", s.user)
    return True


def _write(path: Path, text: str, mode: int) -> bool:
    if path.is_file() and path.read_text() == text:
        os.chmod(path, mode)
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def install(s: Settings, *, start: bool = True) -> dict:
    """Create the user and data dir, write the units, enable (and start) worker and timer."""
    s.validate()
    if os.geteuid() != 0:
        raise ConfigError("install-service needs root (it creates a system user and writes unit files)")
    if not Path("/run/systemd/system").is_dir():
        raise ConfigError("PID 1 is not systemd here: install-service writes nothing (print the units "
                          "with --dry-run and run `pressluft worker` under your own supervisor)")
    created_user = _ensure_user(s)
    pw = pwd.getpwnam(s.user)
    s.data_dir.mkdir(parents=True, exist_ok=True)
    os.chown(s.data_dir, pw.pw_uid, pw.pw_gid)
    os.chmod(s.data_dir, 0o700)
    CONFIG_DIR.mkdir(parents=True, exist_ok=True, mode=0o755)
    env_file = CONFIG_DIR / "pressluft.env"
    if not env_file.exists():  # the operator's settings (PRESSLUFT_DB, ...): never overwritten
        env_file.write_text("# Environment of pressluft-worker and pressluft-scheduler (docs/operations.md)\n"
                            "# PRESSLUFT_DB=postgresql://pressluft@db.example.internal/pressluft\n"
                            "# PRESSLUFT_METRICS_FILE=/var/lib/prometheus/node-exporter/pressluft.prom\n")
    # It may hold a database password: root's, readable by the service's group only.
    os.chown(env_file, 0, grp.getgrnam(s.user).gr_gid)
    os.chmod(env_file, 0o640)
    was_running = subprocess.run(["systemctl", "is-active", "--quiet", WORKER], check=False).returncode == 0
    changed = [name for name, text in render(s).items() if _write(UNIT_DIR / name, text, 0o644)]
    _run("systemctl", "daemon-reload")
    _run("systemctl", "enable", *(["--now"] if start else []), WORKER, TIMER)
    if start and was_running and WORKER in changed:
        _run("systemctl", "restart", WORKER)  # new unit text; the old worker stops gracefully first
    return {"user": s.user, "user_created": created_user, "data_dir": str(s.data_dir),
            "units": sorted(render(s)), "changed": changed, "started": start}
