"""`pressluft install-service` on a podman systemd node acting as the control-plane host.

The node bind-mounts this checkout and its venv's Python read-only, so the units run the real
`pressluft` of this checkout. A job's playbook comes from a test collection (PRESSLUFT_COLLECTIONS_PATH
in /etc/pressluft/pressluft.env, the operator's file) whose node_provision.yml sleeps, so a job is
running when the test stops or kills the worker. Checks: user and data dir, units active; a stop
while a job runs waits for it to succeed; a SIGKILLed worker is restarted; a job whose worker was
killed with it is re-queued (node_provision is not destructive), never left running; the scheduler
service runs and records its tasks.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.rig import nodes as rig

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
PY_HOME = Path(sys.base_prefix)  # the Python the venv was made from (bind-mounted at the same path)
USER, DATA = "pressluftd", "/var/lib/pressluftd"
EXE = str(Path(sys.executable).parent / "pressluft")
COLL = "/opt/pltest"
SLOW_PLAYBOOK = """- name: A slow stand-in for node_provision
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Take a while
      ansible.builtin.command: sleep 8
      changed_when: true
    - name: Leave a mark
      ansible.builtin.lineinfile:
        path: /var/lib/pressluftd/provisioned.log
        line: "done {{ pressluft_target }} {{ now(utc=true).isoformat() }}"
        create: true
        mode: "0600"
"""


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    rig.require_podman()
    volumes = [f"{PY_HOME}:{PY_HOME}:ro", f"{ROOT}:{ROOT}:ro"]
    node = rig.start_node(tmp_path_factory.mktemp("cphost"), volumes=volumes)
    try:
        node.exec("chmod", "0711", "/root")  # the container's /root: let the service user reach the Python
        wp = f"{COLL}/ansible_collections/pressluft/wordpress"
        node.exec("mkdir", "-p", f"{wp}/playbooks")
        for part in ("plugins", "meta"):
            node.exec("ln", "-s", f"{ROOT}/{part}", f"{wp}/{part}")
        node.exec("tee", f"{wp}/playbooks/node_provision.yml", input=SLOW_PLAYBOOK)
        node.exec("mkdir", "-p", "/etc/pressluft")
        node.exec("tee", "/etc/pressluft/pressluft.env", input=f"PRESSLUFT_COLLECTIONS_PATH={COLL}\n")
        yield node
    finally:
        rig.stop_nodes([node])


def pl(node: rig.Node, *args: str, check: bool = True):
    """`pressluft ARGS --json` as the service user, on the services' database."""
    r = node.exec("runuser", "-u", USER, "--", "env", f"PRESSLUFT_HOME={DATA}", f"HOME={DATA}", EXE, *args,
                  "--json", check=False)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout) if r.stdout.strip() else None


def job_state(node, job_id) -> str:
    return pl(node, "jobs", "show", str(job_id))["state"]


def main_pid(node) -> int:
    return int(node.exec("systemctl", "show", "-p", "MainPID", "--value", "pressluft-worker").stdout)


# Long enough for the stop test's job (a sleep of 8 s) to finish under load. It also bounds the
# kill test: in a podman node on a hybrid-cgroup host systemd gets no cgroup-empty notification, so a
# unit whose main process was SIGKILLed with children left waits out TimeoutStopSec in stop-sigkill
# before Restart=on-failure starts it again (on a cgroup v2 host it restarts after RestartSec).
STOP_TIMEOUT = 45
RESTART_SEC = 5


def test_install_creates_user_data_dir_and_starts_units(host):
    out = host.exec(EXE, "install-service", "--user", USER, "--data-dir", DATA, "--heartbeat-timeout", "5",
                    "--stop-timeout", str(STOP_TIMEOUT), "--json", check=False)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert json.loads(out.stdout)["user_created"] is True
    assert host.stat(DATA) == (USER, USER, "700")
    assert host.exec("id", "-u", USER).stdout.strip() != "0"
    _wait(lambda: host.unit_active("pressluft-worker.service"), 60, "the worker unit")
    assert host.unit_active("pressluft-scheduler.timer")
    kept = host.exec("cat", "/etc/pressluft/pressluft.env").stdout
    assert "PRESSLUFT_COLLECTIONS_PATH" in kept, "the operator's env file is never overwritten"
    assert host.stat("/etc/pressluft/pressluft.env") == ("root", USER, "640")
    again = host.exec(EXE, "install-service", "--user", USER, "--data-dir", DATA, "--heartbeat-timeout", "5",
                      "--stop-timeout", str(STOP_TIMEOUT), "--json")
    assert json.loads(again.stdout)["changed"] == [], "a second install changes nothing"


def test_stop_lets_the_running_job_finish(host):
    pl(host, "node", "add", "cp", "--local")
    job = pl(host, "node", "provision", "cp", "--no-hardening")["job_id"]
    _wait(lambda: job_state(host, job) == "running", 60, "the job to run")
    started = time.monotonic()
    host.exec("systemctl", "stop", "pressluft-worker.service", timeout=180)
    took = time.monotonic() - started
    assert job_state(host, job) == "succeeded", f"stop returned after {took:.1f} s"
    assert "done cp" in host.exec("cat", f"{DATA}/provisioned.log").stdout
    state = host.exec("systemctl", "show", "-p", "ActiveState,Result", "pressluft-worker").stdout
    assert "ActiveState=inactive" in state and "Result=success" in state, state


def test_a_killed_worker_restarts_and_its_job_is_requeued_not_lost(host):
    host.exec("systemctl", "start", "pressluft-worker.service")
    before = _wait(lambda: main_pid(host), 30, "a worker pid")
    job = pl(host, "node", "provision", "cp", "--no-hardening")["job_id"]
    _wait(lambda: job_state(host, job) == "running", 60, "the job to run")
    host.exec("systemctl", "kill", "--signal=SIGKILL", "pressluft-worker.service")  # worker and playbook
    after = _wait(lambda: (p := main_pid(host)) not in (0, before) and p, STOP_TIMEOUT + RESTART_SEC + 30,
                  "the restarted worker")
    assert after != before
    # The new worker's stall sweep (heartbeat timeout 5 s) re-queues the job with a backoff.
    _wait(lambda: job_state(host, job) == "queued", 60, "the killed job to be re-queued")
    shown = pl(host, "jobs", "show", str(job))
    assert shown["attempts"] == 1


def test_the_scheduler_service_runs_its_tasks(host):
    host.exec("systemctl", "start", "pressluft-scheduler.service", timeout=120)  # oneshot: waits for it
    result = host.exec("systemctl", "show", "-p", "Result", "pressluft-scheduler.service").stdout
    assert "Result=success" in result
    tasks = {t["task"]: t for t in pl(host, "scheduler", "list")}
    assert tasks["backups"]["last_run"] and tasks["metrics"]["last_run"]
    timers = host.exec("systemctl", "list-timers", "--all", "pressluft-scheduler.timer").stdout
    assert "pressluft-scheduler.timer" in timers
