"""What every ControlPlane mixin shares: the database, the audited actor, the audited transaction."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from pressluft_lib.errors import NotFound, PressluftError, ValidationError
from pressluft_lib.storage import db
from pressluft_lib.storage.models import AuditLog, FloatingIp, Node, Provider, Site, utcnow

_VAR_RE_HINT = "KEY=VALUE with KEY a lowercase identifier"


def iso(value) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def parse_vars(pairs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """`KEY=VALUE` strings into a dict; which keys a job type accepts is jobtypes' allowlist."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        bad_key = not key.isidentifier() or key != key.lower() or key.startswith("_") or not key.isascii()
        if not sep or bad_key:
            raise ValidationError(f"invalid variable {key[:100]!r}: expected {_VAR_RE_HINT}")
        if len(value) > 1000 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValidationError(f"invalid value of {key}: one line of at most 1000 characters")
        out[key] = value
    return out


class ServiceBase:
    """One control-plane database and the actor whose calls are audited."""

    def __init__(self, url: str | None = None, actor: str | None = None):
        self.url = url or db.default_url()
        self.session_factory = db.session_factory(self.url)
        self.actor = actor or f"{getpass.getuser()}@cli"

    @contextmanager
    def _mutation(
        self, action: str, target: str, detail: dict | None = None
    ) -> Iterator[tuple[Session, dict]]:
        """A transaction that ends with an audit row; a refused call is audited on its own."""
        result: dict[str, Any] = {"result": "ok", "detail": dict(detail or {})}
        try:
            with self.session_factory.begin() as session:
                yield session, result
                session.execute(
                    insert(AuditLog).values(
                        actor=self.actor,
                        action=action,
                        target=target,
                        result=result["result"],
                        detail=result["detail"],
                        created_at=utcnow(),
                    )
                )
        except PressluftError as exc:
            with self.session_factory.begin() as session:
                session.execute(
                    insert(AuditLog).values(
                        actor=self.actor,
                        action=action,
                        target=target,
                        result=exc.code,
                        detail={**result["detail"], "error": exc.message},
                        created_at=utcnow(),
                    )
                )
            raise

    def _node(self, session: Session, name: str) -> Node:
        node = session.scalar(select(Node).where(Node.name == name))
        if node is None:
            raise NotFound(f"node {name!r} does not exist", details={"node": name})
        return node

    @staticmethod
    def _floating_ip(session: Session, site_row: Site) -> FloatingIp | None:
        return session.scalar(select(FloatingIp).where(FloatingIp.site_id == site_row.id))

    @staticmethod
    def _floating_ip_payload(session: Session, fip: FloatingIp) -> dict[str, Any]:
        """The site's floating IP as a job that switches or releases it gets it (the token comes with the
        job's provider secrets)."""
        return {
            "pressluft_floating_ip": fip.name,
            "pressluft_floating_ip_address": fip.address,
            "pressluft_api_endpoint": session.get(Provider, fip.provider_id).api_endpoint,
        }

    def _site(self, session: Session, name: str) -> Site:
        site = session.scalar(Site.by_name(name))
        if site is None:
            raise NotFound(f"site {name!r} does not exist", details={"site": name})
        return site
