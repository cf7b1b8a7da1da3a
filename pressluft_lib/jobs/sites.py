"""Sites on the control plane: the `after` hooks of site_delete and site_adopt (site_create needs none).

site_adopt is for a control plane that is behind the node (its database restored from an older copy,
or another control plane's data directory): the node refuses its jobs, naming `pressluft site adopt`.
The job reads the node's fencing record (playbooks/site_adopt.yml); on success the site takes the
node's incarnation and its token counter moves past the node's, audited as site.adopt
(docs/contracts.md, "Fencing tokens").
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from pressluft_lib.states import JobState
from pressluft_lib.storage.models import AuditLog, Domain, Job, Site, utcnow


def after_site_delete(session: Session, job: Job, _artifacts: dict[str, Any]) -> None:
    """A deleted environment frees its domain names for other sites."""
    if job.state == JobState.SUCCEEDED and job.env_id is not None:
        session.execute(delete(Domain).where(Domain.env_id == job.env_id))


_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what the node-side check accepts (module_utils/_fencing.py)


def _record(artifacts: dict[str, Any]) -> dict[str, Any] | None:
    """The node's record from the playbook's stats, checked: it came from the node, so it is input."""
    rec = artifacts.get("pressluft_fencing_record")
    if not isinstance(rec, dict):
        return None
    token, incarnation = rec.get("token"), rec.get("incarnation")
    if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < 2**31:
        return None
    if incarnation is not None and not (isinstance(incarnation, str) and _ID_RE.fullmatch(incarnation)):
        return None
    return {"token": token, "incarnation": incarnation, "retired": rec.get("retired") is True}


def after_site_adopt(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    if job.state != JobState.SUCCEEDED or job.site_id is None:
        return
    site = session.get(Site, job.site_id)
    session.refresh(site)
    rec = _record(artifacts)
    before = {"incarnation": site.incarnation, "fencing_token": site.last_fencing_token}
    if rec is not None:
        # A record from before incarnations has none: the control plane's own then takes it over.
        site.incarnation = rec["incarnation"] or site.incarnation
        site.last_fencing_token = max(site.last_fencing_token, rec["token"])
        session.flush()
    after = {"incarnation": site.incarnation, "fencing_token": site.last_fencing_token}
    session.execute(
        insert(AuditLog).values(
            actor=job.actor,
            action="site.adopt",
            target=f"site:{site.name}",
            result="adopted" if rec is not None else "no_record",
            detail={"job_id": job.id, "node_record": rec, "from": before, "to": after},
            created_at=utcnow(),
        )
    )
