"""Releases on the control plane (SQLite and PostgreSQL): deploy/rollback/health_check queueing and
input refusals, and the after hooks that record the RELEASE state machine and settle the environment."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import AuditLog, Environment, Job, Release


@pytest.fixture
def cp(sf, make_site, monkeypatch, tmp_path) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production")
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    plane = ControlPlane(url, actor="tester")
    (tmp_path / "code").mkdir()
    plane.src = str(tmp_path / "code")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def finish(cp, job_id: int, state: str, artifacts: dict | None = None) -> Job:
    """What the runner does at a job's end: finish it and run its after hook in the same transaction."""
    job = queue.claim(cp.session_factory, "w1")
    assert job is not None and job.id == job_id
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed",
                            None if state == "succeeded" else "the playbook failed", worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, artifacts or {})
    return done


def rows(cp) -> dict[str, str]:
    with cp.session_factory() as s:
        return {r.release_id: r.state for r in s.scalars(select(Release))}


def env_state(cp) -> str:
    with cp.session_factory() as s:
        return s.scalar(select(Environment.state))


def deploy(cp, **kw) -> dict:
    return cp.deploy("shop", source=cp.src, **kw)


def test_deploy_queues_a_job_with_its_release_id(cp):
    made = deploy(cp, health_urls=["/", "/shop/"], marker="</html>", keep=3)
    assert made["release"].endswith(f"-{made['job_id']}") and made["env"] == "production"
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert (job.type, job.state) == ("env_deploy", "queued")
        assert job.payload == {"pressluft_release_src": cp.src, "pressluft_release": made["release"],
                               "pressluft_health_urls": ["/", "/shop/"], "pressluft_health_marker": "</html>",
                               "pressluft_release_keep": 3}
    assert rows(cp) == {made["release"]: "building"} and env_state(cp) == "deploying"
    with pytest.raises(ConflictError, match=r"busy|deploying"):
        deploy(cp)


@pytest.mark.parametrize("kw, match", [
    ({"source": None}, "exactly one source"),
    ({"git": "https://example.com/x.git"}, "exactly one source"),
    ({"source": "/nonexistent/code"}, "does not exist"),
    ({"source": None, "git": "not a url"}, "invalid git URL"),
    ({"source": None, "git": "file:///srv/x.git", "git_ref": "-rf"}, "invalid git ref"),
    ({"health_urls": ["no-slash"]}, "health URLs"),
    ({"marker": "two\nlines"}, "marker"),
    ({"keep": 0}, "keep"),
])
def test_deploy_refuses_bad_input_before_queueing(cp, kw, match):
    args = {"source": cp.src, **kw}
    with pytest.raises(ValidationError, match=match):
        cp.deploy("shop", **args)
    for ref in ("shop/Bad", "a/b/c", "x"):
        with pytest.raises(ValidationError):
            cp.deploy(ref, source=cp.src)
    with pytest.raises(NotFound):
        cp.deploy("shop/staging", source=cp.src)
    with cp.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.result != "ok")) >= 1
    assert env_state(cp) == "active"


def test_live_deploy_supersedes_the_previous_release_and_prunes(cp):
    first = deploy(cp)
    finish(cp, first["job_id"], "succeeded", {"pressluft_release": {
        "id": first["release"], "state": "live", "previous": "6.1.9", "removed": [],
        "health": [{"url": "/"}]}})
    second = deploy(cp)
    finish(cp, second["job_id"], "succeeded", {"pressluft_release": {
        "id": second["release"], "state": "live", "previous": first["release"],
        "removed": [first["release"]]}})
    assert rows(cp) == {first["release"]: "pruned", second["release"]: "live"}
    assert env_state(cp) == "active"
    listed = cp.release_list("shop/production")
    assert [r["release"] for r in listed] == [second["release"], first["release"]]
    with cp.session_factory() as s:
        trail = s.scalars(select(AuditLog.result).where(AuditLog.target == f"releases:{first['release']}")
                          .order_by(AuditLog.id)).all()
    assert trail == ["checking", "healthy", "live", "healthy", "pruned"]


def test_pre_switch_failure_fails_the_release_and_keeps_the_env_active(cp):
    made = deploy(cp)
    done = finish(cp, made["job_id"], "failed", {"pressluft_release": {
        "id": made["release"], "state": "failed", "reason": "pre-switch check failed: syntax"}})
    assert done.state == "failed"
    assert rows(cp) == {made["release"]: "failed"} and env_state(cp) == "active"
    assert cp.release_list("shop")[0]["reason"] == "pre-switch check failed: syntax"


def test_rolled_back_deploy_records_both_releases(cp):
    good = deploy(cp)
    finish(cp, good["job_id"], "succeeded", {"pressluft_release": {"id": good["release"], "state": "live"}})
    bad = deploy(cp)
    finish(cp, bad["job_id"], "failed", {"pressluft_release": {
        "id": bad["release"], "state": "rolled_back",
        "reason": "post-switch health check failed: /: HTTP 500",
        "previous": good["release"], "rollback_healthy": True}})
    assert rows(cp) == {good["release"]: "live", bad["release"]: "rolled_back"}
    assert env_state(cp) == "active"
    # Without a healthy site after the rollback the environment needs an operator.
    worse = deploy(cp)
    finish(cp, worse["job_id"], "failed", {"pressluft_release": {
        "id": worse["release"], "state": "rolled_back", "reason": "x", "previous": good["release"],
        "rollback_healthy": False}})
    assert env_state(cp) == "failed"


def test_a_deploy_that_never_reported_fails_its_release_and_env(cp):
    made = deploy(cp)
    finish(cp, made["job_id"], "timed_out")
    assert rows(cp) == {made["release"]: "failed"} and env_state(cp) == "failed"


def test_rollback_job_and_its_refusals(cp):
    good = deploy(cp)
    finish(cp, good["job_id"], "succeeded", {"pressluft_release": {"id": good["release"], "state": "live"}})
    bad = deploy(cp)
    finish(cp, bad["job_id"], "failed", {"pressluft_release": {"id": bad["release"], "state": "failed"}})
    with pytest.raises(ConflictError, match="is failed"):
        cp.rollback("shop", to=bad["release"])
    with pytest.raises(ValidationError):
        cp.rollback("shop", to="../x")
    made = cp.rollback("shop")
    assert env_state(cp) == "deploying"
    finish(cp, made["job_id"], "succeeded", {"pressluft_release": {
        "id": "6.1.9", "state": "live", "rolled_back": good["release"], "healthy": True}})
    assert rows(cp) == {good["release"]: "rolled_back", bad["release"]: "failed", "6.1.9": "live"}
    assert env_state(cp) == "active"


def test_health_check_records_its_verdict_on_the_live_release(cp):
    good = deploy(cp)
    finish(cp, good["job_id"], "succeeded", {"pressluft_release": {"id": good["release"], "state": "live"}})
    made = cp.health_check("shop", urls=["/"], marker="ok")
    assert env_state(cp) == "active"  # a read-only job leaves the environment alone
    finish(cp, made["job_id"], "failed", {"pressluft_health": {
        "release": good["release"], "healthy": False, "reason": "/: HTTP 500", "checks": []}})
    listed = cp.release_list("shop")[0]
    assert (listed["state"], listed["healthy"], listed["reason"]) == ("live", False, "/: HTTP 500")
