"""Recoverable failures and site incarnations through the CLI on a real SQLite control plane:
`jobs retry`, `site create` again on a failed site or a deleted name, `site adopt`'s bookkeeping.

Jobs end through the queue's own claim/finish (no playbook runs here; tests/integration covers them).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pressluft_lib import jobtypes, queue
from pressluft_lib.storage import db
from pressluft_lib.storage.models import AuditLog, Job, Site
from tests.unit.cli.test_cli import js, run


def end(url: str, state: str = "failed", artifacts: dict | None = None) -> Job:
    """Claim the next job and finish it as `state` (what a worker does around the playbook)."""
    sf = db.session_factory(url)
    job = queue.claim(sf, "w1")
    assert job is not None
    if state == "stalled":  # a destructive job whose worker vanished
        with sf.begin() as s:
            s.execute(
                Job.__table__.update()
                .where(Job.id == job.id)
                .values(heartbeat_at=job.started_at.replace(year=2000))
            )
        assert queue.detect_stalled(sf, 60) == [(job.id, "stalled")]
        return job
    jt = jobtypes.get(job.type)
    with sf.begin() as s:  # as the runner ends a job: finish and the job type's hook in one transaction
        done = queue.finish(
            s, job, state, None if state == "succeeded" else "playbook_failed", "boom", worker_id="w1"
        )
        jt.run_after(s, done, artifacts or {})
    return done


def sites(url: str, name: str) -> list[tuple[int, str, str, int]]:
    with db.session_factory(url)() as s:
        rows = s.scalars(select(Site).where(Site.name == name).order_by(Site.id))
        return [(r.id, r.state, r.incarnation, r.last_fencing_token) for r in rows]


def test_site_create_again_retries_a_failed_create(active_node, wordpress_file):
    first = js("site", "create", "shop", "--node", "web1", "--title", "Shop 1")
    end(active_node)
    assert js("site", "show", "shop")["state"] == "failed"
    again = js("site", "create", "shop", "--node", "web1", "--title", "Shop 2")
    assert again["retry_of"] == first["job_id"] and again["job_id"] != first["job_id"]
    shown = js("jobs", "show", str(again["job_id"]))
    wordpress = {"pressluft_wordpress_src": str(wordpress_file), "pressluft_wordpress_version": "6.1.9"}
    assert shown["payload"] == {"pressluft_wordpress_title": "Shop 2", **wordpress}, \
        "the new call's options, the same WordPress"
    assert shown["fencing_token"] == 2 and shown["events"][0]["data"]["retry_of"] == first["job_id"]
    old = js("jobs", "show", str(first["job_id"]))
    assert old["events"][-1]["data"]["retried_as"] == again["job_id"]
    site = js("site", "show", "shop")
    assert (site["state"], site["environments"][0]["state"]) == ("creating", "creating")
    assert len(sites(active_node, "shop")) == 1, "the same incarnation"
    # Other options than the failed create's are refused, naming them; so is an active site.
    end(active_node)
    other = run("site", "create", "shop", "--node", "web1", "--domain", "x.example.com", ok=False)
    assert other.exit_code == 4 and "domains shop.localhost (not x.example.com)" in other.stderr
    end_ok = js("site", "create", "shop", "--node", "web1")
    end(active_node, "succeeded")
    busy = run("site", "create", "shop", "--node", "web1", ok=False)
    assert busy.exit_code == 4 and "site shop already exists (active)" in busy.stderr
    assert js("jobs", "show", str(end_ok["job_id"]))["state"] == "succeeded"


def test_a_deleted_name_makes_a_new_incarnation(active_node):
    created = js("site", "create", "shop", "--node", "web1")
    end(active_node, "succeeded")
    old_incarnation = js("site", "show", "shop")["incarnation"]
    adopt = js("site", "adopt", "shop")
    end(active_node)
    deleted = js("site", "delete", "shop", "--yes")
    end(active_node, "succeeded")
    again = js("site", "create", "shop", "--node", "web1")
    shown = js("site", "show", "shop")
    assert shown["state"] == "creating" and shown["incarnation"] != old_incarnation
    assert js("jobs", "show", str(again["job_id"]))["fencing_token"] == 1, "a new incarnation counts anew"
    rows = sites(active_node, "shop")
    assert [(state, inc) for _, state, inc, _ in rows] == [
        ("deleted", old_incarnation),
        ("creating", shown["incarnation"]),
    ]
    with db.session_factory(active_node)() as s:  # the old incarnation keeps its history
        old_jobs = s.scalars(select(Job.id).where(Job.site_id == rows[0][0]).order_by(Job.id)).all()
        assert old_jobs == [created["job_id"], adopt["job_id"], deleted["job_id"]]
        audit = s.scalar(
            select(AuditLog).where(AuditLog.action == "site.create").order_by(AuditLog.id.desc())
        )
        assert audit.detail["incarnation"] == shown["incarnation"]
    refused = run("jobs", "retry", str(adopt["job_id"]), ok=False)
    assert refused.exit_code == 2 and "site shop was deleted since and created again" in refused.stderr
    end(active_node)  # the new create fails: the name is busy with the new incarnation, not the old
    assert js("site", "create", "shop", "--node", "web1")["retry_of"] == again["job_id"]


def test_jobs_retry(active_node):
    job = js("site", "create", "shop", "--node", "web1")
    for state in ("queued",):
        refused = run("jobs", "retry", str(job["job_id"]), ok=False)
        assert refused.exit_code == 2 and f"it is {state}" in refused.stderr
    end(active_node, "succeeded")
    refused = run("jobs", "retry", str(job["job_id"]), ok=False)
    assert refused.exit_code == 2 and "it is succeeded; only a failed" in refused.stderr
    assert run("jobs", "retry", "999", ok=False).exit_code == 3
    # A stalled destructive job: its retry gets a new token, and the stalled one is settled as failed.
    delete = js("site", "delete", "shop", "--yes")
    end(active_node, "stalled")
    assert js("site", "show", "shop")["state"] == "failed"
    retried = js("jobs", "retry", str(delete["job_id"]))
    assert retried["type"] == "site_delete" and retried["fencing_token"] > 2
    old = js("jobs", "show", str(delete["job_id"]))
    assert (old["state"], old["error_message"]) == ("failed", f"retried as job {retried['job_id']}")
    site = js("site", "show", "shop")
    assert (site["state"], site["environments"][0]["state"]) == ("deleting", "deleting")
    refused = run("jobs", "retry", str(delete["job_id"]), ok=False)
    assert (
        refused.exit_code == 2
        and f"job {retried['job_id']} (site_delete, queued) ran after it" in refused.stderr
    )
    end(active_node)  # the retry fails too: retry the newest, not the old one
    assert "retry that one" in run("jobs", "retry", str(delete["job_id"]), ok=False).stderr
    assert js("jobs", "retry", str(retried["job_id"]))["retry_of"] == retried["job_id"]
    audit = js("audit", "list")
    refusals = [a for a in audit if a["action"] == "job.retry" and a["result"] == "invalid_input"]
    assert len(refusals) == 4, "refused retries are audited"


def test_a_failed_node_job_is_retried(active_node):
    job = js("node", "provision", "web1")
    end(active_node)
    assert js("node", "show", "web1")["state"] == "failed"
    retried = js("jobs", "retry", str(job["job_id"]))
    assert retried["type"] == "node_provision" and retried["fencing_token"] is None
    assert js("node", "show", "web1")["state"] == "provisioning"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"token": 9, "incarnation": "iother", "run": "r1", "retired": False}, ("iother", 9, "adopted")),
        ({"token": 0, "incarnation": None, "run": None, "retired": False}, (None, 2, "adopted")),
        (None, (None, 2, "no_record")),
        ({"token": "9; drop", "incarnation": "../x"}, (None, 2, "no_record")),
    ],
)
def test_site_adopt_takes_over_the_nodes_record(active_node, record, expected):
    js("site", "create", "shop", "--node", "web1")
    end(active_node, "succeeded")
    before = js("site", "show", "shop")["incarnation"]
    adopt = js("site", "adopt", "shop")
    assert end(active_node, "succeeded", {"pressluft_fencing_record": record}).id == adopt["job_id"]
    incarnation, token, result = expected
    shown = js("site", "show", "shop")
    assert (shown["incarnation"], shown["fencing_token"]) == (incarnation or before, token)
    audit = [a for a in js("audit", "list") if a["action"] == "site.adopt"]
    assert [a["result"] for a in audit] == [result, f"job:{adopt['job_id']}"]
    assert audit[0]["detail"]["from"] == {"incarnation": before, "fencing_token": 2}
    nxt = js("site", "delete", "shop", "--yes")
    assert js("jobs", "show", str(nxt["job_id"]))["fencing_token"] == token + 1, "the counter moved past"
