"""restore --to (job env_rebuild) on the control plane (SQLite and PostgreSQL): which backups and nodes
are refused before anything is queued, the job that runs on the target node, and the after hook that
records the site's new node only for a rebuild the playbook reported."""

from __future__ import annotations

from datetime import datetime

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from pressluft_lib import jobtypes, queue
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.execution.runner import job_vars
from pressluft_lib.jobs import backups
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage.models import AuditLog, Backup, Environment, Job, Node, Site

FULL = ["db.sql.gz", "uploads.tar", "wp-config.php", "core.tar"]


@pytest.fixture
def cp(sf, make_site, monkeypatch) -> ControlPlane:
    monkeypatch.setenv("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    make_site("shop", env="production", node="old")
    make_site("blog", env="production", node="spare")
    make_site("other", node="down")
    with sf.begin() as s:
        s.scalar(select(Node).where(Node.name == "down")).state = "pending"
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    plane = ControlPlane(url, actor="tester")
    plane.backup_repo_set("s3:http://10.0.2.2:9000/b/p", password="restic-Pw-7f3e9a-xx")
    yield plane
    plane.session_factory.kw["bind"].dispose()


def add_backup(cp, site="shop", scope="full", artifacts=FULL, state="completed", snapshot="5e1f") -> str:
    with cp.session_factory.begin() as s:
        env = s.scalar(select(Environment).join(Site).where(Site.name == site))
        b = Backup(env_id=env.id, state=state, scope=scope, created_at=datetime(2026, 1, 2), location="/x")
        s.add(b)
        s.flush()
        b.manifest = {
            "backup_id": backups.make_id(b),
            "trigger": "manual",
            "restic_snapshot": snapshot,
            "manifest": {"artifacts": [{"name": n, "size": 1} for n in artifacts]},
        }
        return backups.make_id(b)


def jobs(cp) -> int:
    with cp.session_factory() as s:
        return len(s.scalars(select(Job)).all())


def site_node(cp, name="shop") -> str:
    with cp.session_factory() as s:
        return s.scalar(Site.by_name(name)).node.name


def test_bad_sources_and_targets_are_refused_before_anything_is_queued(cp):
    good = add_backup(cp)
    cases = [
        (("shop", "production", "spare", add_backup(cp, scope="db", artifacts=["db.sql.gz"])),
         ValidationError, "lacks core.tar, uploads.tar"),
        (("shop", "production", "spare", add_backup(cp, artifacts=FULL[:3])),
         ValidationError, "lacks core.tar"),
        (("shop", "production", "spare", add_backup(cp, snapshot=None)), ValidationError, "no off-site copy"),
        (("shop", "production", "spare", add_backup(cp, state="failed")), ConflictError, "only a completed"),
        (("shop", "production", "spare", add_backup(cp, site="blog")), ValidationError, "belongs to blog"),
        (("shop", "production", "old", good), ConflictError, "node old already holds site shop"),
        (("shop", "production", "down", good), ConflictError, "node down is pending"),
        (("shop", "production", "nosuch", good), NotFound, "node 'nosuch'"),
        (("shop", "production", "spare", "nope"), ValidationError, "invalid backup id"),
        (("Shop", "production", "spare", good), ValidationError, "invalid site name"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            cp.restore_to(*args)
    assert jobs(cp) == 0 and site_node(cp) == "old"


def test_a_site_with_other_environments_or_without_a_repository_is_refused(cp, make_site):
    good = add_backup(cp)
    with cp.session_factory.begin() as s:
        site = s.scalar(Site.by_name("shop"))
        s.add(Environment(site_id=site.id, name="staging", state="active"))
    with pytest.raises(ConflictError, match=r"other environments \(staging\)"):
        cp.restore_to("shop", "production", "spare", good)
    with cp.session_factory.begin() as s:
        s.scalar(select(Environment).where(Environment.name == "staging")).state = "deleted"
    cp.backup_repo_unset()
    with pytest.raises(ConflictError, match="no backup repository"):
        cp.restore_to("shop", "production", "spare", good)
    assert jobs(cp) == 0


def test_the_job_runs_on_the_target_and_the_hook_moves_the_site(cp):
    good = add_backup(cp)
    made = cp.restore_to("shop", "production", "spare", good)
    assert (made["node"], made["from_node"], made["backup_id"]) == ("spare", "old", good)
    with pytest.raises(ConflictError, match="is restoring"):  # one mutation at a time
        cp.restore_to("shop", "production", "spare", good)
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        assert job.type == "env_rebuild"
        extra, _site, _env = job_vars(s, job)
        assert extra["pressluft_target"] == "spare", "the playbook runs on the new node"
        assert extra["pressluft_backup_id"] == good and extra["pressluft_restic_repository"]
        assert s.scalar(select(Environment.state).join(Site).where(Site.name == "shop")) == "restoring"
    assert site_node(cp) == "old", "the site moves only when the rebuild succeeded"
    job = queue.claim(cp.session_factory, "w1")
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, "succeeded", None, None, worker_id="w1")
        artifacts = {"pressluft_rebuild": {"id": good, "node": "spare", "release": "r1", "restored": True}}
        jobtypes.get("env_rebuild").run_after(s, done, artifacts)
    assert site_node(cp) == "spare"
    with cp.session_factory() as s:
        audit = s.scalar(
            select(AuditLog).where(AuditLog.action == "env.rebuild").order_by(AuditLog.id.desc()).limit(1)
        )
    assert audit.result == "rebuilt"
    assert (audit.detail["from_node"], audit.detail["node"]) == ("old", "spare")


@pytest.mark.parametrize(
    ("state", "artifacts"),
    [
        ("failed", {}),
        ("succeeded", {}),  # the playbook returned nothing: not rebuilt
        ("succeeded", {"pressluft_rebuild": {"id": "other", "node": "spare", "restored": True}}),
        ("succeeded", {"pressluft_rebuild": {"id": "ID", "node": "old", "restored": True}}),
    ],
)
def test_the_site_stays_where_it_was_unless_the_rebuild_is_reported(cp, state, artifacts):
    good = add_backup(cp)
    made = cp.restore_to("shop", "production", "spare", good)
    if "pressluft_rebuild" in artifacts and artifacts["pressluft_rebuild"]["id"] == "ID":
        artifacts = {"pressluft_rebuild": {**artifacts["pressluft_rebuild"], "id": good}}
    job = queue.claim(cp.session_factory, "w1")
    assert job.id == made["job_id"]
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed", None,
                            worker_id="w1")
        jobtypes.get("env_rebuild").run_after(s, done, artifacts)
    assert site_node(cp) == "old"


def finish_move(cp, job_id: int, state: str, artifacts: dict) -> None:
    job = queue.claim(cp.session_factory, "w1")
    assert job.id == job_id
    with cp.session_factory.begin() as s:
        done = queue.finish(s, job, state, None if state == "succeeded" else "playbook_failed", None,
                            worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, artifacts)


def test_site_move_then_confirm(cp):
    with pytest.raises(ConflictError, match="no moved copy"):
        cp.site_move_confirm("shop")
    with pytest.raises(ConflictError, match="already holds site shop"):
        cp.site_move("shop", "old")
    made = cp.site_move("shop", "spare")
    assert (made["node"], made["from_node"]) == ("spare", "old")
    with cp.session_factory() as s:
        job = s.get(Job, made["job_id"])
        extra, _site, _env = job_vars(s, job)
        assert (extra["pressluft_move_source"], extra["pressluft_move_target"]) == ("old", "spare")
        assert extra["pressluft_backup_id"] == made["backup_id"] and extra["pressluft_restic_repository"]
    backup = {"pressluft_backup": {"id": made["backup_id"], "location": "/x", "manifest": {},
                                   "restic_snapshot": "ab12"}}
    # Failed after the final backup: the backup is kept, the site stays, nothing to confirm.
    finish_move(cp, made["job_id"], "failed", backup)
    assert site_node(cp) == "old"
    shown = cp.backup_show(made["backup_id"])
    assert (shown["state"], shown["trigger"]) == ("completed", "pre_move")
    with pytest.raises(ConflictError, match="no moved copy"):
        cp.site_move_confirm("shop")

    made = cp.site_move("shop", "spare")
    moved = {"id": made["backup_id"], "source": "old", "node": "spare", "release": "r1", "moved": True}
    finish_move(cp, made["job_id"], "succeeded", {**backup, "pressluft_move": moved})
    assert site_node(cp) == "spare"
    with pytest.raises(ConflictError, match="confirm it first"):
        cp.site_move("shop", "old")
    confirm = cp.site_move_confirm("shop")
    assert (confirm["node"], confirm["move_job"]) == ("old", made["job_id"])
    with cp.session_factory() as s:
        assert job_vars(s, s.get(Job, confirm["job_id"]))[0]["pressluft_target"] == "old"
    finish_move(cp, confirm["job_id"], "succeeded", {})
    with pytest.raises(ConflictError, match="no moved copy"):
        cp.site_move_confirm("shop")
    assert cp.site_move("shop", "old")["from_node"] == "spare", "a confirmed move allows the next one"
