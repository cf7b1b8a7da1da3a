"""Attempts are fenced end to end (issue 12, finding 3): a real worker, real ansible-runner runs.

Sequence 3: claim (token 1) -> its heartbeat goes stale -> the sweep re-queues the job (token 2) ->
the same worker claims it again. Attempt 1 must then neither heartbeat nor finish, the lock stays with
attempt 2, and attempt 1's playbook (its whole process group) is stopped, with an event saying why.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError
from pressluft_lib.execution import runner
from pressluft_lib.execution.worker import Worker
from pressluft_lib.storage.models import Job, Site, utcnow

from .conftest import PLAYBOOKS
from .test_runner import enqueue, make_site, runner_events


def job(cp, job_id: int) -> Job:
    with cp.sf() as s:
        return s.get(Job, job_id)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def _procs() -> dict[int, tuple[str, int, bytes]]:
    """pid -> (state, process group, command line) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                out[int(d.name)] = (fields[0], int(fields[2]), (d / "cmdline").read_bytes())
            except (OSError, IndexError):
                pass
    return out


def run_group(job_id: int, attempt: int, sleeper: bytes) -> list[int] | None:
    """The pids of the process group of an attempt's playbook that runs its sleep task; None before."""
    procs = _procs()
    marker = f"/runs/job{job_id}-a{attempt}-".encode()
    groups = {pg for state, pg, cmd in procs.values() if marker in cmd}
    for pgid in groups:
        pids = [pid for pid, (state, pg, _cmd) in procs.items() if pg == pgid and state != "Z"]
        if any(procs[pid][2].startswith(sleeper) for pid in pids):
            return pids
    return None


def alive(pids: list[int]) -> list[int]:
    procs = _procs()
    return [pid for pid in pids if pid in procs and procs[pid][0] != "Z"]


def test_sequence_3_a_stale_attempt_is_refused_and_its_playbook_killed(cp, monkeypatch):
    retryable = replace(jobtypes.JOB_TYPES["tiny_site"], max_attempts=3)
    monkeypatch.setitem(jobtypes.JOB_TYPES, "tiny_site", retryable)
    make_site(cp)
    job_id = enqueue(cp, "tiny_site", {"tiny_sleep": 300}, site="shop", env="production")
    done: list[Job] = []
    w = Worker(
        cp.sf, heartbeat_interval=1.0, heartbeat_timeout=60, stop_grace=5, data_dir=cp.data_dir,
        playbook_dir=PLAYBOOKS, on_job_done=done.append,
    )  # fmt: skip
    first = w.claim()
    assert (first.id, first.attempts, first.fencing_token) == (job_id, 1, 1)
    threads = [threading.Thread(target=w.run_one, args=(first,))]
    threads[0].start()
    try:
        pids = wait_for(lambda: run_group(job_id, 1, b"/bin/sleep\x00300"), 90, "attempt 1 to run")
        # Attempt 1's heartbeat goes stale (a partition, a paused VM): the sweep re-queues the job with
        # a new token, and the same worker claims it again, all between two of attempt 1's beats.
        with cp.sf.begin() as s:
            s.execute(
                update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=90))
            )
            assert queue.detect_stalled(s, 60, backoff_base=0) == [(job_id, "requeued")]
        second = w.claim()
        assert (second.id, second.attempts, second.fencing_token) == (job_id, 2, 2)
        assert second.worker_id != first.worker_id, "one claim id per claim, even within one worker"
        threads.append(threading.Thread(target=w.run_one, args=(second,)))
        threads[1].start()

        # Attempt 1's next heartbeat is refused: its playbook is stopped, every process of its group.
        wait_for(lambda: not alive(pids), 60, "attempt 1's playbook processes to end")
        threads[0].join(60)
        assert not threads[0].is_alive()
        assert [d.attempts for d in done] == [1], "attempt 1 returned without recording a result"
        with pytest.raises(ConflictError, match="running attempt 2"):
            queue.heartbeat(cp.sf, first, first.worker_id)
        with pytest.raises(ConflictError, match="running attempt 2"):
            queue.finish(cp.sf, first, "succeeded", worker_id=first.worker_id)
        now = job(cp, job_id)
        assert (now.state, now.attempts, now.fencing_token, now.worker_id) == (
            "running",
            2,
            2,
            second.worker_id,
        )
        assert now.lock_key is not None, "the lock stays with attempt 2"
        with pytest.raises(ConflictError, match=f"job {job_id}"):
            enqueue(cp, "tiny_site", site="shop", env="production")
        with cp.sf() as s:
            assert s.query(Site).filter_by(name="shop").one().state == "creating"
        stops = [e for e in runner_events(cp, job_id) if e.get("event") == "stop"]
        assert stops[0]["attempt"] == 1 and stops[0]["state"] == "stopped"
        assert stops[0]["signal"] == "SIGTERM"
        assert "heartbeat refused" in stops[0]["reason"] and "running attempt 2" in stops[0]["reason"]
        wait_for(lambda: run_group(job_id, 2, b"/bin/sleep\x00300"), 90, "attempt 2 to run on")
        assert job(cp, job_id).state == "running"
    finally:
        w.stop(cancel_running=True)
        for t in threads:
            t.join(90)
    assert job(cp, job_id).state == "cancelled"


def test_a_playbook_that_ignores_sigterm_is_killed_after_the_grace(cp):
    job_id = enqueue(cp, "tiny", {"tiny_stubborn_sleep": 300}, node="local")
    claimed = queue.claim(cp.sf, "w1#1")
    result: dict = {}

    def run() -> None:
        result["job"] = runner.execute(
            cp.sf, claimed, "w1#1", data_dir=cp.data_dir, playbook_dir=PLAYBOOKS,
            heartbeat_interval=0.5, stop_grace=3,
        )  # fmt: skip

    t = threading.Thread(target=run)
    t.start()
    try:
        pids = wait_for(lambda: run_group(job_id, 1, b"sleep\x00300"), 90, "the stubborn sleep to run")
        queue.request_cancel(cp.sf, job_id, actor="test")
        wait_for(lambda: not alive(pids), 60, "the process group to be killed")
    finally:
        t.join(90)
    assert result["job"].state == "cancelled"
    stops = [e for e in runner_events(cp, job_id) if e.get("event") == "stop"]
    assert [(e["signal"], e["state"], e["reason"]) for e in stops] == [
        ("SIGTERM", "cancelled", "cancel requested"),
        ("SIGKILL", "cancelled", "cancel requested"),
    ], "SIGTERM first; the sleep ignored it, so SIGKILL after the grace"


def test_lost_database_stops_the_run_after_the_lease(cp):
    """No heartbeat gets through (here: another process holds SQLite's write lock, as a dead database
    server would refuse them): after heartbeat_timeout the attempt stops its own playbook, since other
    workers count the job as stalled from then on and `pressluft reset` relies on it being gone."""
    job_id = enqueue(cp, "tiny", {"tiny_sleep": 300}, node="local")
    claimed = queue.claim(cp.sf, "w1#1")
    result: dict = {}

    def run() -> None:
        result["job"] = runner.execute(
            cp.sf, claimed, "w1#1", data_dir=cp.data_dir, playbook_dir=PLAYBOOKS,
            heartbeat_interval=0.5, heartbeat_timeout=6, stop_grace=3,
        )  # fmt: skip

    t = threading.Thread(target=run)
    t.start()
    blocker = sqlite3.connect(cp.db_file, isolation_level=None, timeout=60)
    try:
        pids = wait_for(lambda: run_group(job_id, 1, b"/bin/sleep\x00300"), 90, "the run")
        blocker.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        wait_for(lambda: not alive(pids), 60, "the attempt to stop its playbook")
        assert time.monotonic() - locked >= 5, "not before the lease ran out"
    finally:
        blocker.rollback() if blocker.in_transaction else None
        blocker.close()
        t.join(120)
    assert (result["job"].state, result["job"].error_code) == ("failed", "stalled")
    assert "no heartbeat got through for 6 s" in result["job"].error_message
