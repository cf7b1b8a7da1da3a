"""ControlPlane methods for secret rotation: rotate one environment now, or every old one on a schedule
(jobs/rotation.py checks the input and stores what the jobs returned)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pressluft_lib import names, queue
from pressluft_lib.errors import NotFound, PressluftError, ValidationError
from pressluft_lib.jobs import rotation
from pressluft_lib.services.base import ServiceBase
from pressluft_lib.states import ResourceState
from pressluft_lib.storage.models import utcnow


class RotationMixin(ServiceBase):
    """ControlPlane methods for secret rotation."""

    def secrets_rotate(self, site: str, env: str = names.DEFAULT_ENV, admin: bool = False) -> dict[str, Any]:
        names.validate_site(site), names.validate_env(env)  # refused input leaves no audit row
        if not isinstance(admin, bool):
            raise ValidationError("admin must be true or false")
        with self._mutation("secrets.rotate", f"env:{site}_{env}", {"admin": admin}) as (session, audit):
            site_row, env_row = rotation.env_rows(session, site, env)
            payload = {"pressluft_rotate_admin": True} if admin else {}
            job = queue.enqueue(session, rotation.JOB_TYPE, site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "admin": admin}

    def secrets_schedule(self, max_age_days: float = 90, sites: list[str] | None = None,
                         dry_run: bool = False, now: datetime | None = None) -> dict[str, Any]:
        """Queue a rotation of every active environment whose secrets are older than max_age_days.

        One job per site per call (the site lock allows no more); busy or inactive sites are skipped
        and come back on the next call, like `backup schedule`.
        """
        limit = rotation.check_max_age(max_age_days)
        for name in sites or ():
            names.validate_site(name)
        now = now or utcnow()
        with self.session_factory() as session:
            found = rotation.candidates(session, sites, now)
        missing = sorted(set(sites or ()) - {c["site"] for c in found})
        if missing:
            raise NotFound(f"no such site: {', '.join(missing)}", details={"sites": missing})
        enqueued: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for c in found:
            old = [(env, state, a) for env, state, a in c["envs"] if a is None or a > limit]
            if not old:
                continue
            env, env_state, a = old[0]
            days = None if a is None else round(a / timedelta(days=1), 1)
            item: dict[str, Any] = {"site": c["site"], "env": env, "age_days": days}
            if c["state"] != ResourceState.ACTIVE or env_state != ResourceState.ACTIVE:
                reason = f"site is {c['state']}, environment {env_state}"
                skipped.append({**item, "skipped": "inactive", "reason": reason})
            elif c["holder"]:
                skipped.append({**item, "skipped": "busy", "reason": f"{c['holder']} holds the site"})
            elif dry_run:
                enqueued.append({**item, "type": rotation.JOB_TYPE, "job_id": None})
            else:
                try:
                    made = self.secrets_rotate(c["site"], env)
                    enqueued.append({**item, "type": rotation.JOB_TYPE, "job_id": made["job_id"]})
                except PressluftError as exc:  # lost a race for the site's lock, or a state changed
                    skipped.append({**item, "skipped": exc.code, "reason": exc.message})
        return {"enqueued": enqueued, "skipped": skipped, "max_age_days": max_age_days, "dry_run": dry_run}
