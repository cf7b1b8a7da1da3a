"""Sites on the control plane: the `after` hook of site_delete (site_create needs none)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from pressluft_lib.states import JobState
from pressluft_lib.storage.models import Domain, Job


def after_site_delete(session: Session, job: Job, _artifacts: dict[str, Any]) -> None:
    """A deleted environment frees its domain names for other sites."""
    if job.state == JobState.SUCCEEDED and job.env_id is not None:
        session.execute(delete(Domain).where(Domain.env_id == job.env_id))
