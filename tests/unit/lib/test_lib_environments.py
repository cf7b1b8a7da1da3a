"""env create on the control plane (SQLite and PostgreSQL): the queued job, the refusals that queue nothing,
the site lock every environment shares, a failed clone retried, and what the after hook keeps."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import Domain, Environment, Job, JobEvent


@pytest.fixture
def cp(sf, make_site, monkeypatch) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production")
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    plane = ControlPlane(url, actor="tester")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def jobs(cp) -> int:
    with cp.session_factory() as s:
        return s.scalar(select(func.count()).select_from(Job))


def finish(cp, job_id: int, state: str, artifacts: dict) -> None:
    job = queue.claim(cp.session_factory, "w1")
    assert job is not None and job.id == job_id
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed", None,
                            worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, artifacts)


def test_create_queues_a_clone_of_production_on_the_preview_domain(cp):
    made = cp.env_create("shop", "staging")
    assert made == {"job_id": made["job_id"], "site": "shop", "env": "staging", "source": "production",
                    "domains": ["staging.shop.localhost"]}
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert job.type == "env_create" and job.lock_key.startswith("site:")
        assert job.payload == {"pressluft_source_env": "production", "pressluft_staging": True}
        env = s.get(Environment, job.env_id)
        assert env.name == "staging" and env.state == "creating"
        domains = s.scalars(select(Domain.name).where(Domain.env_id == env.id)).all()
        assert domains == ["staging.shop.localhost"]
    # The site's lock is shared by its environments: no other job on the site meanwhile.
    with pytest.raises(ConflictError, match=f"job {made['job_id']} \\(env_create"):
        cp.secrets_rotate("shop")


@pytest.mark.parametrize(("args", "error", "text"), [
    (("shop", "production"), ValidationError, "cannot be cloned from itself"),
    (("shop", "Staging"), ValidationError, "invalid environment name"),
    (("shop", "staging", "x/y"), ValidationError, "invalid environment name"),
    (("nope", "staging"), NotFound, "site 'nope' does not exist"),
    (("shop", "staging", "qa"), NotFound, "no environment qa"),
])
def test_bad_input_queues_nothing(cp, args, error, text):
    with pytest.raises(error, match=text):
        cp.env_create(*args)
    assert jobs(cp) == 0


def test_bad_domains_and_existing_environments_are_refused(cp):
    with pytest.raises(ValidationError, match="invalid domain"):
        cp.env_create("shop", "staging", domains=["bad domain"])
    with pytest.raises(ValidationError, match="twice"):
        cp.env_create("shop", "staging", domains=["a.example.com", "a.example.com"])
    assert jobs(cp) == 0
    made = cp.env_create("shop", "staging")
    finish(cp, made["job_id"], "succeeded", {})
    with pytest.raises(ConflictError, match="already exists"):
        cp.env_create("shop", "staging")
    with pytest.raises(ConflictError, match="domain already in use"):
        cp.env_create("shop", "qa", domains=["staging.shop.localhost"])
    assert jobs(cp) == 1


def test_a_clone_cancelled_before_it_ran_leaves_a_failed_environment_that_create_retries(cp):
    """The new environment exists on no node yet: a cancel must not leave it active (and empty)."""
    made = cp.env_create("shop", "staging")
    assert cp.job_cancel(made["job_id"])["state"] == "cancelled"
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).where(Environment.name == "staging")) == "failed"
    again = cp.env_create("shop", "staging")
    assert again["retry_of"] == made["job_id"]
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).where(Environment.name == "staging")) == "creating"


def test_a_failed_clone_is_retried_and_a_clone_result_is_kept(cp):
    made = cp.env_create("shop", "staging")
    finish(cp, made["job_id"], "failed", {})
    again = cp.env_create("shop", "staging")
    assert again["retry_of"] == made["job_id"] and again["job_id"] != made["job_id"]
    clone = {"source_env": "production", "source_url": "http://shop.localhost",
             "url": "http://staging.shop.localhost", "release": "6.1.9", "database_bytes": "1234",
             "passes": [{"search": "http://shop.localhost", "replace": "http://staging.shop.localhost",
                         "rows": 7, "tables": {"wp_options": 2}}], "total_rows": 7,
             "rows": {"wp_posts": "12", "bad name`": 1, "wp_x": -1}}
    finish(cp, again["job_id"], "succeeded", {"pressluft_clone": clone})
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).where(Environment.name == "staging")) == "active"
        kept = s.scalars(select(JobEvent.data).where(JobEvent.job_id == again["job_id"],
                                                     JobEvent.kind == "clone")).all()
    # The rows per table (the baseline of production's writes) keep only well-formed names and counts.
    assert kept == [{**clone, "database_bytes": 1234, "rows": {"wp_posts": 12},
                     "passes": [{"search": "http://shop.localhost", "replace": "http://staging.shop.localhost",
                                 "rows": 7}]}]


def test_drift_check_passes_the_clone_time_and_show_prints_the_newest_report(cp):
    with pytest.raises(NotFound, match="no environment staging"):
        cp.drift_check("shop", "staging")
    with pytest.raises(ValidationError, match="compared with itself"):
        cp.drift_check("shop", "production")
    made = cp.env_create("shop", "staging")
    with pytest.raises(ConflictError, match="creating"):  # the clone holds the site and is not active yet
        cp.drift_check("shop", "staging")
    finish(cp, made["job_id"], "succeeded", {})
    with pytest.raises(NotFound, match="no drift report"):
        cp.drift_show("shop", "staging")
    queued = cp.drift_check("shop", "staging")
    with cp.session_factory() as s:
        job = s.get(Job, queued["job_id"])
        cloned = s.get(Job, made["job_id"]).finished_at.strftime("%Y-%m-%d %H:%M:%S")
    assert job.type == "drift_check" and job.payload == {"pressluft_drift_against": "production",
                                                         "pressluft_drift_since": cloned}
    assert queued["since"] == cloned
    report = {"differs": ["plugins"], "writes": {"after_since": ["comment"]}}
    finish(cp, queued["job_id"], "succeeded", {"pressluft_drift": report})
    shown = cp.drift_show("shop", "staging")
    assert shown["job_id"] == queued["job_id"] and shown["report"] == report
    assert shown["baseline"] == {"rows": None, "renewed": {}}  # the clone job above returned no rows
    # A failed check keeps no report: show still prints the newest good one.
    again = cp.drift_check("shop", "staging")
    finish(cp, again["job_id"], "failed", {"pressluft_drift": {"differs": ["bogus"]}})
    assert cp.drift_show("shop", "staging")["job_id"] == queued["job_id"]


def test_sync_only_comes_down_and_queues_what_was_chosen(cp):
    for args, kwargs, text in (
        (("shop", "production", "staging"), {}, "production is never overwritten"),
        (("shop", "staging", "staging"), {}, "synced from itself"),
        (("shop", "staging"), {"database": False, "uploads": False}, "the database, the uploads or both"),
    ):
        with pytest.raises(ValidationError, match=text):
            cp.env_sync(*args, **kwargs)
    with pytest.raises(NotFound, match="no environment staging"):
        cp.env_sync("shop", "staging")
    made = cp.env_create("shop", "staging")
    finish(cp, made["job_id"], "succeeded", {})
    queued = cp.env_sync("shop", "staging", uploads=False)
    assert queued["copied"] == ["database"]
    with cp.session_factory() as s:
        job = s.get(Job, queued["job_id"])
        assert job.type == "env_sync" and job.payload == {
            "pressluft_source_env": "production", "pressluft_sync_db": True, "pressluft_sync_uploads": False}
        assert s.get(Environment, job.env_id).state == "cloning"
