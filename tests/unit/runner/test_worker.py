"""The worker loop: --once, concurrency, heartbeats, graceful SIGTERM (real ansible-runner runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select

from pressluft_lib import queue
from pressluft_lib.execution.worker import Worker
from pressluft_lib.storage.models import Job, JobEvent, Node

from .conftest import PLAYBOOKS

ROOT = Path(__file__).resolve().parents[3]


def add_local_node(cp, name: str) -> None:
    with cp.sf.begin() as s:
        s.add(Node(name=name, host="localhost", local=True, provider="local", state="active"))


def enqueue(cp, node: str, payload: dict | None = None) -> int:
    with cp.sf.begin() as s:
        return queue.enqueue(s, "tiny", node=node, payload=payload).id


def job(cp, job_id: int) -> Job:
    with cp.sf() as s:
        return s.get(Job, job_id)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_once_with_concurrency_runs_jobs_in_parallel(cp):
    add_local_node(cp, "local2")
    a = enqueue(cp, "local", {"tiny_sleep": 3})
    b = enqueue(cp, "local2", {"tiny_sleep": 3})
    w = Worker(cp.sf, concurrency=2, heartbeat_interval=0.5, data_dir=cp.data_dir, playbook_dir=PLAYBOOKS)
    done = w.run(once=True)
    assert sorted(j.id for j in done) == [a, b]
    ja, jb = job(cp, a), job(cp, b)
    assert ja.state == jb.state == "succeeded"
    assert ja.started_at < jb.finished_at and jb.started_at < ja.finished_at, "the two runs overlapped"
    for j in (ja, jb):
        assert j.heartbeat_at > j.started_at, "heartbeats were recorded while the job ran"
    assert queue.claim(cp.sf, "other") is None


def test_once_exits_when_queue_is_empty(cp):
    started = time.monotonic()
    assert Worker(cp.sf, data_dir=cp.data_dir).run(once=True) == []
    assert time.monotonic() - started < 5


def test_sigterm_finishes_the_running_job_and_claims_no_more(cp):
    first = enqueue(cp, "local", {"tiny_sleep": 4})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.runner.worker_proc", cp.url, str(cp.data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def started() -> bool:
            with cp.sf() as s:
                return (
                    s.scalar(select(JobEvent.id).where(JobEvent.job_id == first, JobEvent.kind == "runner"))
                    is not None
                )

        wait_for(started, 60, "the first job to run")
        proc.send_signal(signal.SIGTERM)
        add_local_node(cp, "local2")
        second = enqueue(cp, "local2")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"processed {first}" in out
    assert job(cp, first).state == "succeeded", "the running job was allowed to finish"
    assert job(cp, second).state == "queued", "nothing new was claimed after SIGTERM"


def test_stop_with_cancel_cancels_the_running_job(cp):
    """What a second SIGTERM does (the handler calls stop(cancel_running=True))."""
    first = enqueue(cp, "local", {"tiny_sleep": 60})
    w = Worker(cp.sf, heartbeat_interval=0.5, data_dir=cp.data_dir, playbook_dir=PLAYBOOKS)
    t = threading.Thread(target=w.run)
    t.start()
    try:
        wait_for(
            lambda: job(cp, first).state == "running" and any(j.id == first for j in w._running.values()),
            60,
            "the job to run",
        )
        w.stop()
        assert job(cp, first).state == "running", "a plain stop lets the job run on"
        w.stop(cancel_running=True)
        t.join(40)
        assert not t.is_alive()
    finally:
        w.stop(cancel_running=True)
        t.join(60)
    assert job(cp, first).state == "cancelled"


def test_jobs_follow_streams_a_live_job(cp, monkeypatch):
    from click.testing import CliRunner
    from pressluft_cli.main import cli

    job_id = enqueue(cp, "local", {"tiny_sleep": 2})
    w = Worker(cp.sf, heartbeat_interval=0.5, data_dir=cp.data_dir, playbook_dir=PLAYBOOKS)
    t = threading.Thread(target=w.run, kwargs={"once": True})
    t.start()
    try:
        result = CliRunner().invoke(cli, ["--db", cp.url, "jobs", "follow", str(job_id), "--timeout", "120"])
    finally:
        t.join(120)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("queued -> running" in line for line in lines)
    assert any("ok          local: Say hello" in line for line in lines)
    assert any("skipped" not in line and "Sleep when asked" in line for line in lines)
    assert lines[-1] == f"job {job_id} succeeded"


def test_cli_worker_once_json_is_pure_json(cp, monkeypatch):
    from click.testing import CliRunner
    from pressluft_cli.main import cli

    import pressluft_lib.execution.worker as worker_mod

    job_id = enqueue(cp, "local")
    # The CLI's worker runs playbooks from the collection: route the tiny type to this directory.
    orig = worker_mod.Worker.__init__

    def init(self, *a, **kw):
        orig(self, *a, **{**kw, "playbook_dir": PLAYBOOKS, "data_dir": cp.data_dir})

    monkeypatch.setattr(worker_mod.Worker, "__init__", init)
    result = CliRunner().invoke(cli, ["--db", cp.url, "worker", "--once", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(j["id"], j["state"]) for j in out["jobs"]] == [(job_id, "succeeded")]
    second = enqueue(cp, "local")
    human = CliRunner().invoke(cli, ["--db", cp.url, "worker", "--once"])
    assert human.exit_code == 0
    assert f"job {second} tiny: succeeded" in human.stdout
