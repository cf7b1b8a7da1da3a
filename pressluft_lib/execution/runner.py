"""Run a claimed job: its allowlisted playbook, events into job_events, cancel, timeout, finish.

Extra vars follow docs/contracts.md: pressluft_target (the node), pressluft_site, pressluft_env,
pressluft_domains, pressluft_php_version, pressluft_table_prefix, pressluft_fencing_token,
pressluft_fencing_incarnation, pressluft_fencing_run, pressluft_seal_to (the control plane's public key
for sealed returns, plugins/filter/seal.py), plus the job payload (never
secret: queue.enqueue refuses secret-looking keys). The environment's secrets from the secret
store reach Ansible as `pressluft_<name>` through ansible_exec's 0600 vars file only.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pressluft_lib import jobtypes, names, queue, settings
from pressluft_lib.errors import ConflictError, NotFound, PressluftError
from pressluft_lib.execution import ansible_exec
from pressluft_lib.execution.attempt import Attempt
from pressluft_lib.states import DomainRole, DomainState, JobState
from pressluft_lib.storage.db import data_dir as default_data_dir
from pressluft_lib.storage.models import Domain, Environment, Job, Node, Provider, Site, utcnow
from pressluft_lib.storage.secret_store import SecretStore
from pressluft_lib.storage.transitions import add_job_event

log = logging.getLogger(__name__)
# A deadline this close or past still gets a short run so the timeout path is taken by the runner.
MIN_TIMEOUT = 1
# Seconds a stopped playbook gets between SIGTERM and SIGKILL (its process group).
STOP_GRACE = 10.0


def inventory_config(url: str) -> str:
    """The dynamic inventory config the job runs against (the node it targets is pressluft_target)."""
    return f"plugin: pressluft.wordpress.pressluft\ndb_url: {json.dumps(url)}\n"


def job_vars(session: Session, job: Job) -> tuple[dict[str, Any], str | None, str | None]:
    """(extra vars, site name, env name) for a job, from its rows and payload."""
    site = session.get(Site, job.site_id) if job.site_id else None
    env = session.get(Environment, job.env_id) if job.env_id else None
    node = session.get(Node, job.node_id) if job.node_id else (site.node if site else None)
    extravars: dict[str, Any] = dict(job.payload or {})
    if node is not None:
        extravars["pressluft_target"] = node.name
    if site is not None:
        extravars["pressluft_site"] = site.name
        extravars["pressluft_fencing_token"] = job.fencing_token
        extravars["pressluft_fencing_incarnation"] = site.incarnation
        # One id per run: the node accepts the job's token again only from this run (docs/contracts.md).
        extravars["pressluft_fencing_run"] = "r" + secrets.token_hex(8)
        php = (env.php_version if env else None) or site.php_version
        if php:
            extravars["pressluft_php_version"] = php
    if env is not None:
        extravars["pressluft_env"] = env.name
        if env.table_prefix:
            extravars["pressluft_table_prefix"] = env.table_prefix
        extravars.update(domain_vars(session, env.id))
        # Only the jobs that order certificates learn of DNS-01 (and get the DNS provider's token).
        if "domain" in jobtypes.get(job.type).roles:
            dns01 = dns01_vars(session, site.name, extravars.get("pressluft_domain_tls") or [])
            if dns01:
                extravars["pressluft_domain_dns01"] = dns01
    return extravars, site.name if site else None, env.name if env else None


def domain_vars(session: Session, env_id: int) -> dict[str, Any]:
    """The environment's live domain rows as the roles take them: pressluft_domains (the served names,
    the canonical one first), pressluft_domain_redirects (aliases, 301 to it), pressluft_domain_tls (the
    names the certificate covers) and pressluft_domain_hsts. Names being removed are left out."""
    rows = session.scalars(
        select(Domain)
        .where(Domain.env_id == env_id, Domain.state != DomainState.REMOVED)
        .order_by(Domain.role != DomainRole.CANONICAL, Domain.id)
    ).all()
    if not rows:
        return {}
    out: dict[str, Any] = {
        "pressluft_domains": [d.name for d in rows if d.role != DomainRole.ALIAS],
        "pressluft_domain_redirects": [d.name for d in rows if d.role == DomainRole.ALIAS],
        "pressluft_domain_tls": [d.name for d in rows if d.tls_state is not None],
        "pressluft_domain_hsts": any(d.hsts for d in rows if d.role == DomainRole.CANONICAL),
    }
    return out


def dns01_vars(session: Session, site: str, tls: list[str]) -> dict[str, Any] | None:
    """DNS-01 when a DNS provider is set and every certificate name is <env>.<site>.<preview domain>:
    the certificate is then the site's wildcard (a wildcard covers one label, so *.<preview domain>
    could not). An environment with other names too keeps HTTP-01 for all of them, as without the
    settings. The provider's token is not here: execute() adds it to the secret vars."""
    values = settings.load(session)
    if not tls or values.dns_provider is None:
        return None
    wildcards = {settings.preview_wildcard(values, site, n) for n in tls}
    if len(wildcards) != 1 or None in wildcards:
        return None
    provider = session.scalar(select(Provider).where(Provider.name == values.dns_provider))
    if provider is None:
        raise NotFound(f"the DNS provider {values.dns_provider!r} of the settings does not exist any more "
                       "(settings set dns_provider NAME)", details={"provider": values.dns_provider})
    return {"provider": provider.kind, "zone": values.zone(), "api_endpoint": provider.api_endpoint,
            "wildcard": wildcards.pop(), "account": provider.name}


def dns_token(session: Session, url: str, extravars: dict[str, Any]) -> dict[str, str]:
    """The DNS provider account's API token (the one `provider add` stored) for a DNS-01 order."""
    dns01 = extravars.get("pressluft_domain_dns01")
    if not dns01:
        return {}
    scope = names.provider_secret_scope(dns01["account"])
    return {"pressluft_dns_api_token": SecretStore(url=url).get(session, scope, names.PROVIDER_TOKEN)}


def load_secrets(
    session: Session, url: str, site: str | None, env: str | None, scopes: tuple[str, ...] = (),
    provider: str | None = None,
) -> dict[str, str]:
    """The environment's secrets, and those of the job type's `scopes`, as pressluft_<name> variables
    (decrypted only for the run). names.PROVIDER_SECRET_SCOPE stands for the node's provider account."""
    scopes = tuple(
        names.provider_secret_scope(provider) if s == names.PROVIDER_SECRET_SCOPE else s
        for s in scopes
        if s != names.PROVIDER_SECRET_SCOPE or provider is not None
    )
    wanted = [*scopes, *([names.env_secret_scope(site, env)] if site is not None and env is not None else [])]
    if not wanted:
        return {}
    store = SecretStore(url=url)
    return {
        f"pressluft_{name}": store.get(session, scope, name)
        for scope in wanted
        for name in store.names(session, scope)
    }


def _provider_of(session: Session, job: Job) -> str | None:
    """The provider account of the job's node (None for static and local nodes)."""
    node = session.get(Node, job.node_id) if job.node_id else None
    if node is None or node.provider_id is None:
        return None
    return session.get(Provider, node.provider_id).name


def _db_url(session_factory: sessionmaker) -> str:
    """The URL the inventory plugin reads (a relative SQLite path made absolute: Ansible runs elsewhere)."""
    url = session_factory.kw["bind"].url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).expanduser().absolute()))
    return url.render_as_string(hide_password=False)


def execute(
    session_factory: sessionmaker,
    job: Job,
    worker_id: str,
    *,
    data_dir: Path | None = None,
    playbook_dir: Path | None = None,
    heartbeat_interval: float = 5.0,
    heartbeat_timeout: float = 60.0,
    stop_grace: float = STOP_GRACE,
) -> Job:
    """Run a job claimed as `worker_id` (its claim id) to its end and record its final state.

    The playbook is the job type's (jobtypes is the allowlist): from the collection, or from
    `playbook_dir` (tests) by the same name. The attempt heartbeats every `heartbeat_interval` s
    and stops its playbook when it may not go on (attempt.py); ConflictError if the queue gave
    the job to another attempt meanwhile (nothing is recorded as this attempt's result then).
    """
    with Attempt(
        session_factory, job, worker_id, interval=heartbeat_interval, lease=heartbeat_timeout
    ) as attempt:
        return _execute(session_factory, job, worker_id, attempt, data_dir, playbook_dir, stop_grace)


def _execute(
    session_factory: sessionmaker,
    job: Job,
    worker_id: str,
    attempt: Attempt,
    data_dir: Path | None,
    playbook_dir: Path | None,
    stop_grace: float,
) -> Job:
    jt = jobtypes.JOB_TYPES.get(job.type)

    def end(state: str, code: str | None, message: str | None, artifacts: dict, **event: Any) -> Job:
        with session_factory.begin() as session:
            done = queue.finish(session, job, state, code, message, worker_id=worker_id, event=event or None)
            if jt is not None:
                jt.run_after(session, done, artifacts)
        return done

    def on_event(data: dict) -> None:
        if data.get("event") in ("attempt", "stop"):
            data = {**data, "attempt": job.attempts}
        with session_factory.begin() as session:
            add_job_event(session, job.id, "runner" if "task" in data or "play" in data else "log", data)

    # What `pressluft reset` needs to know when this attempt's worker can no longer be running it.
    on_event(
        {"event": "attempt", "worker_id": worker_id, "lease_s": attempt.lease, "stop_grace_s": stop_grace}
    )
    try:
        jt = jobtypes.get(job.type)
        url = _db_url(session_factory)
        # The payload came from the database: a row written past the queue gets no key its type refuses.
        jobtypes.check_payload_keys(jt, job.payload or {})
        with session_factory.begin() as session:
            queue.check_fencing(session, job)
            jt.run_before(session, job)
            extravars, site, env = job_vars(session, job)
            secret_vars = load_secrets(session, url, site, env, jt.secret_scopes, _provider_of(session, job))
            secret_vars.update(dns_token(session, url, extravars))
        # Playbooks seal what they return that is secret (set_stats) to this key: after hooks unseal it.
        extravars["pressluft_seal_to"] = SecretStore(url=url).sealing_public_key()
    except PressluftError as exc:
        return end(JobState.FAILED, exc.code, exc.message, {})

    timeout = jt.timeout
    if job.deadline_at is not None:
        timeout = max(MIN_TIMEOUT, int((job.deadline_at - utcnow()).total_seconds()))
    playbook = Path(playbook_dir, jt.playbook) if playbook_dir else jt.name
    try:
        outcome = ansible_exec.run_playbook(
            playbook,
            data_dir=data_dir or default_data_dir(),
            inventory=inventory_config(url),
            extravars=extravars,
            secret_vars=secret_vars,
            on_event=on_event,
            should_stop=attempt.should_stop,
            timeout=timeout,
            stop_grace=stop_grace,
            ident=f"job{job.id}-a{job.attempts}",
        )
    except Exception as exc:  # the run could not even start: record why (these messages hold no secret)
        log.exception("job %s could not run", job.id)
        message = ansible_exec.redact(f"{type(exc).__name__}: {exc}", secret_vars.values())
        return end(JobState.FAILED, "runner_error", message, {})
    if outcome.state == "stopped":  # the queue gave the job to another attempt: record nothing as ours
        if outcome.status == "not started":
            on_event({"event": "stop", "state": "stopped", "reason": outcome.reason, "signal": None})
        raise ConflictError(
            f"job {job.id} attempt {job.attempts} stopped: {outcome.reason}", details={"job_id": job.id}
        )
    error = {
        JobState.SUCCEEDED: (None, None),
        JobState.FAILED: ("playbook_failed", outcome.failure or f"the playbook failed (rc={outcome.rc})"),
        JobState.CANCELLED: ("cancelled", "cancelled on request"),
        JobState.TIMED_OUT: ("timeout", f"no result within {timeout} s"),
        JobState.STALLED: ("stalled", outcome.reason),
    }[outcome.state]
    return end(
        JobState.FAILED if outcome.state == JobState.STALLED else outcome.state,
        *error,
        outcome.artifacts,
        rc=outcome.rc,
        runner_status=outcome.status,
        changed=outcome.stats.get("changed", {}),
        returned=sorted(outcome.artifacts),  # set_stats keys (values may be secrets: never here)
    )


_RUN_DIR = re.compile(r"job(\d+)-.+")


def remove_stale_runs(session_factory: sessionmaker, data_dir: Path | None = None) -> int:
    """Remove run directories of jobs that are no longer running; returns how many.

    A worker killed with SIGKILL never reaches its cleanup, and its run directory keeps the job's
    secrets in the 0600 vars file: the next worker removes it. Directories of running jobs stay.
    """
    runs = (data_dir or default_data_dir()) / "runs"
    found = [
        (p, int(m.group(1)))
        for p in (runs.iterdir() if runs.is_dir() else ())
        if (m := _RUN_DIR.fullmatch(p.name))
    ]
    if not found:
        return 0
    with session_factory() as s:
        running = set(s.scalars(select(Job.id).where(Job.state == JobState.RUNNING)))
    stale = [p for p, job_id in found if job_id not in running]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
