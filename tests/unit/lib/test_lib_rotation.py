"""Secret rotation on the control plane (SQLite and PostgreSQL): the job, what its after hook stores
(and never shows), and the scheduler's ages, skips and one-job-per-site rule."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from ansible_collections.pressluft.wordpress.plugins.filter.seal import seal
from cryptography.fernet import Fernet
from sqlalchemy import func, select, update

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError, NotFound, SecretError, ValidationError
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import AuditLog, Job, JobEvent, Secret, Site, utcnow
from pressluft_lib.storage.secret_store import SecretStore

NEW_DB = "NewDbPassword-7f3e9a-not-for-output"
NEW_ADMIN = "NewAdminPassword-91bd-not-for-output"


@pytest.fixture
def cp(sf, make_site, monkeypatch) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production")
    make_site("blog", env="production")
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    plane = ControlPlane(url, actor="tester")
    with plane.session_factory.begin() as s:
        for site in ("shop", "blog"):
            plane._generate_env_secrets(s, site, "production")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def secret(cp, site: str, name: str) -> str:
    with cp.session_factory() as s:
        return SecretStore(url=cp.url).get(s, f"env:{site}_production", name)


def sealed(cp, value) -> dict:
    """What the playbook returns: the value sealed by the collection's filter to the control plane's key."""
    return {"pressluft_secrets_sealed": seal(value, SecretStore(url=cp.url).sealing_public_key())}


def finish(cp, job_id: int, state: str, artifacts: dict) -> None:
    """What the runner does at a job's end: finish it and run its after hook in the same transaction."""
    job = queue.claim(cp.session_factory, "w1")
    assert job is not None and job.id == job_id
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed", None,
                            worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, artifacts)


def test_rotate_queues_a_fenced_site_job(cp):
    made = cp.secrets_rotate("shop", admin=True)
    assert made == {"job_id": made["job_id"], "site": "shop", "env": "production", "admin": True}
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert job.type == "secrets_rotate" and job.payload == {"pressluft_rotate_admin": True}
        assert job.lock_key.startswith("site:") and job.fencing_token is not None
    with pytest.raises(ConflictError, match="holds"):
        cp.secrets_rotate("shop")


@pytest.mark.parametrize(("args", "error"), [
    (("Shop",), ValidationError), (("shop", "Prod"), ValidationError), (("nosuch",), NotFound),
    (("shop", "staging"), NotFound),
])
def test_bad_input_is_refused_and_queues_nothing(cp, args, error):
    with pytest.raises(error):
        cp.secrets_rotate(*args)
    with cp.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_an_inactive_site_is_refused(cp):
    with cp.session_factory.begin() as s:
        s.execute(update(Site).where(Site.name == "shop").values(state="failed"))
    with pytest.raises(ConflictError, match="needs it active"):
        cp.secrets_rotate("shop")


def test_new_secrets_are_stored_only_when_the_job_succeeded_and_never_shown(cp):
    old_db = secret(cp, "shop", "db_password")
    failed = cp.secrets_rotate("shop")["job_id"]
    finish(cp, failed, "failed", sealed(cp, {"db_password": NEW_DB}))
    assert secret(cp, "shop", "db_password") == old_db  # the node may not use it: keep the old one
    done = cp.secrets_rotate("shop", admin=True)["job_id"]
    returned = {"db_password": NEW_DB, "wordpress_admin_password": NEW_ADMIN}
    finish(cp, done, "succeeded", sealed(cp, returned))
    assert secret(cp, "shop", "db_password") == NEW_DB
    assert secret(cp, "shop", "wordpress_admin_password") == NEW_ADMIN
    assert secret(cp, "blog", "db_password") != NEW_DB
    with cp.session_factory() as s:
        events = [e.data for e in s.scalars(select(JobEvent).where(JobEvent.job_id == done))]
        assert {"stored": ["db_password", "wordpress_admin_password"]} in events
        text = json.dumps([events, [j.payload for j in s.scalars(select(Job))],
                           [(a.detail, a.result) for a in s.scalars(select(AuditLog))]])
    assert NEW_DB not in text and NEW_ADMIN not in text
    assert NEW_DB not in json.dumps(cp.job_show(done))


def test_schedule_rotates_old_secrets_once_per_site_and_skips_busy_ones(cp):
    now = utcnow()
    assert cp.secrets_schedule(30, now=now)["enqueued"] == []  # fresh secrets
    with cp.session_factory.begin() as s:
        s.execute(update(Secret).values(updated_at=now - timedelta(days=31)))
    dry = cp.secrets_schedule(30, dry_run=True, now=now)
    assert [(e["site"], e["job_id"]) for e in dry["enqueued"]] == [("blog", None), ("shop", None)]
    assert dry["enqueued"][0]["age_days"] == 31.0
    cp.backup_create("shop", "production")  # holds shop's lock
    made = cp.secrets_schedule(30, now=now)
    assert [e["site"] for e in made["enqueued"]] == ["blog"]
    assert [(s["site"], s["skipped"]) for s in made["skipped"]] == [("shop", "busy")]
    again = cp.secrets_schedule(30, now=now)  # blog's rotation is queued: busy now, not queued twice
    assert again["enqueued"] == [] and {s["site"] for s in again["skipped"]} == {"shop", "blog"}
    assert cp.secrets_schedule(60, now=now)["enqueued"] == []  # younger than 60 days
    with pytest.raises(NotFound):
        cp.secrets_schedule(30, sites=["nosuch"], now=now)
    for bad in (0, -1, 4000, True):
        with pytest.raises(ValidationError):
            cp.secrets_schedule(bad)


def test_returns_not_sealed_to_this_control_plane_are_not_stored(cp):
    old_db = secret(cp, "shop", "db_password")
    plain = cp.secrets_rotate("shop")["job_id"]
    finish(cp, plain, "succeeded", {"pressluft_secrets": {"db_password": NEW_DB}})  # the old, readable form
    assert secret(cp, "shop", "db_password") == old_db
    other = SecretStore(Fernet.generate_key()).sealing_public_key()
    assert other != SecretStore(url=cp.url).sealing_public_key()
    foreign = cp.secrets_rotate("shop")["job_id"]
    with pytest.raises(SecretError, match="could not be opened"):
        finish(cp, foreign, "succeeded", {"pressluft_secrets_sealed": seal({"db_password": NEW_DB}, other)})
    blob = sealed(cp, {"db_password": NEW_DB})["pressluft_secrets_sealed"]
    tampered = blob[:-4] + ("AAAA" if blob[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SecretError):
        SecretStore(url=cp.url).unseal(tampered)
    assert secret(cp, "shop", "db_password") == old_db
