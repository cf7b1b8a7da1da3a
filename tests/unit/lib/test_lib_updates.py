"""Updates on the control plane (SQLite and PostgreSQL): `update` queues env_update with a pre-update
backup row and a release row, refuses bad input before queueing, and the after hook settles the rows
and the environment for each outcome the playbook reports."""

from __future__ import annotations

import zipfile

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError, ValidationError
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import AuditLog, Backup, Environment, Job, Release


@pytest.fixture
def cp(sf, make_site, monkeypatch, tmp_path) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production")
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    plane = ControlPlane(url, actor="tester")
    plane.zip = str(tmp_path / "pgood-2.0.zip")
    with zipfile.ZipFile(plane.zip, "w") as zf:
        zf.writestr("pgood/pgood.php", "<?php\n/* Plugin Name: pgood\n * Version: 2.0 */\n")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def finish(cp, job_id: int, state: str, artifacts: dict) -> Job:
    job = queue.claim(cp.session_factory, "w1")
    assert job is not None and job.id == job_id
    with cp.session_factory.begin() as s:
        jobtypes.get(job.type).run_before(s, job)
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed",
                            None if state == "succeeded" else "the playbook failed", worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, artifacts)
    return done


def snapshot(cp) -> tuple[str, dict, dict]:
    with cp.session_factory() as s:
        return (s.scalar(select(Environment.state)),
                {r.release_id: r.state for r in s.scalars(select(Release))},
                {(b.manifest or {}).get("backup_id"): b.state for b in s.scalars(select(Backup))})


def test_update_queues_a_job_with_a_pre_update_backup_and_a_release(cp):
    made = cp.update("shop", plugins=["akismet,hello-dolly"], exclude=["woo"], minor_only=True,
                     plugin_zips=[cp.zip])
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert (job.type, job.state) == ("env_update", "queued")
        assert job.payload["pressluft_update_plugins"] == ["akismet", "hello-dolly"]
        assert job.payload["pressluft_update_exclude"] == ["woo"]
        assert job.payload["pressluft_update_plugin_zips"] == [cp.zip]
        assert job.payload["pressluft_update_minor_only"] is True
        assert job.payload["pressluft_pre_update_backup_id"] == made["backup_id"]
        assert job.payload["pressluft_release"] == made["release"]
        backup = s.scalars(select(Backup)).one()
        assert (backup.scope, backup.manifest["trigger"]) == ("db", "pre_update")
        assert backup.manifest["job_id"] == job.id
    assert snapshot(cp) == ("updating", {made["release"]: "building"}, {made["backup_id"]: "pending"})
    with pytest.raises(ConflictError):
        cp.update("shop", core=True)


@pytest.mark.parametrize("kw, match", [
    ({}, "nothing to update"),
    ({"plugins": ["../etc"]}, "invalid plugin"),
    ({"plugins": ["all", "akismet"]}, "all or names"),
    ({"themes": ["Twenty"]}, "invalid theme"),
    ({"core": True, "exclude": ["Bad"]}, "invalid exclude"),
    ({"plugin_zips": ["/nonexistent/x.zip"]}, "does not exist"),
    ({"plugin_zips": ["/tmp/x y.zip"]}, "invalid plugin zip"),
    ({"core_zip": "/tmp/core.tar.gz"}, "invalid core zip"),
    ({"core": "yes"}, "true or false"),
    ({"core": True, "health_urls": ["nope"]}, "health URLs"),
])
def test_update_refuses_bad_input_before_queueing(cp, kw, match):
    with pytest.raises(ValidationError, match=match):
        cp.update("shop", **kw)
    with cp.session_factory() as s:
        assert s.scalars(select(Job)).all() == [] and s.scalars(select(Backup)).all() == []


def _update(cp):
    made = cp.update("shop", plugin_zips=[cp.zip])
    return made, made["release"], made["backup_id"]


def _result(state, phase, backup=None, db_restored=False):
    return {"state": state, "reason": "why", "phase": phase, "backup": backup, "db_restored": db_restored,
            "updates": [{"type": "plugin", "name": "pgood", "from": "1.0", "to": "2.0", "source": "z"}]}


def test_a_live_update_settles_the_release_and_the_backup(cp):
    made, rel, bid = _update(cp)
    finish(cp, made["job_id"], "succeeded", {
        "pressluft_update": _result("live", "live", bid),
        "pressluft_backup": {"id": bid, "location": "/var/backups/x", "manifest": {"id": bid}},
        "pressluft_release": {"id": rel, "state": "live", "previous": "r1", "removed": []},
    })
    env, releases, backups = snapshot(cp)
    assert env == "active" and releases[rel] == "live" and backups == {bid: "completed"}
    listed = cp.update_list("shop")
    assert listed[0]["release"] == rel and listed[0]["backup_id"] == bid and listed[0]["state"] == "live"
    with cp.session_factory() as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "env.update")).all()
        assert [a.result for a in audit][-1] == "live"


def test_nothing_to_do_leaves_no_rows_behind(cp):
    made = _update(cp)[0]
    finish(cp, made["job_id"], "succeeded", {"pressluft_update": _result("nothing", "plan")})
    assert snapshot(cp) == ("active", {}, {})


def test_a_failed_backup_returns_the_environment_to_active(cp):
    made, rel, bid = _update(cp)
    finish(cp, made["job_id"], "failed", {
        "pressluft_update": _result("failed", "backup"),
        "pressluft_backup": {"id": bid, "location": None, "error": "mkdir failed"},
    })
    assert snapshot(cp) == ("active", {rel: "failed"}, {bid: "failed"})


def test_a_rollback_with_the_database_restored_is_active_again(cp):
    made, rel, bid = _update(cp)
    finish(cp, made["job_id"], "failed", {
        "pressluft_update": _result("rolled_back", "checks", bid, db_restored=True),
        "pressluft_backup": {"id": bid, "location": "/x", "manifest": {}},
        "pressluft_release": {"id": rel, "state": "rolled_back", "previous": "r1", "rollback_healthy": True},
    })
    env, releases, backups = snapshot(cp)
    assert env == "active" and releases[rel] == "rolled_back" and backups == {bid: "completed"}


@pytest.mark.parametrize("release_state", ["failed", "rolled_back"])
def test_new_code_ran_and_the_database_was_not_restored_stays_failed(cp, release_state):
    made, rel, bid = _update(cp)
    finish(cp, made["job_id"], "failed", {
        "pressluft_update": _result(release_state, "checks", bid, db_restored=False),
        "pressluft_backup": {"id": bid, "location": "/x", "manifest": {}},
        "pressluft_release": {"id": rel, "state": release_state, "previous": "r1", "rollback_healthy": True},
    })
    assert snapshot(cp)[0] == "failed"


def test_policy_shows_defaults_and_keeps_what_is_not_changed(cp):
    assert cp.update_policy("shop")["auto"] == "off"
    cp.update_policy("shop", auto="minor", plugins=["all"], exclude=["woo"], pins=["akismet=5.3"])
    got = cp.update_policy("shop", core=True, interval_hours=12)
    assert (got["auto"], got["core"], got["exclude"], got["pins"], got["interval_hours"]) == (
        "minor", True, ["woo"], {"akismet": "5.3"}, 12)
    assert cp.update_policy("shop", unpin=["akismet"])["pins"] == {}


@pytest.mark.parametrize("kw, match", [
    ({"auto": "sometimes"}, "auto must be"),
    ({"pins": ["akismet"]}, "invalid pin"),
    ({"pins": ["../x=1"]}, "invalid pin"),
    ({"interval_hours": 0}, "interval"),
    ({"plugins": ["a b"]}, "invalid plugin"),
])
def test_policy_refuses_bad_settings(cp, kw, match):
    with pytest.raises(ValidationError, match=match):
        cp.update_policy("shop", **kw)
    assert cp.update_policy("shop")["auto"] == "off"


def test_schedule_queues_due_updates_from_the_policy_once_per_interval(cp):
    assert cp.update_schedule()["enqueued"] == []  # no policy: nothing is due
    cp.update_policy("shop", auto="minor", exclude=["woo"], pins=["akismet=5.3"])
    assert cp.update_schedule(dry_run=True)["enqueued"] == [
        {"site": "shop", "env": "production", "minor_only": True, "job_id": None}]
    made = cp.update_schedule()["enqueued"]
    assert len(made) == 1 and made[0]["job_id"]
    with cp.session_factory() as s:
        job = s.get(Job, made[0]["job_id"])
        assert job.type == "env_update" and job.payload["pressluft_update_minor_only"] is True
        assert job.payload["pressluft_update_plugins"] == ["all"]
        assert job.payload["pressluft_update_exclude"] == ["akismet", "woo"]  # pins are never updated
    finish(cp, made[0]["job_id"], "succeeded", {"pressluft_update": _result("nothing", "plan")})
    assert cp.update_schedule()["enqueued"] == []  # within the interval
    from datetime import timedelta

    from pressluft_lib.storage.models import utcnow

    later = cp.update_schedule(now=utcnow() + timedelta(hours=25))["enqueued"]
    assert len(later) == 1 and later[0]["job_id"]
    cp.update_policy("shop", auto="off")


def test_schedule_skips_a_busy_site(cp):
    cp.update_policy("shop", auto="all")
    cp.backup_create("shop")
    got = cp.update_schedule()
    assert got["enqueued"] == [] and got["skipped"][0]["site"] == "shop"
