"""ControlPlane methods for domains: add, remove, list, renew and the renewal scheduler (docs/domains.md).

Each call changes the environment's domain rows and queues the job that converges the node to them
in one transaction (jobs/domains.py): a refused call (bad name, name taken, site busy) changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from pressluft_lib import names, queue
from pressluft_lib.errors import ConflictError, NotFound, PressluftError, ValidationError
from pressluft_lib.jobs import domains as dj
from pressluft_lib.services.base import ServiceBase, iso
from pressluft_lib.states import DomainRole, DomainState, TlsState
from pressluft_lib.storage.models import Domain, Environment, Job, Site, utcnow

MAX_NAMES = 100  # one certificate covers at most 100 names (Let's Encrypt's limit)


def _www_name(name: str) -> str:
    return name[4:] if name.startswith("www.") else f"www.{name}"


def _domain_dict(d: Domain, site: str, env: str) -> dict[str, Any]:
    return {
        "site": site, "env": env, "name": d.name, "role": d.role, "state": d.state,
        "tls_state": d.tls_state, "tls_expires_at": iso(d.tls_expires_at), "hsts": d.hsts,
        "tls_error": d.tls_error,
    }


class DomainsMixin(ServiceBase):
    """ControlPlane methods for domains."""

    def domain_add(
        self, site: str, env: str, name: str, redirect_from: list[str] | None = None, www: str = "none",
        hsts: bool = False, force: bool = False,
    ) -> dict[str, Any]:
        """NAME becomes the environment's canonical name (or stays it), each ALIAS answers with a 301 to
        it, `www` adds www.NAME as an alias (redirect) or a served name (serve). Queues domain_add."""
        names.validate_env_pair(site, env)
        canonical = names.normalize_domain(name)
        aliases = [names.normalize_domain(a) for a in redirect_from or ()]
        if www not in dj.WWW_MODES:
            raise ValidationError(f"--www must be one of {', '.join(dj.WWW_MODES)}, not {www!r}")
        for flag, value in (("hsts", hsts), ("force", force)):
            if not isinstance(value, bool):
                raise ValidationError(f"{flag} must be true or false")
        wanted = {canonical: DomainRole.CANONICAL, **{a: DomainRole.ALIAS for a in aliases}}
        if www != "none":
            role = DomainRole.ALIAS if www == "redirect" else DomainRole.SERVE
            wanted.setdefault(_www_name(canonical), role)
        if canonical in aliases:
            raise ValidationError(f"{canonical} cannot be its own alias")
        detail = {"env": env, "name": canonical, "aliases": aliases, "www": www, "hsts": hsts,
                  "force": force}
        with self._mutation("domain.add", f"env:{site}_{env}", detail) as (session, audit):
            site_row, env_row = dj.env_rows(session, site, env)
            rows = dj.live(session, env_row.id)
            current = next((d for d in rows if d.role == DomainRole.CANONICAL), None)
            if current is not None and current.name != canonical:
                raise ValidationError(
                    f"{site}/{env} already has the canonical name {current.name}; add {canonical} as an "
                    f"alias (domain add {site}/{env} {current.name} --redirect-from {canonical}) or remove "
                    f"{current.name} first",
                    details={"canonical": current.name},
                )
            taken = session.execute(
                select(Domain.name, Site.name, Environment.name)
                .join(Environment, Domain.env_id == Environment.id).join(Site, Environment.site_id == Site.id)
                .where(Domain.name.in_(list(wanted)), Domain.env_id != env_row.id)
            ).all()
            if taken:
                where = ", ".join(f"{d} ({s}/{e})" for d, s, e in sorted(taken))
                raise ConflictError(
                    f"domain already in use: {where}", details={"domains": [t[0] for t in taken]}
                )
            by_name = {d.name: d for d in session.scalars(select(Domain).where(Domain.env_id == env_row.id))}
            changed_list = False
            for dname, role in wanted.items():
                row = by_name.get(dname)
                if row is None:
                    session.add(Domain(env_id=env_row.id, name=dname, role=role, state=DomainState.PENDING,
                                       tls_state=TlsState.PENDING))
                    changed_list = True
                    continue
                if row.state == DomainState.REMOVED:  # added back before its removal ran
                    row.state = DomainState.PENDING
                    changed_list = True
                row.role = role
                if row.tls_state is None:  # a name site_create gave now wants a certificate
                    row.tls_state, changed_list = TlsState.PENDING, True
                elif row.tls_state == TlsState.FAILED:
                    row.tls_state = TlsState.PENDING
            if len({*by_name, *wanted}) > MAX_NAMES:
                raise ValidationError(f"an environment has at most {MAX_NAMES} domains")
            if changed_list:
                dj.mark_reissue([d for d in rows if d.name not in wanted])
            session.flush()
            canon_row = session.scalar(
                select(Domain).where(Domain.env_id == env_row.id, Domain.name == canonical)
            )
            canon_row.hsts = hsts
            payload = {"pressluft_domain_force": True} if force else {}
            job = queue.enqueue(session, "domain_add", site=site_row, env=env_row, payload=payload,
                                actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "canonical": canonical,
                    "aliases": sorted(n for n, r in wanted.items() if r == DomainRole.ALIAS),
                    "served": sorted(n for n, r in wanted.items() if r == DomainRole.SERVE),
                    "hsts": hsts, "force": force}

    def domain_remove(self, site: str, env: str, domains: list[str]) -> dict[str, Any]:
        """Stop serving the names; the certificate is re-issued without them. Queues domain_remove."""
        names.validate_env_pair(site, env)
        gone = sorted({names.normalize_domain(n) for n in domains})
        if not gone:
            raise ValidationError("name at least one domain to remove")
        detail = {"env": env, "names": gone}
        with self._mutation("domain.remove", f"env:{site}_{env}", detail) as (session, audit):
            site_row, env_row = dj.env_rows(session, site, env)
            all_rows = {
                d.name: d for d in session.scalars(select(Domain).where(Domain.env_id == env_row.id))
            }
            missing = [n for n in gone if n not in all_rows]
            if missing:
                raise NotFound(
                    f"{site}/{env} has no domain {', '.join(missing)}", details={"domains": missing}
                )
            rest = [d for d in dj.live(session, env_row.id) if d.name not in gone]
            canonical = next((d for d in all_rows.values() if d.role == DomainRole.CANONICAL), None)
            aliases_left = [d.name for d in rest if d.role == DomainRole.ALIAS]
            if canonical is not None and canonical.name in gone and aliases_left:
                raise ValidationError(
                    f"{canonical.name} is the canonical name its aliases redirect to: remove them too "
                    f"({', '.join(aliases_left)})"
                )
            if not any(d.role != DomainRole.ALIAS for d in rest):
                raise ValidationError(
                    f"{site}/{env} keeps at least one name it serves; add another before removing "
                    f"{', '.join(gone)}"
                )
            for n in gone:
                all_rows[n].state = DomainState.REMOVED
            dj.mark_reissue(rest)
            job = queue.enqueue(session, "domain_remove", site=site_row, env=env_row, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "removed": gone,
                    "remaining": [d.name for d in rest]}

    def domain_renew(self, site: str, env: str) -> dict[str, Any]:
        """Order a new certificate for the environment's names now. Queues domain_renew."""
        names.validate_env_pair(site, env)
        with self._mutation("domain.renew", f"env:{site}_{env}", {"env": env}) as (session, audit):
            site_row, env_row = dj.env_rows(session, site, env)
            rows = [d for d in dj.live(session, env_row.id) if d.tls_state is not None]
            if not rows:
                raise NotFound(f"{site}/{env} has no domain with a certificate", details={"site": site})
            dj.mark_reissue(rows)
            job = queue.enqueue(session, "domain_renew", site=site_row, env=env_row,
                                payload={"pressluft_domain_renew": True}, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "env": env, "names": [d.name for d in rows]}

    def domain_list(self, site: str | None = None, env: str | None = None) -> list[dict[str, Any]]:
        if site is not None:
            names.validate_site(site)
        if env is not None:
            names.validate_env(env)
        with self.session_factory() as session:
            stmt = (
                select(Domain, Site.name, Environment.name)
                .join(Environment, Domain.env_id == Environment.id).join(Site, Environment.site_id == Site.id)
                .order_by(Site.name, Environment.name, Domain.role != DomainRole.CANONICAL, Domain.id)
            )
            if site is not None:
                stmt = stmt.where(Site.name == site)
            if env is not None:
                stmt = stmt.where(Environment.name == env)
            return [_domain_dict(d, s, e) for d, s, e in session.execute(stmt)]

    def domain_schedule(self, dry_run: bool = False, now: datetime | None = None) -> dict[str, Any]:
        """Queue a renewal of every environment whose certificate expires within 30 days, through the
        site lock: one job per site per call; busy sites are skipped and come back on the next call."""
        now = now or utcnow()
        with self.session_factory() as session:
            found = [(s.name, e.name, s.id, exp) for s, e, exp in dj.due(session, now)]
            holders = {
                sid: session.scalar(select(Job).where(Job.lock_key == f"site:{sid}"))
                for _s, _e, sid, _x in found
            }
        enqueued: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for site, env, sid, expiry in found:
            item = {"site": site, "env": env, "expires_at": iso(expiry)}
            holder = holders[sid]
            if holder is not None:
                reason = f"job {holder.id} ({holder.type}) holds the site"
                skipped.append({**item, "skipped": "busy", "reason": reason})
            elif dry_run:
                enqueued.append({**item, "job_id": None})
            else:
                try:
                    enqueued.append({**item, "job_id": self.domain_renew(site, env)["job_id"]})
                except PressluftError as exc:  # lost a race for the lock, or the site is not active
                    skipped.append({**item, "skipped": exc.code, "reason": exc.message})
        return {"enqueued": enqueued, "skipped": skipped, "dry_run": dry_run}
