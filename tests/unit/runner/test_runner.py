"""runner.execute on real ansible-runner runs of tiny playbooks against this machine (local node)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace

from sqlalchemy import select, update

from pressluft_lib import jobtypes, queue
from pressluft_lib.execution import runner
from pressluft_lib.storage.models import Environment, Job, JobEvent, Site
from pressluft_lib.storage.secret_store import SecretStore

from .conftest import PLAYBOOKS

SECRET = "Zq8-very-secret-db-password-41x"


def claim_and_run(cp, job_id: int, **kw) -> Job:
    job = queue.claim(cp.sf, "w1")
    assert job is not None and job.id == job_id
    return runner.execute(cp.sf, job, "w1", data_dir=cp.data_dir, playbook_dir=PLAYBOOKS, **kw)


def enqueue(cp, type_: str, payload: dict | None = None, **kw) -> int:
    with cp.sf.begin() as s:
        return queue.enqueue(s, type_, payload=payload, **kw).id


def runner_events(cp, job_id: int) -> list[dict]:
    with cp.sf() as s:
        rows = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)).all()
        return [{"kind": e.kind, **e.data} for e in rows]


def make_site(cp) -> None:
    with cp.sf.begin() as s:
        site = Site(name="shop", node_id=1, state="creating")
        s.add(site)
        s.flush()
        s.add(Environment(site_id=site.id, name="production", state="creating"))
        s.flush()
        SecretStore(url=cp.url).put(s, "env:shop_production", "db_password", SECRET)


def leftovers(cp) -> list:
    return sorted(p for p in (cp.data_dir / "runs").rglob("*"))


def test_success_streams_events_and_cleans_up(cp):
    job_id = enqueue(cp, "tiny", node="local")
    job = claim_and_run(cp, job_id)
    assert job.state == "succeeded", job.error_message
    events = runner_events(cp, job_id)
    tasks = [(e["task"], e["host"], e["status"]) for e in events if e["kind"] == "runner" and "task" in e]
    assert ("Say hello", "local", "ok") in tasks
    assert ("Sleep when asked", "local", "skipped") in tasks
    states = [(e["from"], e["to"]) for e in events if e["kind"] == "state" and "to" in e]
    assert states == [(None, "queued"), ("queued", "running"), ("running", "succeeded")]
    final = events[-1]
    assert (final["rc"], final["changed"]) == (0, {"local": 1}), "the finish event carries the run's summary"
    assert leftovers(cp) == [], "the private data dir is removed after the run"


def test_failure_secrets_absent_everywhere(cp):
    make_site(cp)
    job_id = enqueue(cp, "tiny_site", {"tiny_fail": True}, site="shop", env="production")
    job = claim_and_run(cp, job_id)
    assert job.state == "failed"
    assert job.error_code == "playbook_failed"
    events = runner_events(cp, job_id)
    failed = [e for e in events if e.get("status") == "failed"]
    assert failed and failed[0]["msg"] == "boom ********", "the secret is redacted from the failure message"
    hidden = [e for e in events if e.get("task") == "Use the secret quietly"]
    assert hidden and hidden[0]["hidden"] is True
    assert SECRET not in json.dumps(events)
    assert leftovers(cp) == []
    for path in cp.data_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"secret found in {path}"
    with cp.sf() as s:
        site = s.scalar(select(Site).where(Site.name == "shop"))
        assert site.state == "failed", "a failed job settles its site as failed"


def test_extra_vars_follow_the_contract(cp):
    make_site(cp)
    with cp.sf() as s:
        job = queue.enqueue(s, "tiny_site", site="shop", env="production", payload={"x_word": "y"})
        extravars, site, env = runner.job_vars(s, job)
        again, _, _ = runner.job_vars(s, job)
        incarnation = s.get(Site, job.site_id).incarnation
        s.rollback()
    assert (site, env) == ("shop", "production")
    run = extravars.pop("pressluft_fencing_run")
    assert re.fullmatch(r"r[0-9a-f]{16}", run) and again["pressluft_fencing_run"] != run, "one id per run"
    assert extravars == {
        "x_word": "y",
        "pressluft_target": "local",
        "pressluft_site": "shop",
        "pressluft_fencing_token": 1,
        "pressluft_fencing_incarnation": incarnation,
        "pressluft_env": "production",
    }


def test_cancel_stops_a_running_job(cp):
    job_id = enqueue(cp, "tiny", {"tiny_sleep": 60}, node="local")
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(job=claim_and_run(cp, job_id)))
    started = time.monotonic()
    t.start()
    deadline = time.monotonic() + 60
    while not any(e.get("task") == "Say hello" for e in runner_events(cp, job_id)):
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.2)
    queue.request_cancel(cp.sf, job_id, actor="test")
    t.join(60)
    assert not t.is_alive()
    assert result["job"].state == "cancelled"
    assert time.monotonic() - started < 40, "cancel did not wait for the 60 s task"
    assert leftovers(cp) == []


def test_timeout_ends_the_run(cp):
    job_id = enqueue(cp, "tiny", {"tiny_sleep": 60}, node="local", timeout=8)
    started = time.monotonic()
    job = claim_and_run(cp, job_id)
    assert job.state == "timed_out"
    assert job.error_code == "timeout"
    assert time.monotonic() - started < 40


def test_job_type_outside_the_allowlist_never_runs(cp):
    with cp.sf.begin() as s:
        s.add(Job(type="rm_everything", state="queued", node_id=1, payload={}, attempts=0, event_seq=0))
    job = queue.claim(cp.sf, "w1")
    job = runner.execute(cp.sf, job, "w1", data_dir=cp.data_dir, playbook_dir=PLAYBOOKS)
    assert (job.state, job.error_code) == ("failed", "invalid_input")
    assert not [e for e in runner_events(cp, job.id) if e["kind"] == "runner"]


def test_stale_fencing_token_is_refused_before_running(cp):
    make_site(cp)
    job_id = enqueue(cp, "tiny_site", site="shop", env="production")
    job = queue.claim(cp.sf, "w1")
    with cp.sf.begin() as s:  # a newer job (or a retry) of the site took a higher token meanwhile
        s.execute(
            update(Site).where(Site.name == "shop").values(last_fencing_token=Site.last_fencing_token + 1)
        )
    job = runner.execute(cp.sf, job, "w1", data_dir=cp.data_dir, playbook_dir=PLAYBOOKS)
    assert (job.id, job.state, job.error_code) == (job_id, "failed", "stale_fencing_token")
    assert not [e for e in runner_events(cp, job_id) if e["kind"] == "runner"], "nothing ran"


def test_run_dirs_of_killed_runs_are_removed_but_not_running_ones(cp):
    running = enqueue(cp, "tiny", node="local")
    assert queue.claim(cp.sf, "w1").id == running
    runs = cp.data_dir / "runs"
    live, dead, other = runs / f"job{running}-abc", runs / "job999-def", runs / "scratch"
    for path in (live, dead, other):
        path.mkdir(parents=True)
        (path / "vars.json").write_text('{"pressluft_db_password": "x"}')
    # job 999 does not exist (or is no longer running): its directory is what a SIGKILL leaves behind.
    assert runner.remove_stale_runs(cp.sf, cp.data_dir) == 1
    assert live.exists() and other.exists() and not dead.exists()
    assert runner.remove_stale_runs(cp.sf, cp.data_dir) == 0


def test_after_hook_gets_final_state_and_redacted_artifacts(cp, monkeypatch):
    seen: list[tuple[int, str, dict]] = []

    def after(session, job, artifacts):
        seen.append((job.id, job.state, artifacts))

    hooked = replace(jobtypes.JOB_TYPES["tiny_site"], after=after)
    monkeypatch.setitem(jobtypes.JOB_TYPES, "tiny_site", hooked)
    make_site(cp)
    ok = claim_and_run(cp, enqueue(cp, "tiny_site", site="shop", env="production"))
    failed = claim_and_run(cp, enqueue(cp, "tiny_site", {"tiny_fail": True}, site="shop", env="production"))
    queued = enqueue(cp, "tiny_site", site="shop", env="production")
    queue.request_cancel(cp.sf, queued)
    returned = {"tiny_result": {"host": "local", "leak": "********"}}
    expected = [(ok.id, "succeeded", returned), (failed.id, "failed", returned), (queued, "cancelled", {})]
    assert seen == expected, "every ending reaches the hook; a cancelled queued job returned nothing"
