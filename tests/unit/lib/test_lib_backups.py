"""Backups on the control plane (SQLite and PostgreSQL): create, restore refusals, the after hooks,
cleanup by the retention ladder, the scheduler's de-duplication and the repository settings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.jobs import backups
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import AuditLog, Backup, Environment, Job, Secret, Site

PASSWORD = "restic-Pw-7f3e9a-not-for-output"
S3_SECRET = "s3-Secret-Key-91bd-not-for-output"


@pytest.fixture
def cp(sf, make_site, monkeypatch) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production")
    make_site("blog", env="production")
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    plane = ControlPlane(url, actor="tester")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def counts(cp) -> tuple[int, int]:
    with cp.session_factory() as s:
        return (
            s.scalar(select(func.count()).select_from(Job)),
            s.scalar(select(func.count()).select_from(Backup)),
        )


def row(cp, backup_id: str) -> Backup:
    with cp.session_factory() as s:
        return backups.get_row(s, backup_id)


def finish(cp, job_id: int, state: str, artifacts: dict | None = None) -> None:
    """What the runner does at a job's end: finish it and run its after hook in the same transaction."""
    job = queue.claim(cp.session_factory, "w1")
    assert job is not None and job.id == job_id
    with cp.session_factory.begin() as s:
        done = queue.finish(
            s, job, state, None if state == "succeeded" else "playbook_failed", None, worker_id="w1"
        )
        jobtypes.get(done.type).run_after(s, done, artifacts or {})


def result(backup_id: str, **extra) -> dict:
    return {
        "pressluft_backup": {
            "id": backup_id,
            "location": f"/var/backups/pressluft/shop_production/{backup_id}",
            "manifest": {
                "artifacts": {"db.sql.gz": {"size": 100, "sha256": "ab"}, "uploads.tar": {"size": 20}}
            },
            "restic_snapshot": "5e1f",
            "restic_data_added": 1234,
            **extra,
        }
    }


def add_completed(cp, site: str, when: datetime, scope: str = "full", trigger: str = "schedule") -> str:
    """A completed backup row taken at `when` (history for retention and scheduling tests)."""
    with cp.session_factory.begin() as s:
        env = s.scalar(select(Environment).join(Site).where(Site.name == site))
        b = Backup(env_id=env.id, state="completed", scope=scope, created_at=when, location="/x")
        s.add(b)
        s.flush()
        b.manifest = {"backup_id": backups.make_id(b), "trigger": trigger}
        return backups.make_id(b)


def test_backup_create_queues_a_job_and_a_pending_row(cp):
    made = cp.backup_create("shop", scope="db", include_core=True)
    assert set(made) == {"job_id", "backup_id", "site", "env", "scope", "include_core"}
    assert backups.parse_ref(made["backup_id"])[0] > 0
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert (job.type, job.state) == ("backup_create", "queued")
        assert job.payload == {
            "pressluft_backup_id": made["backup_id"],
            "pressluft_backup_scope": "db",
            "pressluft_backup_include_core": True,
        }
    b = row(cp, made["backup_id"])
    assert (b.state, b.scope, b.manifest["trigger"], b.manifest["job_id"]) == (
        "pending",
        "db",
        "manual",
        made["job_id"],
    )
    listed = cp.backup_list("shop")
    assert [(x["id"], x["state"], x["job_id"]) for x in listed] == [
        (made["backup_id"], "pending", made["job_id"])
    ]
    assert cp.backup_list("blog") == []


def test_full_backups_include_the_live_release_by_default(cp):
    """A full backup holds the release (restore --to rebuilds code from it); db/files ones do not."""
    made = []
    for scope, core in (("full", None), ("db", None), ("files", None), ("full", False)):
        made.append(cp.backup_create("shop", scope=scope, include_core=core))
        finish(cp, made[-1]["job_id"], "failed")  # frees the site for the next one
    assert [m["include_core"] for m in made] == [True, False, False, False]
    with cp.session_factory() as s:
        got = [s.get(Job, m["job_id"]).payload["pressluft_backup_include_core"] for m in made]
    assert got == [True, False, False, False]
    assert [row(cp, m["backup_id"]).manifest["include_core"] for m in made] == got


def test_second_mutation_of_a_site_is_refused_and_writes_nothing(cp):
    first = cp.backup_create("shop")
    before = counts(cp)
    with pytest.raises(ConflictError, match=f"job {first['job_id']}"):
        cp.backup_create("shop")
    assert cp.backup_cleanup("shop")["job_id"] is None, "nothing to remove: no job, no conflict"
    assert counts(cp) == before


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("shop", "production", "everything"), ValidationError, "invalid backup scope"),
        (("Shop",), ValidationError, "invalid site name"),
        (("shop", "PROD"), ValidationError, "invalid environment name"),
        (("nosuch",), NotFound, "site 'nosuch' does not exist"),
        (("shop", "staging"), NotFound, "no environment staging"),
    ],
)
def test_backup_create_refuses_bad_input(cp, args, error, match):
    with pytest.raises(error, match=match):
        cp.backup_create(*args)
    with pytest.raises(ValidationError, match="include_core"):
        cp.backup_create("shop", include_core="yes")
    assert counts(cp) == (0, 0)
    with cp.session_factory() as s:
        audited = s.scalars(select(AuditLog.result).where(AuditLog.action == "backup.create")).all()
    assert audited == ([] if error is ValidationError else ["not_found"]), "bad input leaves no audit row"


def test_backup_of_an_inactive_environment_is_refused(cp):
    with cp.session_factory.begin() as s:
        s.scalar(select(Environment).join(Site).where(Site.name == "shop")).state = "failed"
    with pytest.raises(ConflictError, match="environment shop/production is failed"):
        cp.backup_create("shop")
    assert counts(cp) == (0, 0)


def test_success_records_manifest_location_and_snapshot(cp):
    made = cp.backup_create("shop")
    finish(cp, made["job_id"], "succeeded", result(made["backup_id"]))
    b = row(cp, made["backup_id"])
    assert b.state == "completed"
    assert b.location == f"/var/backups/pressluft/shop_production/{made['backup_id']}"
    shown = cp.backup_show(made["backup_id"])
    assert shown["manifest"]["artifacts"]["db.sql.gz"]["sha256"] == "ab"
    assert (shown["restic_snapshot"], shown["restic_data_added"], shown["size_bytes"]) == ("5e1f", 1234, 120)
    assert shown["completed_at"] and shown["error"] is None
    assert cp.backup_show(str(b.id))["id"] == made["backup_id"], "the row number is accepted too"
    with cp.session_factory() as s:
        audit = s.scalars(select(AuditLog.result).where(AuditLog.target == f"backups:{b.id}")).all()
    assert audit == ["running", "completed"], "every backup transition is audited"


def test_failure_keeps_the_local_location_and_a_wrong_id_is_no_result(cp):
    made = cp.backup_create("shop")
    finish(
        cp, made["job_id"], "failed", result(made["backup_id"], restic_snapshot=None, error="S3 unreachable")
    )
    b = row(cp, made["backup_id"])
    assert (b.state, b.location) == ("failed", f"/var/backups/pressluft/shop_production/{made['backup_id']}")
    assert b.manifest["error"] == "S3 unreachable"
    assert b.manifest["manifest"]["artifacts"], "the local copy's manifest is kept"
    succeeded_with_error = cp.backup_create("shop")
    finish(
        cp, succeeded_with_error["job_id"], "succeeded", result(succeeded_with_error["backup_id"], error="x")
    )
    assert row(cp, succeeded_with_error["backup_id"]).state == "failed", (
        "a result with an error never completes"
    )
    other = cp.backup_create("shop")
    finish(cp, other["job_id"], "succeeded", result(made["backup_id"]))  # a result for another backup
    b = row(cp, other["backup_id"])
    assert (b.state, b.manifest["error"]) == ("failed", "the playbook returned no result for this backup")


def test_cancelled_queued_backup_fails_its_row(cp):
    made = cp.backup_create("shop")
    cp.job_cancel(made["job_id"])
    b = row(cp, made["backup_id"])
    assert (b.state, b.manifest["error"]) == ("failed", "the job ended cancelled")


@pytest.mark.parametrize("ref", ["x", "0", "-1", "20261202T023000Z", "20261202T023000Z-0", "1 OR 1=1"])
def test_bad_backup_ids_are_refused(cp, ref):
    with pytest.raises(ValidationError, match="invalid backup id"):
        cp.backup_show(ref)
    with pytest.raises(ValidationError, match="invalid backup id"):
        cp.restore("shop", "production", ref)
    assert counts(cp) == (0, 0)


def test_restore_refuses_failed_foreign_and_unknown_backups(cp):
    made = cp.backup_create("shop")
    finish(cp, made["job_id"], "failed")
    foreign = add_completed(cp, "blog", datetime(2026, 1, 1))
    good = add_completed(cp, "shop", datetime(2026, 1, 2))
    before = counts(cp)
    with pytest.raises(ConflictError, match="is failed: only a completed backup"):
        cp.restore("shop", "production", made["backup_id"])
    with pytest.raises(ValidationError, match="belongs to blog/production, not shop/production"):
        cp.restore("shop", "production", foreign)
    with pytest.raises(NotFound):
        cp.restore("shop", "production", "20200101T000000Z-" + good.split("-")[1])  # right number, wrong time
    with pytest.raises(NotFound):
        cp.restore("shop", "production", "99999")
    assert counts(cp) == before, "nothing enqueued, no pre-restore row"
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).join(Site).where(Site.name == "shop")) == "active"


def test_restore_takes_a_pre_restore_backup_and_keeps_it_listed_when_it_fails(cp):
    source = add_completed(cp, "shop", datetime(2026, 1, 2))
    made = cp.restore("shop", "production", source)
    assert made["backup_id"] == source
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert job.payload == {
            "pressluft_backup_id": source,
            "pressluft_backup_scope": "full",
            "pressluft_pre_restore_backup_id": made["pre_restore_backup_id"],
        }
        assert s.scalar(select(Environment.state).join(Site).where(Site.name == "shop")) == "restoring"
    pre = made["pre_restore_backup_id"]
    artifacts = {**result(pre), "pressluft_restore": {"id": source, "restored": False}}
    finish(cp, made["job_id"], "failed", artifacts)
    shown = cp.backup_show(pre)
    assert (shown["state"], shown["trigger"]) == ("completed", "pre_restore")
    assert shown["restore"] == {
        "job_id": made["job_id"],
        "source": source,
        "restored": False,
        "job_state": "failed",
    }
    assert pre in [b["id"] for b in cp.backup_list("shop")]
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).join(Site).where(Site.name == "shop")) == "failed"
        audit = s.scalar(
            select(AuditLog)
            .where(AuditLog.action == "env.restore", AuditLog.actor == "tester", AuditLog.result != "ok")
            .order_by(AuditLog.id.desc())
        )
    assert (audit.target, audit.result) == ("env:shop_production", "failed")


def test_successful_restore_records_it(cp):
    source = add_completed(cp, "shop", datetime(2026, 1, 2))
    made = cp.restore("shop", "production", source)
    pre = made["pre_restore_backup_id"]
    finish(
        cp,
        made["job_id"],
        "succeeded",
        {**result(pre), "pressluft_restore": {"id": source, "restored": True}},
    )
    assert cp.backup_show(pre)["restore"]["restored"] is True
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).join(Site).where(Site.name == "shop")) == "active"


def test_cleanup_expires_exactly_the_ladder_and_deletes_what_was_removed(cp):
    now = datetime(2026, 3, 15, 12, 0)
    ids = [
        add_completed(cp, "shop", now.replace(hour=2) - timedelta(days=k)) for k in range(10)
    ]  # newest first
    db_only = add_completed(cp, "shop", now - timedelta(days=20), scope="db")  # its own ladder: the newest db
    cp.backup_retention("shop", daily=3, weekly=0, monthly=0)
    dry = cp.backup_cleanup("shop", dry_run=True, now=now)
    assert dry["job_id"] is None and sorted(dry["expired"]) == sorted(ids[3:])
    assert counts(cp)[0] == 0 and row(cp, ids[5]).state == "completed", "a dry run changes nothing"
    made = cp.backup_cleanup("shop", now=now)
    assert sorted(made["remove"]) == sorted(ids[3:]) and db_only not in made["remove"]
    with cp.session_factory() as s:
        assert s.get(Job, made["job_id"]).payload == {"pressluft_backup_remove": made["remove"]}
    assert {row(cp, i).state for i in ids[3:]} == {"expired"}
    assert {row(cp, i).state for i in ids[:3]} == {"completed"}
    # The node removed all but one; that one stays expired and is in the next plan.
    finish(cp, made["job_id"], "succeeded", {"pressluft_backup_removed": [*ids[4:], "20990101T000000Z-999"]})
    assert [row(cp, i).state for i in ids[3:5]] == ["expired", "deleted"]
    assert [b["id"] for b in cp.backup_list("shop")] == [*ids[:4], db_only], "deleted rows are not listed"
    assert cp.backup_cleanup("shop", dry_run=True, now=now)["remove"] == [ids[3]]


def test_retention_get_and_set(cp):
    assert cp.backup_retention("shop") == {"site": "shop", "daily": 7, "weekly": 4, "monthly": 3}
    assert cp.backup_retention("shop", daily=14) == {"site": "shop", "daily": 14, "weekly": 4, "monthly": 3}
    for bad in ({"daily": -1}, {"weekly": 521}, {"monthly": "x"}):
        with pytest.raises(ValidationError):
            cp.backup_retention("shop", **bad)
    with pytest.raises(NotFound):
        cp.backup_retention("nosuch", daily=1)
    assert cp.backup_retention("shop")["daily"] == 14


def test_schedule_enqueues_once_per_site_and_skips_busy_sites(cp):
    now = datetime(2026, 3, 15, 12, 0)
    busy = cp.backup_create("blog")  # blog already has an active job
    first = cp.backup_schedule(now=now)
    assert [(e["site"], e["type"]) for e in first["enqueued"]] == [("shop", "backup_create")]
    assert [(s["site"], s["skipped"]) for s in first["skipped"]] == [("blog", "busy")]
    assert f"job {busy['job_id']}" in first["skipped"][0]["reason"]
    again = cp.backup_schedule(now=now)
    assert again["enqueued"] == [] and {s["site"] for s in again["skipped"]} == {"blog", "shop"}
    assert cp.backup_schedule(dry_run=True, now=now)["enqueued"] == []
    with cp.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.type == "backup_create")) == 2


def test_schedule_interval_cleanup_and_dry_run(cp):
    now = datetime(2026, 3, 15, 12, 0)
    cp.backup_retention("shop", daily=1, weekly=0, monthly=0)
    cp.backup_retention("blog", daily=1, weekly=0, monthly=0)
    old = [add_completed(cp, "shop", now - timedelta(hours=h)) for h in (30, 10)]
    add_completed(cp, "blog", now - timedelta(hours=30))
    dry = cp.backup_schedule(interval_hours=24, dry_run=True, now=now)
    assert [(e["site"], e["type"], e["job_id"]) for e in dry["enqueued"]] == [
        ("blog", "backup_create", None),
        ("shop", "backup_cleanup", None),
    ]
    assert counts(cp)[0] == 0
    done = cp.backup_schedule(interval_hours=24, now=now)
    assert [(e["site"], e["type"]) for e in done["enqueued"]] == [
        ("blog", "backup_create"),
        ("shop", "backup_cleanup"),
    ]
    assert done["enqueued"][1]["remove"] == [old[0]]
    hourly = cp.backup_schedule(interval_hours=1, sites=["shop"], now=now)  # shop is busy with its cleanup
    assert hourly["skipped"][0]["skipped"] == "busy"
    with pytest.raises(ValidationError):
        cp.backup_schedule(interval_hours=0)
    with pytest.raises(NotFound, match="nosuch"):
        cp.backup_schedule(sites=["nosuch"])


def test_reconcile_fails_rows_whose_job_ended_without_the_hook(cp):
    made = cp.backup_create("shop")
    job = queue.claim(cp.session_factory, "w1")
    queue.finish(cp.session_factory, job, "failed", "x", "y", worker_id="w1")  # no hook ran
    assert row(cp, made["backup_id"]).state == "pending"
    out = cp.backup_schedule(sites=["blog"])
    assert out["reconciled"] == [made["backup_id"]]
    assert row(cp, made["backup_id"]).state == "failed"


def test_repository_settings_keep_secrets_out_of_everything(cp):
    with pytest.raises(ValidationError, match="needs a password"):
        cp.backup_repo_set("s3:http://127.0.0.1:9000/bucket/shop")
    for bad in ("bucket", "s3:ftp://x/y", "/srv/restic with space", "rest:https://u:pw@host/x", "/x\n"):
        with pytest.raises(ValidationError):
            cp.backup_repo_set(bad, password=PASSWORD)
    with pytest.raises(ValidationError, match="both"):
        cp.backup_repo_set("s3:http://127.0.0.1:9000/bucket", password=PASSWORD, s3_access_key_id="AKIA1")
    shown = cp.backup_repo_set(
        "s3:http://127.0.0.1:9000/bucket/pl",
        password=PASSWORD,
        s3_access_key_id="AKIA1",
        s3_secret_access_key=S3_SECRET,
    )
    assert shown == {
        "repository": "s3:http://127.0.0.1:9000/bucket/pl",
        "restic_password_set": True,
        "s3_access_key_id_set": True,
        "s3_secret_access_key_set": True,
    }
    assert cp.backup_repo_show() == shown
    made = cp.backup_create("shop")
    with cp.session_factory() as s:
        payload = s.get(Job, made["job_id"]).payload
        stored = json.dumps([[r.scope, r.name, r.ciphertext.hex()] for r in s.scalars(select(Secret))])
        audit = json.dumps([a.detail for a in s.scalars(select(AuditLog))])
    assert payload["pressluft_restic_repository"] == "s3:http://127.0.0.1:9000/bucket/pl"
    dumped = (
        json.dumps([payload, cp.backup_list(), cp.backup_show(made["backup_id"]), shown]) + stored + audit
    )
    for secret in (PASSWORD, S3_SECRET, PASSWORD.encode().hex(), S3_SECRET.encode().hex()):
        assert secret not in dumped
    # Changing the URL alone keeps the stored password; unset removes everything.
    assert cp.backup_repo_set("/srv/restic")["restic_password_set"] is True
    assert cp.backup_repo_unset() == {
        "repository": None,
        "restic_password_set": False,
        "s3_access_key_id_set": False,
        "s3_secret_access_key_set": False,
    }


def test_a_cleanup_removes_at_most_a_batch_oldest_first(cp):
    now = datetime(2026, 3, 15, 12, 0)
    ids = [add_completed(cp, "shop", now - timedelta(days=k)) for k in range(40)]  # newest first
    cp.backup_retention("shop", daily=0, weekly=0, monthly=0)
    first = cp.backup_cleanup("shop", now=now)
    batch = backups.MAX_REMOVE_PER_JOB
    assert first["remove"] == ids[::-1][:batch], "the oldest go first"
    assert sorted(first["expired"]) == sorted(first["remove"])
    assert row(cp, ids[1]).state == "completed", "beyond the batch nothing is marked yet"
    finish(cp, first["job_id"], "succeeded", {"pressluft_backup_removed": first["remove"]})
    second = cp.backup_cleanup("shop", now=now)
    assert second["remove"] == ids[1 : 40 - batch][::-1]
