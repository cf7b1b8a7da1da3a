"""Domains on the control plane: the rows a domain job converges the node to, and its `after` hook.

The rows are the desired state: `domain add/remove/renew` change them in the transaction that queues
the job (new names: tls_state pending; names kept on a certificate that must change: renewing; names
going away: state removed), the runner hands them to the playbook (runner.domain_vars), and
after_domain_job records what the node reports: the certificate's names and expiry (issued), or the
job's error (failed). Removed rows are deleted once the node no longer serves them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pressluft_lib.jobs import active_env_rows
from pressluft_lib.states import DomainState, JobState, TlsState
from pressluft_lib.storage.models import Domain, Environment, Job, Site
from pressluft_lib.storage.transitions import add_job_event

RENEW_BEFORE = timedelta(days=30)
WWW_MODES = ("none", "redirect", "serve")
DNS_MISMATCH = "domain_dns_mismatch"  # the job's error_code; the message starts DOMAIN_DNS_MISMATCH


def env_rows(session: Session, site: str, env: str) -> tuple[Site, Environment]:
    return active_env_rows(session, site, env, "domains need it active")


def live(session: Session, env_id: int) -> list[Domain]:
    return list(session.scalars(
        select(Domain).where(Domain.env_id == env_id, Domain.state != DomainState.REMOVED).order_by(Domain.id)
    ))


def mark_reissue(rows: list[Domain]) -> None:
    """The certificate's name list changes: names that had one are renewed with the rest."""
    for d in rows:
        if d.tls_state in (TlsState.ISSUED, TlsState.FAILED):
            d.tls_state = TlsState.RENEWING


def _not_after(value: object) -> datetime | None:
    """x509_certificate_info's not_after (ASN.1 time, 20270306120000Z) as naive UTC."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%SZ")
    except ValueError:
        return None


def after_domain_job(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """Record the certificate the node now serves, or why the order failed."""
    if job.env_id is None:
        return
    rows = list(session.scalars(select(Domain).where(Domain.env_id == job.env_id)))
    if job.state != JobState.SUCCEEDED:
        if "DOMAIN_DNS_MISMATCH" in (job.error_message or ""):  # the stable code scripts match on
            session.execute(update(Job).where(Job.id == job.id).values(error_code=DNS_MISMATCH))
            job.error_code = DNS_MISMATCH
        for d in rows:
            if d.tls_state in (TlsState.PENDING, TlsState.RENEWING):
                d.tls_state, d.tls_error = TlsState.FAILED, job.error_message
        return
    cert = artifacts.get("pressluft_domain_cert")
    cert = cert if isinstance(cert, dict) else {}
    covered = {n for n in cert.get("names") or () if isinstance(n, str)}
    expires = _not_after(cert.get("not_after"))
    session.execute(delete(Domain).where(Domain.env_id == job.env_id, Domain.state == DomainState.REMOVED))
    for d in rows:
        if d.state == DomainState.REMOVED:
            continue
        d.state = DomainState.ACTIVE
        if d.tls_state is None:
            continue
        # A wildcard covers exactly one label: *.shop.preview.example covers staging.shop.preview.example.
        wildcard = "*." + d.name.partition(".")[2]
        if (d.name in covered or wildcard in covered) and expires is not None:
            d.tls_state, d.tls_expires_at, d.tls_error = TlsState.ISSUED, expires, None
        else:  # the playbook succeeded without covering it: never claim a certificate it lacks
            d.tls_state, d.tls_error = TlsState.FAILED, "the node's certificate does not cover this name"
    add_job_event(session, job.id, "domains", {
        "certificate": sorted(covered), "expires_at": expires.isoformat() + "Z" if expires else None,
    })


def due(session: Session, now: datetime) -> list[tuple[Site, Environment, datetime]]:
    """(site, env, earliest expiry) of every environment whose certificate expires within RENEW_BEFORE."""
    limit = now + RENEW_BEFORE
    found: dict[int, datetime] = {}
    for d in session.scalars(
        select(Domain).where(Domain.tls_state == TlsState.ISSUED, Domain.tls_expires_at <= limit)
    ):
        found[d.env_id] = min(found.get(d.env_id, d.tls_expires_at), d.tls_expires_at)
    out = []
    for env_id, expiry in sorted(found.items(), key=lambda kv: kv[1]):
        env = session.get(Environment, env_id)
        out.append((env.site, env, expiry))
    return out
