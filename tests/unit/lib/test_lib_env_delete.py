"""env delete on the control plane (SQLite and PostgreSQL): never production while other environments exist
(nor site delete), the queued job with its final backup, a failed backup that removes nothing, and the
domain rows freed when it succeeds."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.storage.models import Backup, Domain, Environment, Job
from tests.unit.lib.test_lib_environments import cp, finish  # noqa: F401  (the fixture and helper)


def state(cp, env: str) -> str:  # noqa: F811
    with cp.session_factory() as s:
        return s.scalar(select(Environment.state).where(Environment.name == env))


def test_env_delete_refuses_production_and_queues_a_final_backup(cp):  # noqa: F811
    with pytest.raises(ValidationError, match="goes with its site"):
        cp.env_delete("shop", "production")
    made = cp.env_create("shop", "staging")
    with pytest.raises(ConflictError, match="staging is creating"):
        cp.env_delete("shop", "staging")
    finish(cp, made["job_id"], "succeeded", {})
    with pytest.raises(ValidationError, match="while shop has other environments \\(staging\\)"):
        cp.env_delete("shop", "production")
    with pytest.raises(ValidationError, match="still has environments staging"):
        cp.site_delete("shop")
    with pytest.raises(NotFound, match="no environment qa"):
        cp.env_delete("shop", "qa")
    queued = cp.env_delete("shop", "staging")
    assert state(cp, "staging") == "deleting"
    with cp.session_factory() as s:
        job = s.get(Job, queued["job_id"])
        assert job.type == "env_delete"
        assert job.payload == {"pressluft_pre_delete_backup_id": queued["backup_id"]}
        backup = s.scalar(select(Backup).where(Backup.env_id == job.env_id))
        assert backup.scope == "full" and backup.manifest["trigger"] == "pre_delete"
    # The final backup failed: the job failed before removing anything; the environment is failed and
    # `env delete` again queues a new attempt with a new backup.
    finish(cp, queued["job_id"], "failed", {"pressluft_backup": {"id": queued["backup_id"], "error": "disk"}})
    assert state(cp, "staging") == "failed"
    again = cp.env_delete("shop", "staging")
    assert again["backup_id"] != queued["backup_id"]
    done = {"pressluft_backup": {"id": again["backup_id"], "location": "/b"}}
    finish(cp, again["job_id"], "succeeded", done)
    assert state(cp, "staging") == "deleted"
    with cp.session_factory() as s:
        assert s.scalars(select(Backup.state).order_by(Backup.id)).all() == ["failed", "completed"]
        env_id = s.scalar(select(Environment.id).where(Environment.name == "staging"))
        assert s.scalars(select(Domain.name).where(Domain.env_id == env_id)).all() == []
    # Production alone again: it goes with its site, and site delete is allowed.
    with pytest.raises(ValidationError, match="goes with its site"):
        cp.env_delete("shop", "production")
    assert cp.site_delete("shop")["job_id"]
