"""ControlPlane methods for sites: create (or retry a failed create), list, show, delete, adopt, reset."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import capacity, jobtypes, names, queue, schemas
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.services import wordpress as wordpress_source
from pressluft_lib.services.base import ServiceBase, iso
from pressluft_lib.states import DomainState, NodeState, ResourceState
from pressluft_lib.storage.models import Domain, Environment, FloatingIp, Job, Node, Site
from pressluft_lib.storage.secret_store import SecretStore
from pressluft_lib.storage.transitions import transition

# Generated per environment at site creation; the runner passes them as pressluft_<name>.
ENV_SECRETS = ("db_password", "wordpress_admin_password")


class SitesMixin(ServiceBase):
    """ControlPlane methods for sites and their environments."""

    def site_create(
        self,
        name: str,
        node: str,
        php_version: str | None = None,
        domains: list[str] | None = None,
        env: str = names.DEFAULT_ENV,
        variables: dict[str, str] | None = None,
        wordpress: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """options: title, admin_user, admin_email (and wordpress_src, wordpress_url, wordpress_checksum for
        callers that settled the source themselves). `wordpress` is a VERSION, FILE or URL (default: the
        latest release), settled here (services.wordpress) so that a bad or unreachable source queues
        nothing."""
        payload = schemas.parse(schemas.SiteOptions, options).payload()
        jobtypes.check_payload_keys(jobtypes.get("site_create"), variables or {}, user=True)
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
            if target.state != NodeState.ACTIVE:
                raise ConflictError(
                    f"node {target.name} is {target.state}; sites need an active (provisioned) node",
                    details={"node": target.name, "state": target.state},
                )
            existing = session.scalar(Site.by_name(spec.name))
            if existing is not None and existing.state != ResourceState.DELETED:
                # A site whose creation failed is created again by retrying that job (same secrets).
                job, retried = self._retry_create(
                    session, existing, target, spec, domains, {**payload, **(variables or {})}, wordpress
                )
                audit["result"] = f"job:{job.id}"
                audit["detail"]["retry_of"] = retried
                return {
                    "job_id": job.id,
                    "site": spec.name,
                    "env": spec.env,
                    "node": target.name,
                    "domains": domains,
                    "retry_of": retried,
                    "wordpress": job.payload.get("pressluft_wordpress_version"),
                }
            capacity.check(session, target)  # a new environment: refuse it now rather than break the node
            taken = session.scalars(select(Domain.name).where(Domain.name.in_(domains))).all()
            if taken:
                raise ConflictError(
                    f"domain already in use: {', '.join(sorted(taken))}", details={"domains": taken}
                )
            # After the cheap refusals, before any write: the network calls hold no write lock.
            if not set(payload) & wordpress_source.PAYLOAD_KEYS:
                payload.update(wordpress_source.resolve(wordpress))
            elif wordpress is not None:
                raise ValidationError("give --wordpress alone, not with wordpress_src/url/checksum")
            audit["detail"]["wordpress"] = payload.get("pressluft_wordpress_version")
            site = Site(
                name=spec.name, node_id=target.id, state=ResourceState.CREATING, php_version=spec.php_version
            )
            session.add(site)
            session.flush()
            environment = Environment(
                site_id=site.id, name=spec.env, state=ResourceState.CREATING, php_version=spec.php_version
            )
            session.add(environment)
            session.flush()
            session.add_all(
                [Domain(env_id=environment.id, name=d, state=DomainState.PENDING) for d in domains]
            )
            session.flush()
            self._generate_env_secrets(session, spec.name, spec.env)
            job = queue.enqueue(
                session, "site_create", site=site, env=environment, payload=payload, variables=variables,
                actor=self.actor,
            )
            audit["result"] = f"job:{job.id}"
            audit["detail"]["incarnation"] = site.incarnation
            return {
                "job_id": job.id,
                "site": spec.name,
                "env": spec.env,
                "node": target.name,
                "domains": domains,
                "wordpress": payload.get("pressluft_wordpress_version"),
            }

    def _retry_create(
        self, session: Session, site: Site, node: Node, spec: Any, domains: list[str], variables: dict,
        wordpress: str | None = None,
    ) -> tuple[Job, int]:
        """`site create` again on a site whose creation did not succeed: retry its site_create job."""
        last = session.scalar(select(Job).where(Job.site_id == site.id).order_by(Job.id.desc()).limit(1))
        if site.state != ResourceState.FAILED or last is None or last.type != "site_create":
            raise ConflictError(
                f"site {site.name} already exists ({site.state})",
                details={"site": site.name, "state": site.state},
            )
        env = session.get(Environment, last.env_id)
        have = list(session.scalars(select(Domain.name).where(Domain.env_id == env.id).order_by(Domain.id)))
        differs = [
            f"{what} {theirs} (not {ours})"
            for what, theirs, ours in (
                ("node", site.node.name, node.name),
                ("environment", env.name, spec.env),
                ("domains", ", ".join(have), ", ".join(domains)),
                ("PHP", site.php_version or "default", spec.php_version or "default"),
            )
            if theirs != ours
        ]
        if differs:
            raise ConflictError(
                f"site {site.name} failed to be created with {'; '.join(differs)}: create it again with the "
                f"same options to retry, or delete it first (`pressluft site delete {site.name}`)",
                details={"site": site.name, "job_id": last.id},
            )
        # The failed job's WordPress (the same release, checksum or archive) unless --wordpress chooses again.
        pinned = {k: v for k, v in variables.items() if k in wordpress_source.PAYLOAD_KEYS}
        if not pinned:
            pinned = {k: v for k, v in (last.payload or {}).items() if k in wordpress_source.PAYLOAD_KEYS}
            if wordpress is not None or "pressluft_wordpress_version" not in pinned:
                pinned = wordpress_source.resolve(wordpress)
        return queue.retry(session, last.id, actor=self.actor, payload={**variables, **pinned}), last.id

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
                    "created_at": iso(s.created_at),
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
                "incarnation": site.incarnation,
                "fencing_token": site.last_fencing_token,
                "environments": envs,
                "floating_ip": next(
                    ({"name": f.name, "address": f.address}
                     for f in session.scalars(select(FloatingIp).where(FloatingIp.site_id == site.id))),
                    None,
                ),
                "created_at": iso(site.created_at),
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
            # site_delete removes production only: other environments would be left on the node.
            others = sorted(session.scalars(select(Environment.name).where(
                Environment.site_id == site.id, Environment.name != names.DEFAULT_ENV,
                Environment.state != ResourceState.DELETED)))
            if others:
                raise ValidationError(f"site {name} still has environments {', '.join(others)}: "
                                      f"`pressluft env delete {name}/ENV` each first",
                                      details={"environments": others})
            fip = self._floating_ip(session, site)
            if fip is not None:  # a paid address at the provider: never left behind unnoticed
                raise ConflictError(f"site {name} has floating IP {fip.name} ({fip.address}): release it "
                                    f"first (pressluft site ip {name} --release)",
                                    details={"floating_ip": fip.name})
            # The env is marked by the queue; the site goes down with it (both settle on finish).
            job = queue.enqueue(session, "site_delete", site=site, env=env, actor=self.actor)
            if site.state != ResourceState.DELETING:
                transition(session, site, ResourceState.DELETING, actor=self.actor, event={"job_id": job.id})
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": name}

    def site_adopt(self, name: str) -> dict[str, Any]:
        """Queue a site_adopt job: the site takes over the node's fencing record (incarnation, token)."""
        with self._mutation("site.adopt", f"site:{name}") as (session, audit):
            site = self._site(session, name)
            if site.state == ResourceState.DELETED:
                raise ConflictError(f"site {name} is deleted: nothing to adopt", details={"site": name})
            job = queue.enqueue(session, "site_adopt", site=site, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            audit["detail"] = {"incarnation": site.incarnation, "fencing_token": job.fencing_token}
            return {"job_id": job.id, "site": name}

    def _reset_warning(self, session: Session, site: str, force: bool, audit: dict) -> dict[str, Any]:
        """With --force: what the reset overrode (an attempt that may still run), for the caller."""
        obj = session.scalar(Site.by_name(site)) if force else None
        running = queue.may_still_run(session, obj) if obj is not None else None
        if running is None:
            return {}
        audit["detail"]["forced"] = running
        return {"warning": f"forced: {running}"}

    def reset_site(self, name: str, force: bool = False) -> dict[str, Any]:
        with self._mutation("site.reset", f"site:{name}") as (session, audit):
            warning = self._reset_warning(session, name, force, audit)
            site = queue.reset_site(session, name, actor=self.actor, force=force)
            return {"site": site.name, "state": site.state, **warning}

    def reset_env(self, site: str, env: str, force: bool = False) -> dict[str, Any]:
        with self._mutation("env.reset", f"env:{site}_{env}") as (session, audit):
            warning = self._reset_warning(session, site, force, audit)
            obj = queue.reset_env(session, site, env, actor=self.actor, force=force)
            return {"site": site, "env": obj.name, "state": obj.state, **warning}
