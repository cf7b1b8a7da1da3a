"""Job type registry: one job type = one playbook (playbooks/<type>.yml), an allowlist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pressluft_lib.errors import ValidationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from pressluft_lib.storage.models import Job

# after(session, job, artifacts): bookkeeping in the transaction that finishes the job; job.state is
# final, artifacts is what the playbook returned with ansible.builtin.set_stats ({} if it never ran).
AfterHook = Callable[["Session", "Job", dict[str, Any]], None]
# before(session, job): bookkeeping in the transaction that starts the run (after the fencing check).
BeforeHook = Callable[["Session", "Job"], None]


@dataclass(frozen=True)
class JobType:
    name: str
    scope: str  # "site": serialised per site, fenced; "node": serialised per node
    destructive: bool  # destructive jobs are never retried automatically
    timeout: int  # seconds from claim to deadline (-> timed_out)
    max_attempts: int = 3
    # State the job's primary resource (env if given, else site; node for node scope) enters at
    # enqueue; None leaves it alone. finish() settles it (success: active/deleted, else failed).
    marks: str | None = None
    before: BeforeHook | None = None
    after: AfterHook | None = None
    # Secret-store scopes whose secrets this job type also gets as pressluft_<name> (e.g. backups).
    secret_scopes: tuple[str, ...] = ()

    @property
    def playbook(self) -> str:
        return f"{self.name}.yml"


def free_domains(session: Session, job: Job, _artifacts: dict[str, Any]) -> None:
    """After site_delete: a deleted environment frees its domain names for other sites."""
    from sqlalchemy import delete

    from pressluft_lib.storage.models import Domain

    if job.state == "succeeded" and job.env_id is not None:
        session.execute(delete(Domain).where(Domain.env_id == job.env_id))


JOB_TYPES: dict[str, JobType] = {
    t.name: t
    for t in (
        JobType("node_provision", "node", destructive=False, timeout=3600, marks="provisioning"),
        # Creating is idempotent (the roles converge), so a stalled site_create may be retried.
        JobType("site_create", "site", destructive=False, timeout=1800, marks="creating"),
        JobType(
            "site_delete", "site", destructive=True, timeout=1800, max_attempts=1, marks="deleting",
            after=free_domains,
        ),
    )
}


def get(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except (KeyError, TypeError):
        raise ValidationError(
            f"unknown job type {name!r}; known: {', '.join(sorted(JOB_TYPES))}", details={"type": name}
        ) from None


def register(job_type: JobType) -> JobType:
    """Add a job type (for later issues); names must match a playbook file name."""
    if job_type.scope not in ("site", "node"):
        raise ValidationError(f"job type scope must be 'site' or 'node', not {job_type.scope!r}")
    JOB_TYPES[job_type.name] = job_type
    return job_type


from pressluft_lib.jobs import backups as _backups  # noqa: E402,F401  registers the backup job types
from pressluft_lib.jobs import releases as _releases  # noqa: E402,F401  registers the deploy job types
