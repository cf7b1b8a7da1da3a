"""ControlPlane use cases for backups (mixed into services.ControlPlane): create, list, show, restore,
retention, repository settings, cleanup and the scheduler.

Every call validates its input before it writes; a refused call writes nothing but its audit row.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names, queue, schemas, urls
from pressluft_lib.errors import ConflictError, NotFound, PressluftError, ValidationError
from pressluft_lib.jobs import backups, env_rows, require_active
from pressluft_lib.services.base import ServiceBase, iso
from pressluft_lib.states import BackupState, NodeState, ResourceState
from pressluft_lib.storage.models import Backup, Environment, Job, Site, utcnow
from pressluft_lib.storage.secret_store import SecretStore
from pressluft_lib.storage.transitions import transition

# Local paths, sftp:, s3:, rest: (restic's own syntax); no whitespace, no password in the URL.
_REPO_RE = re.compile(r"(/|local:/|sftp:|s3:https?://|rest:https?://)[^\s\x00-\x1f]{1,1000}")


def backup_dict(row: Backup, site: str, env: str, full: bool = False) -> dict[str, Any]:
    m = row.manifest or {}
    node_manifest = m.get("manifest") if isinstance(m.get("manifest"), dict) else {}
    # The node's manifest as it returned it: format 1 (backups taken before format 2) spells the
    # list 'artefacts'; the row keeps the copy verbatim, like the manifest file it mirrors.
    artifacts = node_manifest.get("artifacts") or node_manifest.get("artefacts") or {}
    sizes = [
        a.get("size")
        for a in (artifacts.values() if isinstance(artifacts, dict) else artifacts)
        if isinstance(a, dict) and isinstance(a.get("size"), int)
    ]
    out = {
        "id": m.get("backup_id") or backups.make_id(row),
        "site": site,
        "env": env,
        "scope": row.scope,
        "state": row.state,
        "trigger": m.get("trigger"),
        "include_core": bool(m.get("include_core")),
        "job_id": m.get("job_id"),
        "location": row.location,
        "repository": m.get("repository"),
        "restic_snapshot": m.get("restic_snapshot"),
        "size_bytes": sum(sizes) if sizes else None,
        "error": m.get("error"),
        "created_at": iso(row.created_at),
        "completed_at": m.get("completed_at"),
    }
    if full:
        out.update(
            manifest=m.get("manifest"), restic_data_added=m.get("restic_data_added"), restore=m.get("restore")
        )
    return out


def _check_repository(url: str) -> str:
    if isinstance(url, str):
        urls.refuse_credentials(
            url, "repository URL", "use --password-stdin and the S3 key options, or sftp:user@host:/path"
        )
    if not isinstance(url, str) or not _REPO_RE.fullmatch(url):
        raise ValidationError(
            "invalid restic repository: an absolute path, sftp:user@host:/path, s3:https://host/bucket "
            "or rest:https://host/path",
            details={"repository": "<refused>"},
        )
    return url


class BackupsMixin(ServiceBase):
    """ControlPlane methods for backups, restores, retention and the backup repository."""

    # -- helpers ------------------------------------------------------------------------------
    def _env(self, session: Session, site: str, env: str) -> tuple[Site, Environment]:
        names.validate_site(site)
        names.validate_env(env)
        return env_rows(session, site, env)

    def _repository(self, session: Session) -> str | None:
        store = SecretStore(url=self.url)
        if backups.REPO_URL not in store.names(session, backups.REPO_SCOPE):
            return None
        return store.get(session, backups.REPO_SCOPE, backups.REPO_URL)

    def _enqueue_backup(
        self, session: Session, site: Site, env: Environment, scope: str, include_core: bool, trigger: str
    ) -> tuple[Backup, Job]:
        repository = self._repository(session)
        row = backups.new_row(session, env, scope, trigger, include_core, repository)
        payload: dict[str, Any] = {
            "pressluft_backup_id": backups.make_id(row),
            "pressluft_backup_scope": scope,
            "pressluft_backup_include_core": bool(include_core),
        }
        if repository:
            payload["pressluft_restic_repository"] = repository
        job = queue.enqueue(session, "backup_create", site=site, env=env, payload=payload, actor=self.actor)
        backups.set_job(session, row, job.id)
        return row, job

    # -- backups ------------------------------------------------------------------------------
    def backup_create(
        self,
        site: str,
        env: str = names.DEFAULT_ENV,
        scope: str = "full",
        include_core: bool | None = None,
        trigger: str = "manual",
    ) -> dict[str, Any]:
        if scope not in backups.SCOPES:
            raise ValidationError(f"invalid backup scope {scope!r}: one of {', '.join(backups.SCOPES)}")
        if include_core is None:
            # A full backup holds the live release so that it can rebuild the environment on another
            # node (restore --to); restic stores an unchanged release once (docs/move.md).
            include_core = scope == "full"
        if not isinstance(include_core, bool):
            raise ValidationError("include_core must be true or false")
        names.validate_site(site), names.validate_env(env)  # refused input leaves no audit row
        with self._mutation("backup.create", f"env:{site}_{env}", {"scope": scope}) as (session, audit):
            site_row, env_row = self._env(session, site, env)
            require_active(site_row, env_row, "a backup needs it active")
            row, job = self._enqueue_backup(session, site_row, env_row, scope, include_core, trigger)
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "backup_id": backups.make_id(row),
                "site": site,
                "env": env,
                "scope": scope,
                "include_core": include_core,
            }

    def backup_list(self, site: str | None = None, env: str | None = None) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            stmt = (
                select(Backup, Site.name, Environment.name)
                .join(Environment, Environment.id == Backup.env_id)
                .join(Site, Site.id == Environment.site_id)
                .where(Backup.state != BackupState.DELETED)
            )
            if site is not None:
                names.validate_site(site)
                self._site(session, site)
                stmt = stmt.where(Site.name == site)
            if env is not None:
                stmt = stmt.where(Environment.name == names.validate_env(env))
            rows = session.execute(stmt.order_by(Backup.created_at.desc(), Backup.id.desc())).all()
            return [backup_dict(b, s, e) for b, s, e in rows]

    def backup_show(self, ref: str) -> dict[str, Any]:
        with self.session_factory() as session:
            row = backups.get_row(session, ref)
            return backup_dict(row, row.environment.site.name, row.environment.name, full=True)

    def restore(self, site: str, env: str, ref: str) -> dict[str, Any]:
        names.validate_site(site), names.validate_env(env), backups.parse_ref(ref)
        with self._mutation("env.restore", f"env:{site}_{env}", {"backup": str(ref)}) as (session, audit):
            site_row, env_row = self._env(session, site, env)
            source = backups.get_row(session, ref)
            source_id = backups.make_id(source)
            backups.check_restore_source(source, env_row)
            require_active(site_row, env_row, "a restore needs it active")
            repository = self._repository(session)
            pre = backups.new_row(session, env_row, "full", "pre_restore", True, repository)
            payload: dict[str, Any] = {
                "pressluft_backup_id": source_id,
                "pressluft_pre_restore_backup_id": backups.make_id(pre),
                "pressluft_backup_scope": source.scope,
            }
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(
                session, "env_restore", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            backups.set_job(session, pre, job.id)
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "site": site,
                "env": env,
                "backup_id": source_id,
                "pre_restore_backup_id": backups.make_id(pre),
            }

    def _move_checks(self, session: Session, site_row: Site, env_row: Environment, node: str, what: str):
        """The checks restore --to and site move share; returns (target node row, repository URL)."""
        target = self._node(session, node)
        if target.id == site_row.node_id:
            raise ConflictError(
                f"node {target.name} already holds site {site_row.name}: {what} needs another node",
                details={"node": target.name},
            )
        if target.state != NodeState.ACTIVE:
            raise ConflictError(
                f"node {target.name} is {target.state}: {what} needs an active node",
                details={"node": target.name, "state": target.state},
            )
        others = sorted(
            e.name for e in site_row.environments if e.id != env_row.id and e.state != ResourceState.DELETED
        )
        if others:
            # The site (and so every environment of it) is recorded on one node.
            raise ConflictError(
                f"site {site_row.name} has other environments ({', '.join(others)}): delete them, "
                f"{what} {env_row.name}, then create them again from it (env create)",
                details={"environments": others},
            )
        # A node that is gone leaves its environments active; one a job failed on needs `reset env`.
        require_active(site_row, env_row, f"{what} needs it active")
        repository = self._repository(session)
        if not repository:
            raise ConflictError(f"no backup repository is set: {what} goes through the off-site copy")
        return target, repository

    def restore_to(self, site: str, env: str, node: str, ref: str) -> dict[str, Any]:
        """Disaster recovery: queue env_rebuild, which rebuilds SITE/ENV on `node` from the off-site copy
        of a full backup alone (its source node may be gone); the site moves to `node` when it succeeds."""
        names.validate_site(site), names.validate_env(env), backups.parse_ref(ref)
        if not isinstance(node, str) or not node:
            raise ValidationError("restore --to needs a node name")
        detail = {"backup": str(ref), "node": node}
        with self._mutation("env.rebuild", f"env:{site}_{env}", detail) as (session, audit):
            site_row, env_row = self._env(session, site, env)
            source = backups.get_row(session, ref)
            source_id = backups.make_id(source)
            backups.check_rebuild_source(source, env_row)
            target, repository = self._move_checks(session, site_row, env_row, node, "restore --to")
            payload = {"pressluft_backup_id": source_id, "pressluft_restic_repository": repository}
            # The site's floating IP follows it when the target can take it (a server of the same provider
            # account). A recovery is never refused for it: without, the result says the IP stays put.
            fip, fip_note = self._floating_ip(session, site_row), None
            if fip is not None and (target.provider_id != fip.provider_id or target.cloud is None):
                fip_note = (f"floating IP {fip.name} stays where it is: node {target.name} is not a server "
                            "of its provider account; point DNS at the node")
            elif fip is not None:
                payload |= self._floating_ip_payload(session, fip)
            job = queue.enqueue(
                session, "env_rebuild", site=site_row, env=env_row, node=target, payload=payload,
                actor=self.actor,
            )
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "site": site,
                "env": env,
                "node": target.name,
                "from_node": site_row.node.name,
                "backup_id": source_id,
                "floating_ip": None if fip is None else {"name": fip.name, "address": fip.address,
                                                         "switched": fip_note is None, "note": fip_note},
            }

    def site_move(self, site: str, node: str, env: str = names.DEFAULT_ENV) -> dict[str, Any]:
        """Queue site_move: the source read-only, a final full backup, the rebuild on `node`; the site
        lives on `node` when it succeeds, its old copy stays read-only until site_move_confirm."""
        names.validate_site(site), names.validate_env(env)
        if not isinstance(node, str) or not node:
            raise ValidationError("site move needs --to NODE")
        with self._mutation("site.move", f"site:{site}", {"node": node}) as (session, audit):
            site_row, env_row = self._env(session, site, env)
            pending = backups.unconfirmed_move(session, site_row)
            if pending is not None:
                raise ConflictError(
                    f"site {site} moved with job {pending.id}; confirm it first (site move {site} --confirm)",
                    details={"job_id": pending.id},
                )
            target, repository = self._move_checks(session, site_row, env_row, node, "site move")
            fip = self._floating_ip(session, site_row)
            if fip is not None and (target.provider_id != fip.provider_id or target.cloud is None):
                raise ConflictError(
                    f"site {site} has floating IP {fip.name}, which node {target.name} cannot take: a move "
                    "with a floating IP needs a node of the same provider account",
                    details={"floating_ip": fip.name, "node": target.name},
                )
            row = backups.new_row(session, env_row, "full", "pre_move", True, repository)
            payload = {
                "pressluft_backup_id": backups.make_id(row),
                "pressluft_restic_repository": repository,
                "pressluft_move_source": site_row.node.name,
                "pressluft_move_target": target.name,
            }
            if fip is not None:
                payload |= self._floating_ip_payload(session, fip)
            job = queue.enqueue(
                session, "site_move", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            backups.set_job(session, row, job.id)
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "site": site,
                "env": env,
                "node": target.name,
                "from_node": site_row.node.name,
                "backup_id": backups.make_id(row),
                "domains": [d.name for d in env_row.domains if d.state != "removed"],
                "address": target.host,
                "floating_ip": None if fip is None else {"name": fip.name, "address": fip.address},
            }

    def site_move_confirm(self, site: str) -> dict[str, Any]:
        """Queue site_move_confirm: remove the environment from the node the last site_move left."""
        names.validate_site(site)
        with self._mutation("site.move.confirm", f"site:{site}") as (session, audit):
            site_row = self._site(session, site)
            move = backups.unconfirmed_move(session, site_row)
            if move is None:
                raise ConflictError(f"site {site} has no moved copy to clean up", details={"site": site})
            old = self._node(session, move.payload["pressluft_move_source"])
            env_row = session.get(Environment, move.env_id)
            payload = {"pressluft_move_job": move.id}
            if move.payload.get("pressluft_floating_ip_address"):  # off the old node's interface too
                payload["pressluft_floating_ip_address"] = move.payload["pressluft_floating_ip_address"]
            job = queue.enqueue(
                session, "site_move_confirm", site=site_row, env=env_row, node=old, payload=payload,
                actor=self.actor,
            )
            audit["result"] = f"job:{job.id}"
            return {
                "job_id": job.id,
                "site": site,
                "env": env_row.name,
                "node": old.name,
                "move_job": move.id,
            }

    # -- retention ----------------------------------------------------------------------------
    def backup_retention(
        self, site: str, daily: int | None = None, weekly: int | None = None, monthly: int | None = None
    ) -> dict[str, Any]:
        """Show (no arguments) or change a site's retention; unset values keep their current setting."""
        change = schemas.parse(schemas.Retention, {"daily": daily, "weekly": weekly, "monthly": monthly})
        names.validate_site(site)
        if change.daily is None and change.weekly is None and change.monthly is None:
            with self.session_factory() as session:
                return self._retention_dict(self._site(session, site))
        with self._mutation("backup.retention", f"site:{site}", change.model_dump()) as (session, _audit):
            row = self._site(session, site)
            for key in ("daily", "weekly", "monthly"):
                if getattr(change, key) is not None:
                    setattr(row, f"backup_keep_{key}", getattr(change, key))
            session.flush()
            return self._retention_dict(row)

    @staticmethod
    def _retention_dict(site: Site) -> dict[str, Any]:
        p = backups.policy(site)
        return {"site": site.name, "daily": p.daily, "weekly": p.weekly, "monthly": p.monthly}

    # -- repository ---------------------------------------------------------------------------
    def backup_repo_set(
        self,
        url: str,
        password: str | None = None,
        s3_access_key_id: str | None = None,
        s3_secret_access_key: str | None = None,
    ) -> dict[str, Any]:
        _check_repository(url)
        given = {
            "restic_password": password,
            "s3_access_key_id": s3_access_key_id,
            "s3_secret_access_key": s3_secret_access_key,
        }
        for key, value in given.items():
            if value is not None and (not isinstance(value, str) or not value or "\n" in value):
                raise ValidationError(f"{key} must be a non-empty single line")
        if url.startswith("s3:") and (s3_access_key_id is None) != (s3_secret_access_key is None):
            raise ValidationError("an S3 repository needs both the access key id and the secret access key")
        with self._mutation(
            "backup.repo.set",
            "global:backup",
            {"secrets": sorted(k for k, v in given.items() if v is not None)},
        ) as (session, _audit):
            store = SecretStore(url=self.url)
            have = set(store.names(session, names.BACKUP_SECRET_SCOPE))
            if password is None and "restic_password" not in have:
                raise ValidationError("a restic repository needs a password (--password-stdin)")
            store.put(session, backups.REPO_SCOPE, backups.REPO_URL, url)
            for key, value in given.items():
                if value is not None:
                    store.put(session, names.BACKUP_SECRET_SCOPE, key, value)
            return self._repo_dict(session)

    def backup_repo_unset(self) -> dict[str, Any]:
        with self._mutation("backup.repo.unset", "global:backup") as (session, _audit):
            store = SecretStore(url=self.url)
            store.delete(session, backups.REPO_SCOPE, backups.REPO_URL)
            for key in backups.REPO_SECRETS:
                store.delete(session, names.BACKUP_SECRET_SCOPE, key)
            return self._repo_dict(session)

    def backup_repo_show(self) -> dict[str, Any]:
        with self.session_factory() as session:
            return self._repo_dict(session)

    def _repo_dict(self, session: Session) -> dict[str, Any]:
        have = set(SecretStore(url=self.url).names(session, names.BACKUP_SECRET_SCOPE))
        return {
            "repository": self._repository(session),
            **{f"{k}_set": k in have for k in backups.REPO_SECRETS},
        }

    # -- cleanup and scheduling ---------------------------------------------------------------
    def backup_cleanup(
        self, site: str, env: str = names.DEFAULT_ENV, dry_run: bool = False, now: datetime | None = None
    ) -> dict[str, Any]:
        """Expire what the retention ladder lets go and queue a backup_cleanup job removing it."""
        names.validate_site(site), names.validate_env(env)
        with self._mutation("backup.cleanup", f"env:{site}_{env}") as (session, audit):
            site_row, env_row = self._env(session, site, env)
            expiring, remove = backups.cleanup_plan(session, site_row, env_row, now)
            out: dict[str, Any] = {
                "job_id": None,
                "site": site,
                "env": env,
                "expired": [backups.make_id(r) for r in expiring],
                "remove": [backups.make_id(r) for r in remove],
            }
            if dry_run or not remove:
                audit["result"] = "dry_run" if dry_run else "nothing"
                return out
            payload: dict[str, Any] = {"pressluft_backup_remove": out["remove"]}
            repository = self._repository(session)
            if repository:
                payload["pressluft_restic_repository"] = repository
            job = queue.enqueue(
                session, "backup_cleanup", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            for r in expiring:
                transition(
                    session, r, BackupState.EXPIRED, actor=self.actor,
                    event={"job_id": job.id, "reason": "retention"},
                )
            audit["result"] = f"job:{job.id}"
            return {**out, "job_id": job.id}

    def backup_schedule(
        self,
        interval_hours: float = 24,
        sites: list[str] | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Queue due backups, else due cleanups: at most one job per site per call, busy sites skipped.

        A full backup of an environment is due when it has no pending, running or completed full
        backup taken within `interval_hours`. A failed one does not count: the next call retries.
        """
        if (
            not isinstance(interval_hours, int | float)
            or isinstance(interval_hours, bool)
            or not 0 < interval_hours <= 24 * 366
        ):
            raise ValidationError("interval must be between 0 and 8784 hours")
        interval = timedelta(hours=interval_hours)
        for name in sites or ():
            names.validate_site(name)
        now = now or utcnow()
        with self.session_factory.begin() as session:
            failed = backups.reconcile(session, actor=self.actor)
            stmt = select(Site).where(Site.state != ResourceState.DELETED).order_by(Site.name)
            if sites:
                stmt = stmt.where(Site.name.in_(sites))
            candidates = [(s.id, s.name, s.state) for s in session.scalars(stmt)]
        missing = sorted(set(sites or ()) - {name for _, name, _ in candidates})
        if missing:
            raise NotFound(f"no such site: {', '.join(missing)}", details={"sites": missing})
        enqueued: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        for site_id, name, state in candidates:
            try:
                item = self._schedule_site(site_id, name, state, interval, now, dry_run)
            except PressluftError as exc:  # lost a race for the site's lock, or a state changed
                item = {"site": name, "skipped": exc.code, "reason": exc.message}
            if item is None:
                continue
            (skipped if "skipped" in item else enqueued).append(item)
        return {"enqueued": enqueued, "skipped": skipped, "reconciled": failed, "dry_run": dry_run}

    def _schedule_site(
        self, site_id: int, name: str, state: str, interval: timedelta, now: datetime, dry_run: bool
    ) -> dict[str, Any] | None:
        if state != ResourceState.ACTIVE:
            return {"site": name, "skipped": "inactive", "reason": f"site is {state}"}
        with self.session_factory() as session:
            holder = session.scalar(select(Job).where(Job.lock_key == f"site:{site_id}"))
            if holder is not None:
                return {
                    "site": name,
                    "skipped": "busy",
                    "reason": f"job {holder.id} ({holder.type}, {holder.state}) holds the site",
                }
            envs = session.scalars(
                select(Environment).where(
                    Environment.site_id == site_id, Environment.state == ResourceState.ACTIVE
                )
            ).all()
            envs = sorted(envs, key=lambda e: (e.name != names.DEFAULT_ENV, e.name))
            due = next((e.name for e in envs if backups.due(session, e, interval, now)), None)
            site_row = session.get(Site, site_id)
            tidy = (
                None
                if due
                else next((e.name for e in envs if backups.cleanup_plan(session, site_row, e, now)[1]), None)
            )
        if due:
            if dry_run:
                return {"site": name, "env": due, "type": "backup_create", "job_id": None}
            made = self.backup_create(name, due, trigger="schedule")
            return {
                "site": name,
                "env": due,
                "type": "backup_create",
                "job_id": made["job_id"],
                "backup_id": made["backup_id"],
            }
        if tidy:
            made = self.backup_cleanup(name, tidy, dry_run=dry_run, now=now)
            return {
                "site": name,
                "env": tidy,
                "type": "backup_cleanup",
                "job_id": made["job_id"],
                "remove": made["remove"],
            }
        return None
