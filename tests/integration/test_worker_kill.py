"""A worker SIGKILLed at random points of a real site_create against a podman node.

Each run creates a new site `k<i>` with `pressluft worker --once` in a subprocess, kills the
worker's whole process tree (worker, ansible-runner, ansible-playbook, ssh: frozen first so no
child escapes, then SIGKILL) after a random delay, and checks what the queue promises
(pressluft_lib/queue.py): once the heartbeat timeout has passed no job is `running`; the site
lock is held only by a queued (retrying) job, never by a finished one; and recovering as an
operator would (stall detection, reset of a failed site and a new job) converges to a site that
serves its title. PRESSLUFT_KILL_RUNS sets the number of runs (default 3; the issue asks for 50),
PRESSLUFT_KILL_SEED the random seed (printed).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from pressluft_lib import queue
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job, Site
from tests.rig.control_plane import add_node, http_get, js, run
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

RUNS = int(os.environ.get("PRESSLUFT_KILL_RUNS", "3"))
SEED = int(os.environ.get("PRESSLUFT_KILL_SEED", str(int(time.time()))))
HB_TIMEOUT = 5.0  # the CLI's minimum: the killed worker beats every 1.25 s
PRESSLUFT = Path(sys.executable).parent / "pressluft"
JOB_DEADLINE = 900  # seconds a worker subprocess may take before the test gives up


@pytest.fixture(scope="module")
def plane(control_plane, provisioned_node):
    """The module's control plane with one node of the provisioned image."""
    add_node(provisioned_node)
    return control_plane, provisioned_node, db.session_factory(os.environ["PRESSLUFT_DB"])


def create(name: str, node) -> int:
    return js(
        "site",
        "create",
        name,
        "--node",
        node.name,
        "--domain",
        f"{name}.example.test",
        "--wordpress", str(wordpress_archive()),
        "--title", f"Kill {name}",
    )["job_id"]


def start_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [str(PRESSLUFT), "worker", "--once", "--json", "--heartbeat-timeout", str(HB_TIMEOUT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish_worker(proc: subprocess.Popen) -> list[dict]:
    out, err = proc.communicate(timeout=JOB_DEADLINE)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)["jobs"]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    return kids


def _tree(pid: int) -> set[int]:
    kids, out, todo = _children(), set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(kids.get(p, []))
    return out


def _signal(pids, sig) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def kill_tree(proc: subprocess.Popen) -> dict[int, str]:
    """SIGKILL the worker and every descendant (ansible-runner puts ansible-playbook in its own session)."""
    frozen: set[int] = set()
    while new := _tree(proc.pid) - frozen:  # stopped processes cannot fork: this terminates
        _signal(new, signal.SIGSTOP)
        frozen |= new
    names = {}
    for p in frozen:
        try:
            names[p] = Path("/proc", str(p), "comm").read_text().strip()
        except OSError:
            continue
    _signal(frozen, signal.SIGKILL)
    proc.communicate(timeout=30)
    return names


def alive(pid: int) -> bool:
    try:
        return Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def strays(home: Path) -> list[str]:
    """Processes (ansible-playbook, runner) whose command line names this control plane's runs."""
    found = subprocess.run(["pgrep", "-af", str(home / "runs")], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def lock_holders(sf, site_id: int) -> list[tuple[int, str]]:
    with sf() as s:
        return [(j.id, j.state) for j in s.scalars(select(Job).where(Job.lock_key == f"site:{site_id}"))]


def stale_locks(sf) -> list[tuple[int, str, str]]:
    """Locks held by jobs that can no longer release them: the leak queue.py rules out."""
    with sf() as s:
        held = select(Job).where(Job.lock_key.is_not(None), Job.state.not_in(("queued", "running")))
        rows = s.scalars(held)
        return [(j.id, j.state, j.lock_key) for j in rows]


def running_jobs(sf) -> list[int]:
    with sf() as s:
        return list(s.scalars(select(Job.id).where(Job.state == "running")))


def job_state(sf, job_id: int) -> Job:
    with sf() as s:
        return s.get(Job, job_id)


def detect_stall(sf, job_id: int) -> tuple[str, float]:
    """Run the workers' stall detection until it takes the killed job; (outcome, seconds waited).

    Backoff 0: the retry is due at once (the worker's default waits 30 s, which proves nothing more).
    """
    started = time.monotonic()
    deadline = started + HB_TIMEOUT + 30
    while time.monotonic() < deadline:
        for jid, outcome in queue.detect_stalled(sf, HB_TIMEOUT, backoff_base=0):
            assert jid == job_id, f"job {jid} of no killed worker stalled"
            return outcome, time.monotonic() - started
        time.sleep(0.25)
    pytest.fail(f"job {job_id} is still running {HB_TIMEOUT + 30} s after its worker was killed")


def test_worker_sigkill_converges(plane):
    home, node, sf = plane
    rng = random.Random(SEED)
    print(f"\nworker kill: seed={SEED} runs={RUNS} (PRESSLUFT_KILL_SEED={SEED} replays it)")

    # Baseline: an undisturbed site_create through the same subprocess worker sets the kill window.
    base_job = create("kbase", node)
    t0 = time.monotonic()
    jobs = finish_worker(start_worker())
    typical = time.monotonic() - t0
    assert [(j["id"], j["state"]) for j in jobs] == [(base_job, "succeeded")]
    status, body = http_get(node, "kbase.example.test")
    assert status == 200 and "Kill kbase" in body, body[:300]
    print(f"baseline site_create (worker subprocess wall time): {typical:.1f} s")

    mid_run = after_finish = 0
    for i in range(RUNS):
        name = f"k{i}"
        job_id = create(name, node)
        with sf() as s:
            site_id = s.scalar(select(Site.id).where(Site.name == name))
        delay = rng.uniform(0.5, typical)
        proc = start_worker()
        path: list[str] = []
        try:
            proc.wait(timeout=delay)
            finished_first = True
        except subprocess.TimeoutExpired:
            finished_first = False
            killed = kill_tree(proc)
        killed_at = time.monotonic()
        if finished_first:
            _out, err = proc.communicate()
            assert proc.returncode == 0, err[-3000:]
        else:
            gone_by = time.monotonic() + 10
            while [p for p in killed if alive(p)] and time.monotonic() < gone_by:
                time.sleep(0.1)
            assert not [p for p in killed if alive(p)], "a killed process survived SIGKILL"
            assert strays(home) == [], "processes of the killed run are still running"
            path.append(f"killed {len(killed)} processes ({', '.join(sorted(set(killed.values())))})")
        found = job_state(sf, job_id).state
        path.append(f"found {found}")
        if found == "succeeded":  # the worker exited, or was killed after finishing its job
            after_finish += 1
        else:
            mid_run += 1
        assert found in ("queued", "running", "succeeded", "failed"), found

        if found == "running":
            outcome, waited = detect_stall(sf, job_id)
            path.append(f"stall detection after {waited:.1f} s -> {outcome}")
            found = job_state(sf, job_id).state
        # Past the heartbeat timeout nothing runs: the killed worker's job was taken by the sweep.
        assert running_jobs(sf) == [], "a job is running although no worker is alive"
        assert stale_locks(sf) == [], "a finished job still holds a lock"
        holders = lock_holders(sf, site_id)
        if found == "queued":  # a retryable job keeps the site's lock while it waits for its retry
            assert holders == [(job_id, "queued")], holders
        else:
            assert holders == [], f"site {name} is {found} but locked by {holders}"

        if found == "failed":  # an operator checks the site, resets it and queues the create again
            run("reset", "site", name)
            run("reset", "env", name, "production")
            with sf.begin() as s:
                payload = s.get(Job, job_id).payload
                job_id = queue.enqueue(s, "site_create", site=name, env="production", payload=payload).id
            path.append("reset site+env, new site_create")
        if found != "succeeded":
            done = finish_worker(start_worker())
            # On failure, say why the retry failed (the whole dict is cut off before its error).
            keys = ("id", "state", "attempts", "error_code", "error_message")
            why = [{k: j.get(k) for k in keys} for j in done]
            assert [(j["id"], j["state"]) for j in done] == [(job_id, "succeeded")], (path, why)
            path.append(f"worker --once -> {done[0]['state']} (attempt {done[0]['attempts']})")
        status, body = http_get(node, f"{name}.example.test", timeout=60)
        assert status == 200 and f"Kill {name}" in body, (status, body[:300])
        assert js("site", "show", name)["state"] == "active"
        assert lock_holders(sf, site_id) == []
        kind = (
            "no kill: worker exited" if finished_first else "job ended" if found == "succeeded" else "mid-job"
        )
        print(
            f"run {i}: kill delay {delay:.1f} s ({kind}); {'; '.join(path)}; "
            f"converged in {time.monotonic() - killed_at:.1f} s"
        )

    assert strays(home) == [], "processes of killed runs are still running"
    assert running_jobs(sf) == [] and stale_locks(sf) == []
    assert not [j for j in js("jobs", "list", "--limit", "1000") if j["state"] == "running"]
    # A SIGKILLed run cannot remove its private dir, whose vars file holds the job's secrets:
    # the next worker does (runner.remove_stale_runs).
    leftovers = list((home / "runs").iterdir())
    assert leftovers == [], "run directories of killed runs (with their secrets) were left behind"
    print(
        f"summary: runs={RUNS} killed mid-job={mid_run} job had ended={after_finish} "
        f"all converged=True; run dirs left behind=0 (seed {SEED})"
    )
