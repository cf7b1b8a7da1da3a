"""ControlPlane methods for the environments of a site: create one as a clone of another (env_create),
compare it with production (drift_check) and show the newest report."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names, queue, settings
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.jobs import active_env_rows, env_auth
from pressluft_lib.jobs import environments as env_jobs
from pressluft_lib.jobs import promote as promote_jobs
from pressluft_lib.services.base import ServiceBase, iso
from pressluft_lib.states import DomainState, JobState, ResourceState
from pressluft_lib.storage.models import Domain, Environment, Job, JobEvent, Site


class EnvironmentsMixin(ServiceBase):
    """ControlPlane methods for environments."""

    def env_auth(self, site: str, env: str, user: str | None = None, password: str | None = None,
                 off: bool = False) -> dict[str, Any]:
        """Queue env_auth: basic auth on for `user` (password given, else generated and returned once) or
        off. The password goes to the environment's secret store scope, never into the payload."""
        names.validate_site(site), names.validate_env(env)
        env_auth.check_env(site, env)
        if off:
            if user is not None or password is not None:
                raise ValidationError("--off takes no user or password")
            payload: dict[str, Any] = {env_auth.STATE_KEY: "absent"}
        else:
            if user is None:
                raise ValidationError("give --user NAME to switch basic auth on, or --off")
            env_auth.check_user(user)
            generated = password is None
            password = env_auth.new_password() if generated else env_auth.check_password(password)
            payload = {env_auth.STATE_KEY: "present", env_auth.USER_KEY: user}
        state = payload[env_auth.STATE_KEY]
        with self._mutation("env.auth", f"env:{site}_{env}", {"state": state, "user": user}) as (
                session, audit):
            site_row, env_row = active_env_rows(session, site, env, "basic auth needs it active")
            if not off:
                env_auth.store_password(session, self.url, site, env, password)
            job = queue.enqueue(session, env_auth.JOB_TYPE, site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            audit["result"] = f"job:{job.id}"
            out = {"job_id": job.id, "site": site, "env": env, "state": state, "user": user}
            if not off and generated:
                out["password"] = password  # printed once by the CLI; the store keeps it encrypted
            return out

    def env_create(
        self, site: str, env: str, source: str = names.DEFAULT_ENV, domains: list[str] | None = None,
        staging: bool = True,
    ) -> dict[str, Any]:
        """Queue env_create: environment `env` of `site` on the site's node, filled from `source`."""
        names.validate_site(site), names.validate_env(env), names.validate_env(source)
        if env == source:
            raise ValidationError(f"environment {site}/{env} cannot be cloned from itself",
                                  details={"env": env, "source": source})
        if not isinstance(staging, bool):
            raise ValidationError("staging must be true or false")
        domains = [names.validate_domain(d) for d in (domains or [])]
        if len(set(domains)) != len(domains):
            raise ValidationError("a domain is given twice", details={"domains": domains})
        detail = {"source": source, "domains": domains, "staging": staging}
        with self._mutation("env.create", f"env:{site}_{env}", detail) as (session, audit):
            if not domains:  # the preview host: <env>.<site>.<preview_domain setting, else localhost>
                domains = [settings.preview_host(settings.load(session), site, env)]
                detail["domains"] = audit["detail"]["domains"] = domains
            site_row = self._site(session, site)
            if site_row.state != ResourceState.ACTIVE:
                raise ConflictError(f"site {site} is {site_row.state}: cloning needs it active",
                                    details={"site": site, "state": site_row.state})
            rows = {e.name: e for e in
                    session.scalars(select(Environment).where(Environment.site_id == site_row.id))}
            src = rows.get(source)
            if src is None or src.state == ResourceState.DELETED:
                raise NotFound(f"site {site} has no environment {source} to clone from",
                               details={"site": site, "env": source})
            if src.state != ResourceState.ACTIVE:
                raise ConflictError(f"environment {site}/{source} is {src.state}: cloning needs it active",
                                    details={"env": source, "state": src.state})
            existing = rows.get(env)
            payload = {"pressluft_source_env": source, "pressluft_staging": staging}
            if existing is not None and existing.state != ResourceState.DELETED:
                job, retried = self._retry_env_create(session, site, existing)
                audit["result"] = f"job:{job.id}"
                have = session.scalars(select(Domain.name).where(Domain.env_id == existing.id)).all()
                return {"job_id": job.id, "site": site, "env": env, "source": source, "retry_of": retried,
                        "domains": list(have)}
            taken = session.scalars(select(Domain.name).where(Domain.name.in_(domains))).all()
            if taken:
                raise ConflictError(f"domain already in use: {', '.join(sorted(taken))}",
                                    details={"domains": list(taken)})
            if existing is None:
                existing = Environment(site_id=site_row.id, name=env, state=ResourceState.CREATING,
                                       php_version=src.php_version)
                session.add(existing)
            else:  # a deleted environment's row comes back to life (the name is unique per site)
                existing.state, existing.php_version = ResourceState.CREATING, src.php_version
            # The clone's database has the source's tables: its wp-config.php needs their prefix.
            existing.table_prefix = src.table_prefix
            session.flush()
            session.add_all([Domain(env_id=existing.id, name=d, state=DomainState.PENDING) for d in domains])
            session.flush()
            self._generate_env_secrets(session, site, env)
            job = queue.enqueue(session, env_jobs.JOB_TYPE, site=site_row, env=existing, payload=payload,
                                actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "source": source, "domains": domains}

    def _retry_env_create(self, session: Session, site: str, env: Environment) -> tuple[Job, int]:
        """`env create` again on an environment whose clone failed: retry that job (same source, secrets)."""
        last = session.scalar(select(Job).where(Job.env_id == env.id).order_by(Job.id.desc()).limit(1))
        if env.state != ResourceState.FAILED or last is None or last.type != env_jobs.JOB_TYPE:
            raise ConflictError(f"environment {site}/{env.name} already exists ({env.state})",
                                details={"site": site, "env": env.name, "state": env.state})
        return queue.retry(session, last.id, actor=self.actor), last.id

    def drift_check(self, site: str, env: str, against: str = names.DEFAULT_ENV) -> dict[str, Any]:
        """Queue drift_check: `env` compared with `against`, production's writes since `env` was cloned."""
        names.validate_site(site), names.validate_env(env), names.validate_env(against)
        if env == against:
            raise ValidationError(f"environment {site}/{env} cannot be compared with itself",
                                  details={"env": env})
        with self._mutation("env.drift", f"env:{site}_{env}", {"against": against}) as (session, audit):
            site_row = self._site(session, site)
            rows = _active_envs(session, site_row, (env, against), "a drift check needs it active")
            cloned, _rows = env_jobs.last_fill(session, rows[env])
            payload: dict[str, Any] = {"pressluft_drift_against": against}
            if cloned is not None:
                payload["pressluft_drift_since"] = cloned.strftime("%Y-%m-%d %H:%M:%S")
            job = queue.enqueue(session, env_jobs.DRIFT_JOB_TYPE, site=site_row, env=rows[env],
                                payload=payload, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "against": against,
                    "since": payload.get("pressluft_drift_since")}

    def drift_show(self, site: str, env: str) -> dict[str, Any]:
        """The report of the environment's newest successful drift_check, and the baseline a promotion
        checks production's writes against: rows per table at the clone, renewed for the tables a promotion
        pushed since (`renewed`: table -> when that promotion started, UTC)."""
        names.validate_site(site), names.validate_env(env)
        with self.session_factory() as session:
            site_row = self._site(session, site)
            env_row = session.scalar(select(Environment).where(Environment.site_id == site_row.id,
                                                               Environment.name == env))
            if env_row is None:
                raise NotFound(f"site {site} has no environment {env}", details={"site": site, "env": env})
            found = session.execute(
                select(Job.id, Job.finished_at, JobEvent.data)
                .join(JobEvent, JobEvent.job_id == Job.id)
                .where(Job.env_id == env_row.id, Job.type == env_jobs.DRIFT_JOB_TYPE,
                       Job.state == JobState.SUCCEEDED, JobEvent.kind == "drift")
                .order_by(Job.id.desc()).limit(1)
            ).first()
            if found is None:
                raise NotFound(f"no drift report for {site}/{env}: run `pressluft drift {site}/{env}` first",
                               details={"site": site, "env": env})
            job_id, finished, report = found
            rows, renewed = promote_jobs.baseline(session, env_row)
            return {"site": site, "env": env, "job_id": job_id, "checked_at": iso(finished), "report": report,
                    "baseline": {"rows": rows, "renewed": renewed}}

    def env_sync(self, site: str, env: str, source: str = names.DEFAULT_ENV, database: bool = True,
                 uploads: bool = True) -> dict[str, Any]:
        """Queue env_sync: content down from `source` into `env` (never into production)."""
        names.validate_site(site), names.validate_env(env), names.validate_env(source)
        if env == names.DEFAULT_ENV:
            raise ValidationError("content only comes down: production is never overwritten by a sync",
                                  details={"env": env})
        if env == source:
            raise ValidationError(f"environment {site}/{env} cannot be synced from itself",
                                  details={"env": env})
        if not isinstance(database, bool) or not isinstance(uploads, bool) or not (database or uploads):
            raise ValidationError("sync the database, the uploads or both")
        detail = {"source": source, "database": database, "uploads": uploads}
        with self._mutation("env.sync", f"env:{site}_{env}", detail) as (session, audit):
            site_row = self._site(session, site)
            rows = _active_envs(session, site_row, (env, source), "a sync needs it active")
            payload = {"pressluft_source_env": source, "pressluft_sync_db": database,
                       "pressluft_sync_uploads": uploads}
            job = queue.enqueue(session, env_jobs.SYNC_JOB_TYPE, site=site_row, env=rows[env],
                                payload=payload, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "source": source,
                    "copied": [k for k, on in (("database", database), ("uploads", uploads)) if on]}


def _active_envs(
    session: Session, site_row: Site, wanted: tuple[str, ...], needs: str
) -> dict[str, Environment]:
    """The site's environments by name; each wanted one exists (NotFound) and is active (ConflictError)."""
    rows = {e.name: e for e in session.scalars(select(Environment).where(Environment.site_id == site_row.id))}
    for name in wanted:
        row = rows.get(name)
        if row is None or row.state == ResourceState.DELETED:
            raise NotFound(f"site {site_row.name} has no environment {name}",
                           details={"site": site_row.name, "env": name})
        if row.state != ResourceState.ACTIVE:
            raise ConflictError(f"environment {site_row.name}/{name} is {row.state}: {needs}",
                                details={"env": name, "state": row.state})
    return rows
