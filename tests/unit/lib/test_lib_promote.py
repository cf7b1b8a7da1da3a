"""promote on the control plane (SQLite and PostgreSQL): the checks that queue nothing (itself, no or a stale
drift report, a busy staging environment, refused tables), the queued job with its backup and release rows,
and what the after hook makes of a failed backup and of a release gone live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.jobs import promote as promote_jobs
from pressluft_lib.storage.models import Backup, Environment, Job, Release
from tests.unit.lib.test_lib_environments import cp, finish  # noqa: F401  (the fixture and helper)

CLONE = {"source_env": "production", "source_url": "http://shop.localhost",
         "url": "http://staging.shop.localhost", "release": "r1", "passes": [], "total_rows": 0,
         "rows": {"wp_posts": 10, "wp_options": 100, "wp_users": 1, "wp_promo": 2}}


def report(release: str = "r1", prod_rows: dict | None = None, after: list | None = None) -> dict:
    rows = {"wp_posts": 10, "wp_options": 100, "wp_users": 1, "wp_promo": 2, "wp_new": 3}
    tables = dict.fromkeys(rows, "h")
    prod = {k: v for k, v in {**rows, **(prod_rows or {})}.items() if k != "wp_new"}
    return {"env": {"name": "staging", "release": release, "tables": tables, "rows": rows},
            "against": {"name": "production", "release": "r0", "tables": dict.fromkeys(prod, "h"),
                        "rows": prod},
            "differs": ["release"], "writes": {"after_since": after or []}}


def jobs(cp) -> int:  # noqa: F811
    with cp.session_factory() as s:
        return s.scalar(select(func.count()).select_from(Job))


@pytest.fixture
def staged(cp):  # noqa: F811
    made = cp.env_create("shop", "staging")
    finish(cp, made["job_id"], "succeeded", {"pressluft_clone": CLONE})
    return cp


def drift(cp, **kw) -> int:  # noqa: F811
    queued = cp.drift_check("shop", "staging")
    finish(cp, queued["job_id"], "succeeded", {"pressluft_drift": report(**kw)})
    return queued["job_id"]


def test_promote_needs_another_environment_and_a_fresh_drift_report(staged):
    cp = staged  # noqa: F811  (the plane with its staging clone)
    with pytest.raises(ValidationError, match="cannot be promoted onto itself"):
        cp.promote("shop", "production")
    with pytest.raises(NotFound, match="no environment qa"):
        cp.promote("shop", "qa")
    with pytest.raises(ValidationError, match="no drift report for shop/staging"):
        cp.promote("shop", "staging")
    drift(cp)
    sync = cp.env_sync("shop", "staging", database=False, uploads=True)
    with pytest.raises(ConflictError, match="staging is cloning"):
        cp.promote("shop", "staging")
    finish(cp, sync["job_id"], "failed", {})  # a failed change counts too: it may have changed something
    with cp.session_factory.begin() as s:  # as `pressluft reset` would
        s.scalar(select(Environment).where(Environment.name == "staging")).state = "active"
    with pytest.raises(ValidationError, match="older than the environment's last change"):
        cp.promote("shop", "staging")
    before = jobs(cp)
    for bad in ("wp_posts;drop", "a b", "", "x" * 65, "`wp`"):
        with pytest.raises(ValidationError, match="invalid table name"):
            cp.promote("shop", "staging", tables=[bad])
    assert jobs(cp) == before


def test_refused_tables_are_named_with_their_rows(staged):
    cp = staged  # noqa: F811  (the plane with its staging clone)
    drift(cp, prod_rows={"wp_options": 104}, after=["post"])
    with pytest.raises(ValidationError) as err:
        cp.promote("shop", "staging", tables=["wp_users", "wp_options", "wp_posts", "wp_nope", "wp_promo",
                                               "wp_new"])
    msg = str(err.value)
    assert "wp_users (protected (production's visitors write it); 1 rows)" in msg
    assert "wp_options (production wrote to it since the clone: 100 rows then, 104 now)" in msg
    assert "wp_posts (production wrote to it since the clone: 10 rows then, 10 now, newer post)" in msg
    assert "wp_nope (not in the drift report's tables" in msg
    assert "wp_promo" not in msg and "wp_new" not in msg
    assert [r["table"] for r in err.value.details["refused"]] == ["wp_users", "wp_options", "wp_posts",
                                                                   "wp_nope"]
    # --force takes the written ones, --allow-protected the protected ones; a missing table stays refused.
    with pytest.raises(ValidationError, match="wp_users"):
        cp.promote("shop", "staging", tables=["wp_users", "wp_options"], force=True)
    with pytest.raises(ValidationError, match="wp_nope"):
        cp.promote("shop", "staging", tables=["wp_nope"], force=True, allow_protected=True)
    made = cp.promote("shop", "staging", tables=["wp_users", "wp_options"], force=True, allow_protected=True)
    assert made["tables"] == ["wp_users", "wp_options"]


def test_protected_tables_are_matched_after_any_prefix():
    assert promote_jobs.protected("wp_users") and promote_jobs.protected("shop2_wc_orders")
    assert promote_jobs.protected("wp_mailpoet_subscribers") and not promote_jobs.protected("wp_posts")


def test_the_queued_promotion_and_its_failed_backup(staged):
    cp = staged  # noqa: F811  (the plane with its staging clone)
    drift(cp)
    made = cp.promote("shop", "staging", tables=["wp_promo", "wp_new"])
    assert made["from"] == "staging" and made["from_release"] == "r1" and made["env"] == "production"
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert job.type == "env_promote" and s.get(Environment, job.env_id).name == "production"
        assert s.get(Environment, job.env_id).state == "promoting"
        assert job.payload["pressluft_promote_from"] == "staging"
        assert job.payload["pressluft_promote_release"] == "r1"
        assert job.payload["pressluft_promote_tables"] == ["wp_promo", "wp_new"]
        # Checked again on the node: production's rows at the clone, or -1 for a table it has not got.
        assert job.payload["pressluft_promote_guard"] == {"wp_promo": {"rows": 2, "newer": []},
                                                          "wp_new": {"rows": -1, "newer": []}}
        assert job.payload["pressluft_pre_promote_backup_id"] == made["backup_id"]
        assert job.payload["pressluft_release"] == made["release"]
        backup = s.scalar(select(Backup).where(Backup.env_id == job.env_id))
        assert backup.state == "pending" and backup.manifest["trigger"] == "pre_promote"
    # Staging is held by the site lock meanwhile.
    with pytest.raises(ConflictError):
        cp.env_sync("shop", "staging")
    failed = {"pressluft_backup": {"id": made["backup_id"], "error": "disk full"},
              "pressluft_promote": {"state": "failed", "phase": "backup", "reason": "disk full"}}
    finish(cp, made["job_id"], "failed", failed)
    with cp.session_factory() as s:
        assert s.scalar(select(Environment.state).where(Environment.name == "production")) == "active"
        backup = s.scalar(select(Backup).where(Backup.manifest.is_not(None)))
        assert backup.state == "failed" and "disk full" in backup.manifest["error"]
        release = s.scalar(select(Release).where(Release.release_id == made["release"]))
        assert release.state == "failed"


def test_a_promotion_gone_live(staged):
    cp = staged  # noqa: F811  (the plane with its staging clone)
    drift(cp)
    made = cp.promote("shop", "staging")
    done = {"pressluft_backup": {"id": made["backup_id"], "location": "/var/backups/x"},
            "pressluft_promote": {"state": "live", "phase": "live"},
            "pressluft_release": {"id": made["release"], "state": "live", "removed": []}}
    finish(cp, made["job_id"], "succeeded", done)
    with cp.session_factory() as s:
        assert s.scalar(select(Release.state).where(Release.release_id == made["release"])) == "live"
        assert s.scalar(select(Backup.state)) == "completed"
    # The promotion is a change of production, not of staging: the report still counts for staging.
    again = cp.promote("shop", "staging")
    assert again["drift_job"] == made["drift_job"]


def test_a_table_push_renews_that_tables_baseline(staged):
    """After `promote --tables`, production's rows of those tables are the pushed ones: the next promotion
    compares with them (and counts post/order/comment times from that push), not with the clone's."""
    cp = staged  # noqa: F811  (the plane with its staging clone)
    with cp.session_factory() as s:
        clone_end = s.scalar(select(func.max(Job.finished_at)).where(Job.type == "env_create"))
    # Staging added 5 promo rows and 2 posts, one written after the clone (and before the push).
    newest = {"post": (clone_end + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S"), "comment": None,
              "order": None}
    drift(cp, prod_rows={"wp_promo": 2, "wp_posts": 10})
    made = cp.promote("shop", "staging", tables=["wp_promo", "wp_posts"], force=True)
    copied = {"wp_promo": 7, "wp_posts": 12, "wp_options": 100}  # every table's rows, as env_clone returns
    done = {"pressluft_backup": {"id": made["backup_id"], "location": "/var/backups/x"},
            "pressluft_promote": {"state": "live", "phase": "live", "rows": copied},
            "pressluft_release": {"id": made["release"], "state": "live", "removed": []}}
    finish(cp, made["job_id"], "succeeded", done)
    with cp.session_factory.begin() as s:  # the push ran a few seconds after that post
        job = s.get(Job, made["job_id"])
        job.started_at = clone_end + timedelta(seconds=5)
        job.finished_at = clone_end + timedelta(seconds=6)
        started = job.started_at.strftime("%Y-%m-%d %H:%M:%S")
    # Production now holds the pushed rows and nothing newer: pushing the tables again is no write.
    queued = cp.drift_check("shop", "staging")
    pushed_report = report(prod_rows={"wp_promo": 7, "wp_posts": 12}, after=["post"])
    pushed_report["writes"]["newest"] = newest
    finish(cp, queued["job_id"], "succeeded", {"pressluft_drift": pushed_report})
    again = cp.promote("shop", "staging", tables=["wp_promo", "wp_posts"])
    with cp.session_factory() as s:
        guard = s.get(Job, again["job_id"]).payload["pressluft_promote_guard"]
    assert guard == {"wp_promo": {"rows": 7, "newer": []},
                     "wp_posts": {"rows": 12, "newer": ["post", "order"], "since": started}}
    finish(cp, again["job_id"], "failed", {"pressluft_promote": {"state": "failed", "phase": "check"}})
    # Production writes after the push are still refused: a row more, or a post newer than the push.
    queued = cp.drift_check("shop", "staging")
    written = report(prod_rows={"wp_promo": 8, "wp_posts": 12}, after=["post"])
    written["writes"]["newest"] = {"post": "2999-01-01 00:00:00", "comment": None, "order": None}
    finish(cp, queued["job_id"], "succeeded", {"pressluft_drift": written})
    with pytest.raises(ValidationError) as refused:
        cp.promote("shop", "staging", tables=["wp_promo", "wp_posts"])
    assert "wp_promo (production wrote to it since the clone: 7 rows then, 8 now)" in str(refused.value)
    assert "wp_posts (production wrote to it since the clone: 12 rows then, 12 now, newer post)" in str(
        refused.value)
    # Only the succeeded push renewed the baseline (the failed one after it recorded none).
    with cp.session_factory() as s:
        staging = s.scalar(select(Environment).where(Environment.name == "staging"))
        rows, pushed = promote_jobs.baseline(s, staging)
    assert rows == {**CLONE["rows"], "wp_promo": 7, "wp_posts": 12}
    assert pushed == {"wp_promo": started, "wp_posts": started}
    # drift show prints the same baseline beside the report.
    assert cp.drift_show("shop", "staging")["baseline"] == {"rows": rows, "renewed": pushed}
