"""Backup job types through runner.execute and real ansible-runner runs of stand-in playbooks
(tests/unit/runner/playbooks/{backup_create,backup_cleanup,env_restore}.yml) on this machine:
the after hooks record what the playbook returned; repository secrets reach only backup jobs and
appear in no event, payload, row or leftover file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from pressluft_lib import jobtypes, queue
from pressluft_lib.execution import runner
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import AuditLog, Backup, Environment, Job, JobEvent, Site, utcnow

from .conftest import PLAYBOOKS

PASSWORD = "Rx9-restic-password-never-logged"


@pytest.fixture
def plane(cp, monkeypatch) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    with cp.sf.begin() as s:
        site = Site(name="shop", node_id=1, state="active")
        s.add(site)
        s.flush()
        s.add(Environment(site_id=site.id, name="production", state="active"))
    plane = ControlPlane(cp.url, actor="tester")
    plane.backup_repo_set("/srv/restic", password=PASSWORD)
    return plane


def run_next(cp, **payload) -> Job:
    job = queue.claim(cp.sf, "w1")
    assert job is not None
    if payload:
        with cp.sf.begin() as s:
            s.execute(update(Job).where(Job.id == job.id).values(payload={**job.payload, **payload}))
        job.payload = {**job.payload, **payload}
    with pytest.MonkeyPatch.context() as mp:  # the stand-in playbooks' knobs (tiny_fail) are allowed here
        jt = jobtypes.JOB_TYPES[job.type]
        mp.setitem(jobtypes.JOB_TYPES, job.type, replace(jt, variables=jt.variables | set(payload)))
        return runner.execute(cp.sf, job, "w1", data_dir=cp.data_dir, playbook_dir=PLAYBOOKS)


def dump(cp) -> str:
    """Every row that could hold a secret, as text."""
    with cp.sf() as s:
        rows = [e.data for e in s.scalars(select(JobEvent))] + [j.payload for j in s.scalars(select(Job))]
        rows += [[b.location, b.manifest] for b in s.scalars(select(Backup))]
        rows += [a.detail for a in s.scalars(select(AuditLog))]
    return json.dumps(rows, default=str)


def test_backup_create_completes_with_the_returned_manifest(cp, plane):
    made = plane.backup_create("shop", scope="db")
    job = run_next(cp)
    assert job.state == "succeeded", job.error_message
    shown = plane.backup_show(made["backup_id"])
    assert shown["state"] == "completed"
    assert shown["location"] == f"/var/backups/pressluft/shop_production/{made['backup_id']}"
    assert shown["restic_snapshot"] == "snap1" and shown["repository"] == "/srv/restic"
    manifest = shown["manifest"]
    assert (manifest["scope"], manifest["repository"]) == ("db", "/srv/restic")
    assert manifest["password_sha1"] == hashlib.sha1(PASSWORD.encode()).hexdigest(), "the secret reached it"
    assert PASSWORD not in dump(cp)
    assert not list((cp.data_dir / "runs").rglob("*")), "nothing left on disk"


def test_backup_is_running_from_the_start_of_the_run(cp, plane):
    plane.backup_create("shop", scope="db")
    job = run_next(cp)
    with cp.sf() as s:
        moves = s.scalars(
            select(AuditLog).where(AuditLog.target.like("backups:%")).order_by(AuditLog.id)
        ).all()
        runner_events = select(JobEvent.created_at).where(
            JobEvent.job_id == job.id, JobEvent.kind == "runner"
        )
        first_event = s.scalar(runner_events.order_by(JobEvent.seq))
    assert [(m.detail["from"], m.result) for m in moves] == [("pending", "running"), ("running", "completed")]
    assert moves[0].created_at <= first_event, "running was recorded only after the playbook started"


def test_cancelled_before_the_run_the_backup_fails_without_running(cp, plane):
    made = plane.backup_create("shop")
    with cp.sf() as s:
        job_id = s.scalar(select(Job.id).where(Job.type == "backup_create"))
    plane.job_cancel(job_id)
    assert plane.backup_show(made["backup_id"])["state"] == "failed"
    with cp.sf() as s:
        moves = s.scalars(select(AuditLog).where(AuditLog.target.like("backups:%"))).all()
    assert [(m.detail["from"], m.result) for m in moves] == [("pending", "failed")]


def test_failed_backup_keeps_location_and_the_redacted_error(cp, plane):
    made = plane.backup_create("shop")
    job = run_next(cp, tiny_fail=True)
    assert job.state == "failed"
    shown = plane.backup_show(made["backup_id"])
    assert shown["state"] == "failed" and shown["location"].endswith(made["backup_id"])
    assert (
        shown["error"] == "Fail like an unreachable S3 endpoint, after the local backup exists: "
        "restic backup failed: ******** unreachable"
    )
    assert PASSWORD not in dump(cp)


def test_restore_failure_leaves_the_pre_restore_backup_listed(cp, plane):
    source = plane.backup_create("shop")
    run_next(cp)
    made = plane.restore("shop", "production", source["backup_id"])
    job = run_next(cp, tiny_fail=True)
    assert job.state == "failed"
    pre = plane.backup_show(made["pre_restore_backup_id"])
    assert (pre["state"], pre["trigger"], pre["restore"]["restored"]) == ("completed", "pre_restore", False)
    assert made["pre_restore_backup_id"] in [b["id"] for b in plane.backup_list("shop")]
    assert plane.site_show("shop")["environments"][0]["state"] == "failed", "an operator looks first"
    plane.reset_env("shop", "production")
    again = plane.restore("shop", "production", source["backup_id"])
    assert run_next(cp).state == "succeeded"
    assert plane.backup_show(again["pre_restore_backup_id"])["restore"]["restored"] is True
    assert plane.site_show("shop")["environments"][0]["state"] == "active"


def test_cleanup_deletes_what_the_node_removed(cp, plane):
    for _ in range(3):  # all taken today: daily=1 keeps only the newest
        plane.backup_create("shop")
        assert run_next(cp).state == "succeeded"
    plane.backup_retention("shop", daily=1, weekly=0, monthly=0)
    plan = plane.backup_cleanup("shop", now=utcnow())
    old = [b["id"] for b in plane.backup_list("shop")][1:]
    assert sorted(plan["remove"]) == sorted(old)
    job = run_next(cp, tiny_keep=[old[0]])
    assert job.state == "succeeded"
    assert [(b["id"], b["state"]) for b in plane.backup_list("shop")][1:] == [(old[0], "expired")]
