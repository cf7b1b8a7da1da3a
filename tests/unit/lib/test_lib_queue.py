"""Queue semantics on SQLite and PostgreSQL: locks, fencing, claims, backoff, stalls, cancel, timeouts."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pressluft_lib import queue
from pressluft_lib.errors import ConflictError, StaleFencingToken, TransitionError, ValidationError
from pressluft_lib.storage.models import AuditLog, Environment, Job, Node, Site, utcnow


def enqueue(sf, type_="site_create", **kw) -> Job:
    with sf.begin() as s:
        return queue.enqueue(s, type_, **kw)


def count_jobs(sf) -> int:
    with sf() as s:
        return s.scalar(select(func.count()).select_from(Job))


def state_of(sf, model, ident) -> str:
    with sf() as s:
        return s.scalar(select(model.state).where(model.id == ident))


def test_second_mutation_on_a_site_is_refused(sf, make_site):
    make_site("blog", state="creating")
    make_site("shop", state="creating")
    first = enqueue(sf, site="blog", payload={"pressluft_wordpress_title": "Blog"})
    with pytest.raises(ConflictError) as exc:
        enqueue(sf, "site_delete", site="blog")
    assert exc.value.details["job_id"] == first.id
    assert f"job {first.id} (site_create, queued)" in exc.value.message
    enqueue(sf, site="shop")  # another site is independent
    assert count_jobs(sf) == 2


def test_node_jobs_serialised_per_node(sf, make_site):
    make_site("blog", state="creating", node="n1")
    held = enqueue(sf, "node_provision", node="n1")
    with pytest.raises(ConflictError, match=f"job {held.id}"):
        enqueue(sf, "node_provision", node="n1")
    enqueue(sf, site="blog")  # site jobs lock the site, not the node
    assert state_of(sf, Node, held.node_id) == "provisioning"


def test_invalid_enqueue_changes_nothing(sf, make_site):
    make_site("blog", state="active")
    with pytest.raises(ValidationError, match="unknown job type"):
        enqueue(sf, "rm_rf", site="blog")
    with pytest.raises(ValidationError, match="needs a site"):
        enqueue(sf, "site_create")
    with pytest.raises(ValidationError, match="needs a node"):
        enqueue(sf, "node_provision")
    with pytest.raises(ValidationError, match="secrets"):
        enqueue(sf, "site_delete", site="blog", payload={"db": {"password": "hunter2"}})
    with pytest.raises(TransitionError):  # an active site cannot be "created" again
        enqueue(sf, "site_create", site="blog")
    assert count_jobs(sf) == 0
    with sf() as s:
        assert s.get(Site, 1).state == "active"
        assert s.get(Site, 1).last_fencing_token == 0


def test_fencing_tokens_monotonic_per_site(sf, make_site):
    make_site("blog", state="creating")
    make_site("shop", state="creating")
    tokens = []
    for type_ in ("site_create", "site_delete"):
        job = enqueue(sf, type_, site="blog")
        tokens.append(job.fencing_token)
        claimed = queue.claim(sf, "w1")
        assert claimed.id == job.id
        queue.finish(sf, claimed, "succeeded", worker_id="w1")
    assert tokens == [1, 2]
    assert enqueue(sf, site="shop").fencing_token == 1
    assert state_of(sf, Site, 1) == "deleted"


def test_claim_order_types_and_not_before(sf, make_site):
    for name in ("aa", "bb", "cc"):
        make_site(name, state="creating")
    a = enqueue(sf, site="aa")
    b = enqueue(sf, site="bb")
    c = enqueue(sf, "node_provision", node="n1")
    with sf.begin() as s:
        s.get(Job, a.id).not_before = utcnow() + timedelta(hours=1)
    assert queue.claim(sf, "w1", types=["node_provision"]).id == c.id
    got = queue.claim(sf, "w1")
    assert (got.id, got.state, got.attempts, got.worker_id) == (b.id, "running", 1, "w1")
    assert got.deadline_at - got.started_at == timedelta(seconds=got.timeout_seconds) or (
        abs((got.deadline_at - got.started_at).total_seconds() - got.timeout_seconds) < 1
    )
    assert queue.claim(sf, "w1") is None  # a is not due yet


def test_concurrent_claims_never_double(sf, make_site):
    ids = []
    for i in range(30):
        make_site(f"s{i:02d}", state="creating")
        ids.append(enqueue(sf, site=f"s{i:02d}").id)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := queue.claim(sf, name)) is not None:
            with lock:
                claimed.append(job.id)
            queue.finish(sf, job, "succeeded", worker_id=name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(claimed) == ids


def test_finish_releases_lock_and_settles(sf, make_site):
    make_site("blog", state="creating", env="production")
    job = enqueue(sf, site="blog", env="production")
    running = queue.claim(sf, "w1")
    assert queue.heartbeat(sf, running, "w1") is False
    with pytest.raises(ConflictError):  # another worker cannot finish it
        queue.finish(sf, running, "succeeded", worker_id="w2")
    done = queue.finish(sf, running, "failed", "playbook_failed", "task X failed", worker_id="w1")
    assert (done.state, done.lock_key, done.error_code) == ("failed", None, "playbook_failed")
    assert state_of(sf, Site, job.site_id) == "failed"
    assert state_of(sf, Environment, job.env_id) == "failed"
    with sf() as s:
        evs = queue.events(s, job.id)
        assert [(e.seq, e.data["to"]) for e in evs] == [(1, "queued"), (2, "running"), (3, "failed")]
        assert evs[1].data == {"from": "queued", "to": "running", "worker_id": "w1", "attempt": 1}
        assert evs[2].data == {"from": "running", "to": "failed", "error_code": "playbook_failed"}
        audit = s.scalars(select(AuditLog).where(AuditLog.result == "failed").order_by(AuditLog.target)).all()
        assert [(a.target, a.detail["from"], a.detail["job_id"]) for a in audit] == [
            ("environments:production", "creating", job.id),
            ("sites:blog", "creating", job.id),
        ]
    with pytest.raises(ConflictError, match="not running"):
        queue.finish(sf, job, "succeeded")


def test_stalled_safe_job_requeued_with_backoff_and_new_token(sf, make_site):
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog")
    first = queue.claim(sf, "w1")
    later = utcnow() + timedelta(seconds=120)
    assert queue.detect_stalled(sf, 60, backoff_base=0.3, now=later) == [(job.id, "requeued")]
    with sf() as s:
        j = s.get(Job, job.id)
        assert (j.state, j.lock_key, j.fencing_token, j.worker_id) == (
            "queued",
            f"site:{job.site_id}",
            2,
            None,
        )
        assert j.not_before == later + timedelta(seconds=0.3)
        with pytest.raises(StaleFencingToken):
            queue.check_fencing(s, first)  # the zombie attempt lost its token
        assert [e.data.get("to") for e in queue.events(s, job.id)] == [
            "queued",
            "running",
            "stalled",
            "queued",
        ]
    with pytest.raises(ConflictError, match="no longer running"):
        queue.heartbeat(sf, first, "w1")
    with pytest.raises(ConflictError):
        enqueue(sf, "site_delete", site="blog")  # the requeued job still holds the site


def test_backoff_delays_the_retry(sf, make_site):
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog")
    queue.claim(sf, "w1")
    # 2 s: wide enough that a loaded CI machine still claims before the backoff ends.
    assert queue.detect_stalled(sf, 0, backoff_base=2, now=utcnow() + timedelta(seconds=0.05))
    assert queue.claim(sf, "w2") is None  # not before the backoff
    deadline = time.monotonic() + 10
    retry = None
    while retry is None and time.monotonic() < deadline:
        retry = queue.claim(sf, "w2")
        time.sleep(0.05)
    assert retry is not None and (retry.id, retry.attempts) == (job.id, 2)
    assert queue.backoff(1, 30).total_seconds() == 30
    assert queue.backoff(3, 30).total_seconds() == 120
    assert queue.backoff(20, 30).total_seconds() == queue.BACKOFF_MAX


def test_stalled_safe_job_out_of_attempts_fails(sf, make_site):
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog", max_attempts=1)
    queue.claim(sf, "w1")
    assert queue.detect_stalled(sf, 60, now=utcnow() + timedelta(seconds=61)) == [(job.id, "failed")]
    with sf() as s:
        j = s.get(Job, job.id)
        assert (j.state, j.lock_key, j.error_code) == ("failed", None, "stalled")
    assert state_of(sf, Site, job.site_id) == "failed"


def test_stalled_destructive_job_never_retried(sf, make_site):
    make_site("blog", state="active")
    job = enqueue(sf, "site_delete", site="blog")
    assert state_of(sf, Site, job.site_id) == "deleting"
    queue.claim(sf, "w1")
    assert queue.detect_stalled(sf, 60, now=utcnow() + timedelta(seconds=30)) == []  # heartbeat still fresh
    assert queue.detect_stalled(sf, 60, now=utcnow() + timedelta(seconds=61)) == [(job.id, "stalled")]
    with sf() as s:
        j = s.get(Job, job.id)
        assert (j.state, j.lock_key, j.error_code) == ("stalled", None, "stalled")
    assert state_of(sf, Site, job.site_id) == "failed"
    assert queue.claim(sf, "w2") is None
    assert queue.detect_stalled(sf, 60, now=utcnow() + timedelta(hours=1)) == []  # stays stalled
    with pytest.raises(TransitionError):  # failed site: no create until reset
        enqueue(sf, "site_create", site="blog")
    assert queue.fail_stalled(sf, job.id, actor="ops").state == "failed"


def test_cancel(sf, make_site):
    make_site("blog", state="creating")
    make_site("shop", state="creating")
    queued = enqueue(sf, site="blog")
    assert queue.request_cancel(sf, queued.id, actor="me").state == "cancelled"
    assert state_of(sf, Site, queued.site_id) == "failed"
    assert queue.claim(sf, "w1") is None
    running_job = enqueue(sf, site="shop")
    running = queue.claim(sf, "w1")
    assert queue.request_cancel(sf, running.id).cancel_requested is True
    assert queue.heartbeat(sf, running, "w1") is True
    assert queue.finish(sf, running, "cancelled", worker_id="w1").state == "cancelled"
    with pytest.raises(TransitionError, match="only queued or running"):
        queue.request_cancel(sf, running_job.id)


def test_cancel_before_the_run_leaves_nothing_failed(sf, make_site):
    """A queued job never touched the node: states entered only from active go back to active."""
    make_site("blog", state="active", env="production")
    job = enqueue(sf, "env_deploy", site="blog", env="production")
    assert state_of(sf, Environment, job.env_id) == "deploying"
    queue.request_cancel(sf, job.id, actor="me")
    assert state_of(sf, Environment, job.env_id) == "active"
    with sf() as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.target == "environments:production")).all()
        assert [(a.detail["from"], a.result) for a in audit][-1] == ("deploying", "active")
    # A job that ran and was cancelled may have changed the node: failed.
    job = enqueue(sf, "env_deploy", site="blog", env="production")
    running = queue.claim(sf, "w1")
    queue.request_cancel(sf, running.id)
    queue.finish(sf, running, "cancelled", worker_id="w1")
    assert state_of(sf, Environment, job.env_id) == "failed"
    # deleting is also entered from failed, so where it came from is unknown: failed, for a reset.
    make_site("shop", state="active")
    delete = enqueue(sf, "site_delete", site="shop")
    queue.request_cancel(sf, delete.id)
    assert state_of(sf, Site, delete.site_id) == "failed"


def test_deadline_times_out(sf, make_site):
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog", timeout=5)
    queue.claim(sf, "w1")
    assert queue.expire_deadlines(sf) == []
    assert queue.expire_deadlines(sf, now=utcnow() + timedelta(seconds=6)) == [job.id]
    with sf() as s:
        j = s.get(Job, job.id)
        assert (j.state, j.lock_key, j.error_code) == ("timed_out", None, "timeout")
    assert queue.sweep(sf, 60) == {"timed_out": [], "stalled": []}


def test_reset(sf, make_site):
    make_site("blog", state="failed", env="production")
    assert queue.reset_env(sf, "blog", "production").state == "active"
    assert state_of(sf, Environment, 1) == "active"
    with pytest.raises(TransitionError, match="only a failed one"):
        queue.reset_env(sf, "blog", "production")
    job = enqueue(sf, "site_delete", site="blog")  # failed -> deleting is allowed
    with pytest.raises(ConflictError, match=f"job {job.id}"):
        queue.reset_site(sf, "blog")
    queue.request_cancel(sf, job.id)
    assert queue.reset_site(sf, "blog", actor="ops").state == "active"
    with pytest.raises(TransitionError):
        queue.reset_site(sf, "blog")


def test_finish_in_the_callers_transaction(sf, make_site):
    """The runner finishes a job in its own transaction (with the job type's hook): a rollback undoes it."""
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog")
    running = queue.claim(sf, "w1")
    with sf() as s:
        assert queue.finish(s, running, "succeeded", worker_id="w1").state == "succeeded"
        s.rollback()
    assert (state_of(sf, Job, job.id), state_of(sf, Site, job.site_id)) == ("running", "creating")
    with sf.begin() as s:
        queue.finish(s, running, "succeeded", worker_id="w1")
    assert (state_of(sf, Job, job.id), state_of(sf, Site, job.site_id)) == ("succeeded", "active")


def test_postgresql_broken_connection_is_dropped(postgres_url):
    """The hot path runs on psycopg directly: a connection the server killed must leave the pool, and a
    pooled connection must come back out of autocommit (SQLAlchemy's transactions rely on that)."""
    import psycopg
    from sqlalchemy import text

    from pressluft_lib.storage import db
    from pressluft_lib.storage.models import Base

    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    sf = db.session_factory(engine)
    Base.metadata.create_all(engine)
    nothing = ["no_such_type"]  # claims that touch no job of other tests
    try:
        assert queue.claim(sf, "w1", nothing) is None
        with sf() as s:  # the same (only) pooled connection
            assert s.connection().connection.driver_connection.autocommit is False
            pid = s.scalar(text("SELECT pg_backend_pid()"))
        killer = psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        with killer:
            assert killer.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0] is True
        with pytest.raises(psycopg.OperationalError):
            queue.claim(sf, "w1", nothing)
        assert queue.claim(sf, "w1", nothing) is None  # on a new connection
        with sf() as s:
            assert s.connection().connection.driver_connection.autocommit is False
            assert s.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        engine.dispose()


def test_sequence_3_a_stale_attempt_can_neither_heartbeat_nor_finish(sf, make_site):
    """Claim (token 1) -> heartbeat stale -> re-queued (token 2) -> claimed again under the SAME claim id
    (the worst case: the queue must fence by attempt, not trust claim ids to differ)."""
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog")
    first = queue.claim(sf, "w1")
    assert (first.attempts, first.fencing_token) == (1, 1)
    assert queue.detect_stalled(sf, 0, backoff_base=0) == [(job.id, "requeued")]
    second = queue.claim(sf, "w1")
    assert (second.id, second.attempts, second.fencing_token) == (job.id, 2, 2)
    with pytest.raises(ConflictError, match="running attempt 2"):
        queue.heartbeat(sf, first, "w1")
    with pytest.raises(ConflictError, match="running attempt 2"):
        queue.finish(sf, first, "succeeded", worker_id="w1")
    with sf() as s:
        with pytest.raises(StaleFencingToken):
            queue.check_fencing(s, first)
        j = s.get(Job, job.id)
        assert (j.state, j.lock_key, j.attempts) == ("running", f"site:{job.site_id}", 2), (
            "attempt 2 holds it"
        )
    with pytest.raises(ConflictError, match=f"job {job.id}"):
        enqueue(sf, "site_delete", site="blog")
    assert queue.heartbeat(sf, second, "w1") is False
    assert queue.finish(sf, second, "succeeded", worker_id="w1").state == "succeeded"
    assert state_of(sf, Site, job.site_id) == "active"


def test_claim_ids_fence_concurrent_runs_of_one_worker(sf, make_site):
    make_site("blog", state="creating")
    job = enqueue(sf, site="blog")
    running = queue.claim(sf, "w1#1")
    with pytest.raises(ConflictError, match=r"not attempt 1 \(w1#2\)"):
        queue.heartbeat(sf, running, "w1#2")
    with pytest.raises(ConflictError):
        queue.finish(sf, running, "failed", worker_id="w1#2")
    assert queue.finish(sf, running, "failed", worker_id="w1#1").id == job.id


def test_reset_waits_until_a_stalled_attempt_cannot_run(sf, make_site):
    make_site("blog", state="active")
    job = enqueue(sf, "site_delete", site="blog")
    queue.claim(sf, "w1#1")
    assert queue.detect_stalled(sf, 0) == [(job.id, "stalled")]  # destructive: lock released, site failed
    assert state_of(sf, Site, job.site_id) == "failed"
    with pytest.raises(ConflictError, match=r"attempt 1 on w1#1 may still be running until .* \+ stop grace"):
        queue.reset_site(sf, "blog")
    assert state_of(sf, Site, job.site_id) == "failed"
    # Once lease + grace + margin have passed since the last heartbeat, the worker has stopped it.
    with sf.begin() as s:
        s.get(Job, job.id).heartbeat_at = utcnow() - timedelta(
            seconds=queue.DEFAULT_LEASE + queue.DEFAULT_STOP_GRACE + queue.RESET_MARGIN + 1
        )
    assert queue.reset_site(sf, "blog").state == "active"


def test_reset_force_overrides_and_says_so(sf, make_site):
    make_site("blog", state="active", env="production")
    job = enqueue(sf, "site_delete", site="blog", env="production")
    queue.claim(sf, "w1#1")
    queue.detect_stalled(sf, 0)
    with pytest.raises(ConflictError, match="may still be running"):
        queue.reset_env(sf, "blog", "production")
    assert queue.reset_env(sf, "blog", "production", force=True).state == "active"
    with sf() as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.target == "environments:production")).all()
        assert f"job {job.id}" in audit[-1].detail["forced"]
