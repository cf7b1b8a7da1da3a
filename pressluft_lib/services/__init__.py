"""Use cases the CLI (and any other front end) calls. Every mutating call writes an audit_log row.

Inputs are validated (schemas) before anything is written; a refused call changes nothing except
its audit row (result = the error code). Results are plain JSON-ready dicts.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pressluft_lib import names, queue, schemas
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.services.backups import BackupsMixin
from pressluft_lib.services.releases import ReleasesMixin
from pressluft_lib.states import JOB_ACTIVE
from pressluft_lib.storage.models import AuditLog, Domain, Environment, Job, JobEvent, Node, Site
from pressluft_lib.storage.secret_store import SecretStore
from pressluft_lib.storage.transitions import transition

# Generated per environment at site creation; the runner passes them as pressluft_<name>.
ENV_SECRETS = ("db_password", "wordpress_admin_password")
_VAR_RE_HINT = "KEY=VALUE with KEY a lowercase identifier"


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def node_dict(n: Node) -> dict[str, Any]:
    return {
        "name": n.name,
        "host": n.host,
        "port": n.port,
        "user": n.user,
        "ssh_key_path": n.ssh_key_path,
        "local": n.local,
        "provider": n.provider,
        "roles": list(n.roles or []),
        "state": n.state,
        "created_at": _iso(n.created_at),
    }


def job_dict(j: Job, session: Session | None = None) -> dict[str, Any]:
    out = {
        "id": j.id,
        "type": j.type,
        "state": j.state,
        "attempts": j.attempts,
        "worker_id": j.worker_id,
        "fencing_token": j.fencing_token,
        "cancel_requested": j.cancel_requested,
        "error_code": j.error_code,
        "error_message": j.error_message,
        "actor": j.actor,
        "payload": j.payload or {},
        "created_at": _iso(j.created_at),
        "started_at": _iso(j.started_at),
        "finished_at": _iso(j.finished_at),
    }
    if session is not None:
        out["site"] = session.scalar(select(Site.name).where(Site.id == j.site_id)) if j.site_id else None
        out["env"] = (
            session.scalar(select(Environment.name).where(Environment.id == j.env_id)) if j.env_id else None
        )
        out["node"] = session.scalar(select(Node.name).where(Node.id == j.node_id)) if j.node_id else None
    return out


def event_dict(e: JobEvent) -> dict[str, Any]:
    return {"seq": e.seq, "kind": e.kind, "data": e.data, "created_at": _iso(e.created_at)}


def parse_vars(pairs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """`KEY=VALUE` strings into a payload dict (secret-looking keys are refused by the queue)."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier() or key != key.lower() or key.startswith("_"):
            raise ValidationError(f"invalid variable {pair!r}: expected {_VAR_RE_HINT}")
        out[key] = value
    return out


class ControlPlane(BackupsMixin, ReleasesMixin):
    """One control-plane database and the actor whose calls are audited (plumbing in services/base.py)."""

    # -- nodes ----------------------------------------------------------------------------
    def node_add(
        self,
        name: str,
        host: str | None = None,
        port: int = 22,
        user: str = "root",
        ssh_key: str | None = None,
        local: bool = False,
    ) -> dict[str, Any]:
        if ssh_key is not None:
            key = Path(ssh_key).expanduser().absolute()
            if not key.is_file():
                raise ValidationError(
                    f"SSH key {ssh_key!r} is not a readable file", details={"ssh_key": ssh_key}
                )
            ssh_key = str(key)
        if host is None and not local:
            raise ValidationError("a node needs --host (or --local for this machine)")
        spec = schemas.parse(
            schemas.NodeCreate,
            {
                "name": name,
                "host": host or "localhost",
                "port": port,
                "user": user,
                "ssh_key_path": ssh_key,
                "local": local,
                "provider": "local" if local else "static",
            },
        )
        with self._mutation("node.add", f"node:{name}") as (session, audit):
            if session.scalar(select(Node.id).where(Node.name == spec.name)) is not None:
                raise ConflictError(f"node {spec.name!r} already exists", details={"node": spec.name})
            node = Node(**spec.model_dump(), state="pending")
            session.add(node)
            session.flush()
            audit["detail"] = {"host": spec.host, "port": spec.port, "local": spec.local}
            return node_dict(node)

    def node_list(self) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            counts = dict(
                session.execute(
                    select(Site.node_id, func.count()).where(Site.state != "deleted").group_by(Site.node_id)
                ).all()
            )
            return [
                {**node_dict(n), "sites": counts.get(n.id, 0)}
                for n in session.scalars(select(Node).order_by(Node.name))
            ]

    def node_show(self, name: str) -> dict[str, Any]:
        with self.session_factory() as session:
            node = self._node(session, name)
            sites = session.scalars(
                select(Site.name).where(Site.node_id == node.id, Site.state != "deleted").order_by(Site.name)
            ).all()
            return {**node_dict(node), "sites": list(sites)}

    def node_remove(self, name: str) -> dict[str, Any]:
        with self._mutation("node.remove", f"node:{name}") as (session, audit):
            node = self._node(session, name)
            live = session.scalars(
                select(Site.name).where(Site.node_id == node.id, Site.state != "deleted")
            ).all()
            if live:
                raise ConflictError(
                    f"node {name} still hosts sites: {', '.join(sorted(live))}", details={"sites": list(live)}
                )
            busy = session.scalar(select(Job.id).where(Job.node_id == node.id, Job.state.in_(JOB_ACTIVE)))
            if busy is not None:
                raise ConflictError(f"node {name} has an active job ({busy})", details={"job_id": busy})
            referenced = session.scalar(select(func.count()).select_from(Job).where(Job.node_id == node.id))
            referenced += session.scalar(
                select(func.count()).select_from(Site).where(Site.node_id == node.id)
            )
            if referenced:  # keep the row for the job history
                transition(session, node, "removed", actor=self.actor)
                audit["result"] = "removed"
            else:
                session.delete(node)
                audit["result"] = "deleted"
            return {"name": name, "state": "removed"}

    def node_provision(self, name: str, variables: dict[str, str] | None = None) -> dict[str, Any]:
        with self._mutation("node.provision", f"node:{name}") as (session, audit):
            node = self._node(session, name)
            if node.state == "removed":
                raise ConflictError(f"node {name} is removed")
            job = queue.enqueue(
                session, "node_provision", node=node, payload=variables or {}, actor=self.actor
            )
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "node": name}

    # -- sites ----------------------------------------------------------------------------
    def site_create(
        self,
        name: str,
        node: str,
        php_version: str | None = None,
        domains: list[str] | None = None,
        env: str = "production",
        variables: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        spec = schemas.parse(
            schemas.SiteCreate,
            {
                "name": name,
                "node": node,
                "env": env,
                "domains": list(domains or []),
                "php_version": php_version,
            },
        )
        domains = spec.effective_domains()
        with self._mutation("site.create", f"site:{spec.name}", {"node": node, "domains": domains}) as (
            session,
            audit,
        ):
            target = self._node(session, spec.node)
            if target.state != "active":
                raise ConflictError(
                    f"node {target.name} is {target.state}; sites need an active (provisioned) node",
                    details={"node": target.name, "state": target.state},
                )
            existing = session.scalar(select(Site).where(Site.name == spec.name))
            if existing is not None:
                raise ConflictError(
                    f"site {spec.name} already exists ({existing.state})", details={"site": spec.name}
                )
            taken = session.scalars(select(Domain.name).where(Domain.name.in_(domains))).all()
            if taken:
                raise ConflictError(
                    f"domain already in use: {', '.join(sorted(taken))}", details={"domains": taken}
                )
            site = Site(name=spec.name, node_id=target.id, state="creating", php_version=spec.php_version)
            session.add(site)
            session.flush()
            environment = Environment(
                site_id=site.id, name=spec.env, state="creating", php_version=spec.php_version
            )
            session.add(environment)
            session.flush()
            session.add_all([Domain(env_id=environment.id, name=d, state="pending") for d in domains])
            session.flush()
            self._generate_env_secrets(session, spec.name, spec.env)
            job = queue.enqueue(
                session, "site_create", site=site, env=environment, payload=variables or {}, actor=self.actor
            )
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "site": spec.name,
                "env": spec.env,
                "node": target.name,
                "domains": domains,
            }

    def _generate_env_secrets(self, session: Session, site: str, env: str) -> None:
        store = SecretStore(url=self.url)
        for secret in ENV_SECRETS:
            store.put(session, names.env_secret_scope(site, env), secret, secrets.token_urlsafe(24))

    def site_list(self) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            rows = session.execute(
                select(Site, Node.name).join(Node, Node.id == Site.node_id).order_by(Site.name)
            ).all()
            return [
                {
                    "name": s.name,
                    "node": node,
                    "state": s.state,
                    "php_version": s.php_version,
                    "created_at": _iso(s.created_at),
                }
                for s, node in rows
            ]

    def site_show(self, name: str) -> dict[str, Any]:
        with self.session_factory() as session:
            site = self._site(session, name)
            envs = []
            for e in session.scalars(
                select(Environment).where(Environment.site_id == site.id).order_by(Environment.name)
            ):
                domains = session.scalars(
                    select(Domain.name).where(Domain.env_id == e.id).order_by(Domain.id)
                ).all()
                envs.append(
                    {
                        "name": e.name,
                        "state": e.state,
                        "php_version": e.php_version or site.php_version,
                        "domains": list(domains),
                    }
                )
            return {
                "name": site.name,
                "node": site.node.name,
                "state": site.state,
                "php_version": site.php_version,
                "fencing_token": site.last_fencing_token,
                "environments": envs,
                "created_at": _iso(site.created_at),
            }

    def site_delete(self, name: str) -> dict[str, Any]:

        names.validate_site(name)
        with self._mutation("site.delete", f"site:{name}") as (session, audit):
            site = self._site(session, name)
            env = session.scalar(
                select(Environment).where(
                    Environment.site_id == site.id, Environment.name == names.DEFAULT_ENV
                )
            )
            if env is None:
                raise NotFound(f"site {name} has no {names.DEFAULT_ENV} environment")
            # The env is marked by the queue; the site goes down with it (both settle on finish).
            job = queue.enqueue(session, "site_delete", site=site, env=env, actor=self.actor)
            if site.state != "deleting":
                transition(session, site, "deleting", actor=self.actor, event={"job_id": job.id})
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": name}

    def reset_site(self, name: str) -> dict[str, Any]:
        with self._mutation("site.reset", f"site:{name}") as (session, _audit):
            site = queue.reset_site(session, name, actor=self.actor)
            return {"site": site.name, "state": site.state}

    def reset_env(self, site: str, env: str) -> dict[str, Any]:
        with self._mutation("env.reset", f"env:{site}_{env}") as (session, _audit):
            obj = queue.reset_env(session, site, env, actor=self.actor)
            return {"site": site, "env": obj.name, "state": obj.state}

    # -- jobs -----------------------------------------------------------------------------
    def jobs_list(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        flt = schemas.parse(schemas.JobFilter, {"state": [state] if state else None, "limit": limit})
        with self.session_factory() as session:
            stmt = select(Job).order_by(Job.id.desc()).limit(flt.limit)
            if flt.state:
                stmt = stmt.where(Job.state.in_(flt.state))
            return [job_dict(j, session) for j in session.scalars(stmt)]

    def job_show(self, job_id: int) -> dict[str, Any]:
        with self.session_factory() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
            return {
                **job_dict(job, session),
                "events": [event_dict(e) for e in queue.events(session, job_id)],
            }

    def job_events(self, job_id: int, after_seq: int = 0) -> tuple[str, list[dict[str, Any]]]:
        """(job state, events after `after_seq`) for following a job."""
        with self.session_factory() as session:
            state = session.scalar(select(Job.state).where(Job.id == job_id))
            if state is None:
                raise NotFound(f"job {job_id} does not exist", details={"job_id": job_id})
            return state, [event_dict(e) for e in queue.events(session, job_id, after_seq)]

    def job_cancel(self, job_id: int) -> dict[str, Any]:
        with self._mutation("job.cancel", f"job:{job_id}") as (session, audit):
            job = queue.request_cancel(session, job_id, actor=self.actor)
            audit["result"] = job.state if job.state == "cancelled" else "cancel_requested"
            return {"job_id": job_id, "state": job.state, "cancel_requested": bool(job.cancel_requested)}

    # -- audit ----------------------------------------------------------------------------
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
                    "created_at": _iso(a.created_at),
                }
                for a in rows
            ]
