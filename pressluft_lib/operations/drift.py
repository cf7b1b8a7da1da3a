"""`pressluft check node|site`: configuration drift, found by running the playbook that made the
node or environment in check mode with diff. Nothing on the node changes; every task that would
change something is a difference, with its diff. Results are audit rows (`check.node`,
`check.site`: result `clean`, `drift` or `error`), so the scheduler's daily run is on record.

The variables are those the last successful job of that playbook ran with (its payload), so a check
compares against what Pressluft last applied, not against defaults. No fencing token is passed:
a check records nothing on the node. A target that a job holds is reported `busy`, not checked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from pressluft_lib import names
from pressluft_lib.errors import NotFound
from pressluft_lib.execution import ansible_exec, runner
from pressluft_lib.states import JobState, NodeState, ResourceState
from pressluft_lib.storage import db as dbmod
from pressluft_lib.storage.models import AuditLog, Domain, Environment, Job, Node, Site, utcnow

NODE_PLAYBOOK, SITE_PLAYBOOK = "node_provision", "site_create"
TIMEOUT = 1800  # seconds for one check run


def _last_payload(session, job_type: str, **where) -> dict[str, Any]:
    stmt = select(Job.payload).where(Job.type == job_type, Job.state == JobState.SUCCEEDED)
    for column, value in where.items():
        stmt = stmt.where(getattr(Job, column) == value)
    return dict(session.scalar(stmt.order_by(Job.id.desc()).limit(1)) or {})


def _holder(session, lock_key: str) -> str | None:
    job = session.scalar(select(Job).where(Job.lock_key == lock_key))
    return f"job {job.id} ({job.type}, {job.state}) holds it" if job is not None else None


def _record(cp, actor: str, action: str, target: str, report: dict) -> None:
    detail = {k: report[k] for k in ("changes", "error") if report.get(k)}
    with cp.session_factory.begin() as session:
        session.execute(insert(AuditLog).values(
            actor=actor, action=action, target=target, result=report["status"], detail=detail,
            created_at=utcnow(),
        ))


def _run(cp, playbook: str, extravars: dict, secret_vars: dict, ident: str) -> dict:
    url = runner._db_url(cp.session_factory)
    outcome = ansible_exec.run_playbook(
        playbook, data_dir=dbmod.data_dir(), inventory=runner.inventory_config(url), extravars=extravars,
        secret_vars=secret_vars, timeout=TIMEOUT, ident=ident, check=True,
    )
    if outcome.state != JobState.SUCCEEDED:
        return {"status": "error", "error": outcome.failure or outcome.reason or outcome.status,
                "changes": outcome.changes}
    return {"status": "drift" if outcome.changes else "clean", "changes": outcome.changes}


def check_node(cp, name: str, actor: str | None = None) -> dict[str, Any]:
    names.validate_node(name)
    with cp.session_factory() as session:
        node = session.scalar(select(Node).where(Node.name == name, Node.state != NodeState.REMOVED))
        if node is None:
            raise NotFound(f"node {name!r} does not exist", details={"node": name})
        report: dict[str, Any] = {"target": f"node:{name}", "playbook": NODE_PLAYBOOK}
        if node.state != NodeState.ACTIVE:
            return {**report, "status": "busy" if node.state == NodeState.PROVISIONING else "skipped",
                    "reason": f"node is {node.state}"}
        if (busy := _holder(session, f"node:{node.id}")) is not None:
            return {**report, "status": "busy", "reason": busy}
        payload = _last_payload(session, NODE_PLAYBOOK, node_id=node.id)
    result = _run(cp, NODE_PLAYBOOK, {**payload, "pressluft_target": name}, {}, f"check-node-{name}")
    report.update(result)
    _record(cp, actor or cp.actor, "check.node", report["target"], report)
    return report


def check_site(cp, site: str, env: str = names.DEFAULT_ENV, actor: str | None = None) -> dict[str, Any]:
    names.validate_site(site), names.validate_env(env)
    with cp.session_factory() as session:
        site_row = session.scalar(Site.by_name(site))
        if site_row is None or site_row.state == ResourceState.DELETED:
            raise NotFound(f"site {site!r} does not exist", details={"site": site})
        env_row = session.scalar(select(Environment).where(
            Environment.site_id == site_row.id, Environment.name == env))
        if env_row is None:
            raise NotFound(f"environment {site}/{env} does not exist", details={"site": site, "env": env})
        report: dict[str, Any] = {"target": f"env:{site}_{env}", "playbook": SITE_PLAYBOOK}
        if env_row.state != ResourceState.ACTIVE or site_row.state != ResourceState.ACTIVE:
            state = env_row.state if env_row.state != ResourceState.ACTIVE else site_row.state
            return {**report, "status": "busy" if state != ResourceState.FAILED else "skipped",
                    "reason": f"environment is {state}"}
        if (busy := _holder(session, f"site:{site_row.id}")) is not None:
            return {**report, "status": "busy", "reason": busy}
        payload = _last_payload(session, SITE_PLAYBOOK, site_id=site_row.id, env_id=env_row.id)
        domains = session.scalars(select(Domain.name).where(Domain.env_id == env_row.id).order_by(Domain.id))
        extravars = {**payload, "pressluft_target": site_row.node.name, "pressluft_site": site,
                     "pressluft_env": env, "pressluft_domains": list(domains)}
        php = env_row.php_version or site_row.php_version
        if php:
            extravars["pressluft_php_version"] = php
        secret_vars = runner.load_secrets(session, str(cp.url), site, env)
    result = _run(cp, SITE_PLAYBOOK, extravars, secret_vars, f"check-site-{site}-{env}")
    report.update(result)
    _record(cp, actor or cp.actor, "check.site", report["target"], report)
    return report


def check_all(cp, actor: str = "scheduler") -> list[dict[str, Any]]:
    """Every active node, then every active environment (the scheduler's daily drift task)."""
    with cp.session_factory() as session:
        nodes = session.scalars(
            select(Node.name).where(Node.state == NodeState.ACTIVE).order_by(Node.name)
        ).all()
        envs = session.execute(
            select(Site.name, Environment.name).join(Site, Site.id == Environment.site_id)
            .where(Site.state == ResourceState.ACTIVE, Environment.state == ResourceState.ACTIVE)
            .order_by(Site.name, Environment.name)
        ).all()
    reports = [check_node(cp, n, actor) for n in nodes]
    return reports + [check_site(cp, s, e, actor) for s, e in envs]
