"""ControlPlane methods for jobs and the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pressluft_lib import queue, schemas
from pressluft_lib.errors import NotFound, ValidationError
from pressluft_lib.services.base import ServiceBase, iso
from pressluft_lib.services.views import event_dict, job_dict
from pressluft_lib.states import JobState
from pressluft_lib.storage.models import AuditLog, Job


def _check_job_id(job_id: object) -> None:
    """Job ids are 64-bit database integers; a larger number is bad input, not a driver overflow."""
    if not isinstance(job_id, int) or isinstance(job_id, bool) or not 1 <= job_id < 2**63:
        raise ValidationError(f"invalid job id {str(job_id)[:30]!r}: a positive integer")


class JobsMixin(ServiceBase):
    """ControlPlane methods for jobs and the audit log."""

    def jobs_list(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        flt = schemas.parse(schemas.JobFilter, {"state": [state] if state else None, "limit": limit})
        with self.session_factory() as session:
            stmt = select(Job).order_by(Job.id.desc()).limit(flt.limit)
            if flt.state:
                stmt = stmt.where(Job.state.in_(flt.state))
            return [job_dict(j, session) for j in session.scalars(stmt)]

    def job_show(self, job_id: int) -> dict[str, Any]:
        _check_job_id(job_id)
        with self.session_factory() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
            return {
                **job_dict(job, session),
                "events": [event_dict(e) for e in queue.events(session, job_id)],
            }

    def job_events(self, job_id: int, after_seq: int = 0) -> tuple[str, list[dict[str, Any]]]:
        _check_job_id(job_id)
        """(job state, events after `after_seq`) for following a job."""
        with self.session_factory() as session:
            state = session.scalar(select(Job.state).where(Job.id == job_id))
            if state is None:
                raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
            return state, [event_dict(e) for e in queue.events(session, job_id, after_seq)]

    def job_retry(self, job_id: int) -> dict[str, Any]:
        """A new job with the type, target and payload of one that did not succeed (new fencing token)."""
        _check_job_id(job_id)
        with self._mutation("job.retry", f"job:{job_id}") as (session, audit):
            job = queue.retry(session, job_id, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            out = {"job_id": job.id, "retry_of": job_id, "type": job.type}
            return {**out, "fencing_token": job.fencing_token}

    def job_cancel(self, job_id: int) -> dict[str, Any]:
        _check_job_id(job_id)
        with self._mutation("job.cancel", f"job:{job_id}") as (session, audit):
            job = queue.request_cancel(session, job_id, actor=self.actor)
            audit["result"] = job.state if job.state == JobState.CANCELLED else "cancel_requested"
            return {"job_id": job_id, "state": job.state, "cancel_requested": bool(job.cancel_requested)}


    def audit_list(self, limit: int = 50) -> list[dict[str, Any]]:
        if not 1 <= limit <= 10000:
            raise ValidationError("limit must be between 1 and 10000")
        with self.session_factory() as session:
            rows = session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit))
            return [
                {
                    "id": a.id,
                    "actor": a.actor,
                    "action": a.action,
                    "target": a.target,
                    "result": a.result,
                    "detail": a.detail,
                    "created_at": iso(a.created_at),
                }
                for a in rows
            ]
