"""The job-type registry: every job type is declared once, here, and nowhere else.

One job type = one CLI verb that enqueues it, one playbook (playbooks/<name>.yml, the allowlist the
runner executes), the roles that playbook calls, a lock scope, retry and timeout rules, the state
its resource enters, hooks and the secret scopes and payload variables it may use.

This module is data: it imports nothing of the library but errors, names and states, so every layer
may read it. Hooks are import paths ("module:function", as procrastinate's import_paths), resolved
on first use: the registry never imports the job families that implement them.
docs/job-types.md's table is checked against JOB_TYPES (tests/unit/lib/test_lib_jobtypes.py);
docs/architecture.md lists the steps to add a job type.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pressluft_lib.errors import ValidationError
from pressluft_lib.names import BACKUP_SECRET_SCOPE, PROVIDER_SECRET_SCOPE
from pressluft_lib.states import NodeState, ResourceState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from pressluft_lib.storage.models import Job

# before(session, job): bookkeeping in the transaction that starts the run (after the fencing check).
BeforeHook = Callable[["Session", "Job"], None]
# after(session, job, artifacts): bookkeeping in the transaction that finishes the job; job.state is
# final, artifacts is what the playbook returned with ansible.builtin.set_stats ({} if it never ran).
AfterHook = Callable[["Session", "Job", dict[str, Any]], None]


class LockScope(StrEnum):
    SITE = "site"  # serialised per site, fenced (a monotonic token per site)
    NODE = "node"  # serialised per node


@dataclass(frozen=True)
class JobType:
    name: str
    scope: LockScope
    destructive: bool  # destructive jobs are never retried automatically
    timeout: int  # seconds from claim to deadline (-> timed_out)
    max_attempts: int = 3
    verb: str = ""  # the CLI command that enqueues it, without "pressluft"
    roles: tuple[str, ...] = ()  # the collection's roles the playbook calls, in order
    # State the job's primary resource (env if given, else site; node for node scope) enters at
    # enqueue; None leaves it alone. finish() settles it (success: active/deleted, else failed).
    marks: ResourceState | NodeState | None = None
    # "module:function" (or, in tests, the function itself).
    before: str | BeforeHook | None = None
    after: str | AfterHook | None = None
    # Secret-store scopes whose secrets this job type also gets as pressluft_<name> (e.g. backups).
    secret_scopes: tuple[str, ...] = ()
    # The variables a user may set with `--var` (docs/job-types.md). Everything else a payload carries is
    # a pressluft_* key the control plane sets itself; ansible_*, role-internal names (site_env_*, ...)
    # and the runner's own keys never: the queue refuses them at enqueue, the runner before a run.
    variables: frozenset[str] = field(default_factory=frozenset)
    summary: str = ""

    @property
    def playbook(self) -> str:
        return f"{self.name}.yml"

    def run_before(self, session: Session, job: Job) -> None:
        if self.before is not None:
            _resolve(self.before)(session, job)

    def run_after(self, session: Session, job: Job, artifacts: dict[str, Any]) -> None:
        if self.after is not None:
            _resolve(self.after)(session, job, artifacts)

    def as_dict(self) -> dict[str, Any]:
        """The row `pressluft jobs types` prints (and docs/job-types.md's table)."""
        return {
            "type": self.name,
            "verb": f"pressluft {self.verb}",
            "playbook": f"playbooks/{self.playbook}",
            "roles": list(self.roles),
            "scope": str(self.scope),
            "destructive": self.destructive,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "marks": str(self.marks) if self.marks else None,
            "before": _hook_name(self.before),
            "after": _hook_name(self.after),
            "secret_scopes": list(self.secret_scopes),
            "variables": sorted(self.variables),
            "summary": self.summary,
        }


_HOOKS: dict[str, Callable[..., None]] = {}


def _resolve(hook: str | Callable[..., None]) -> Callable[..., None]:
    if callable(hook):
        return hook
    if hook not in _HOOKS:
        module, _sep, attr = hook.partition(":")
        _HOOKS[hook] = getattr(importlib.import_module(module), attr)
    return _HOOKS[hook]


def _hook_name(hook: str | Callable[..., None] | None) -> str | None:
    if hook is None or isinstance(hook, str):
        return hook
    return f"{hook.__module__}:{hook.__qualname__}"


# Keys the runner sets from the job's rows (docs/contracts.md); a payload never carries them.
RUNNER_VARIABLES = frozenset((
    "pressluft_target", "pressluft_site", "pressluft_env", "pressluft_domains", "pressluft_php_version",
    "pressluft_table_prefix",
    "pressluft_fencing_token",
    # The environment's domains by role and which want a certificate (jobs/domains.py, docs/domains.md).
    "pressluft_domain_redirects", "pressluft_domain_tls", "pressluft_domain_hsts",
))
# Node tuning a user may pass to node_provision with --var (role defaults of the node_* roles).
NODE_VARIABLES = frozenset((
    "node_base_timesync_enabled", "node_base_unattended_upgrades_enabled",
    "node_nginx_worker_processes", "node_nginx_worker_connections", "node_nginx_client_max_body_size",
    "node_nginx_rlimit_nofile",
    "node_php_default_version", "node_php_opcache_memory_mb", "node_php_rlimit_files",
    "node_mariadb_buffer_pool_mb", "node_mariadb_max_connections", "node_mariadb_open_files_limit",
    "node_redis_maxmemory", "node_redis_maxmemory_policy", "node_redis_maxclients",
    "node_hardening_firewall_enabled",
    "node_wpcli_version", "node_wpcli_src", "node_wpcli_sha512",
))


def check_payload_keys(jt: JobType, payload: dict[str, Any], user: bool = False) -> None:
    """Refuse payload keys `jt` does not allow. `user`: the keys came from `--var` (only jt.variables)."""
    for key in payload:
        if not isinstance(key, str):
            raise ValidationError(f"job payload key {key!r} must be a string")
        if key in jt.variables:
            continue
        if user or not key.startswith("pressluft_") or key in RUNNER_VARIABLES:
            allowed = ", ".join(sorted(jt.variables)) or "none"
            raise ValidationError(
                f"variable {key[:100]!r} cannot be set for {jt.name} (--var accepts: {allowed})",
                details={"variable": key[:100], "job_type": jt.name},
            )


_SITES = "pressluft_lib.jobs.sites"
_RELEASES = "pressluft_lib.jobs.releases"
_BACKUPS = "pressluft_lib.jobs.backups"
_ROTATION = "pressluft_lib.jobs.rotation"
_ENVS = "pressluft_lib.jobs.environments"
_NODES = "pressluft_lib.jobs.nodes"
_DOMAINS = "pressluft_lib.jobs.domains"
_FLEET = "pressluft_lib.jobs.fleet"
_UPDATES = "pressluft_lib.jobs.updates"
_PROMOTE = "pressluft_lib.jobs.promote"
_IMPORTS = "pressluft_lib.jobs.imports"
_NODE_ROLES = tuple(
    f"node_{r}" for r in ("base", "hardening", "nginx", "php", "mariadb", "redis", "wpcli", "backup")
)
_SITE, _NODE = LockScope.SITE, LockScope.NODE

JOB_TYPES: dict[str, JobType] = {
    t.name: t
    for t in (
        JobType("node_provision", _NODE, verb="node provision", destructive=False, timeout=3600,
                roles=_NODE_ROLES, marks=NodeState.PROVISIONING, variables=NODE_VARIABLES,
                after=f"{_NODES}:after_node_provision",
                summary="install and harden the node's stack"),
        # Every step finds what a failed run created (by name and label), so a failure is resumed by
        # running it again. The after hook records the server's address and queues node_provision.
        JobType("node_create", _NODE, verb="node create", destructive=False, timeout=1800,
                roles=("node_server",), marks=NodeState.CREATING, after=f"{_FLEET}:after_node_create",
                secret_scopes=(PROVIDER_SECRET_SCOPE,),
                summary="create the node's server at its provider, then queue node_provision"),
        JobType("node_destroy", _NODE, verb="node destroy", destructive=True, timeout=900, max_attempts=1,
                roles=("node_server",), marks=NodeState.DESTROYING, secret_scopes=(PROVIDER_SECRET_SCOPE,),
                summary="delete the node's server and its primary IP at the provider"),
        # Creating is idempotent (the roles converge), so a stalled site_create may be retried.
        JobType("site_create", _SITE, verb="site create", destructive=False, timeout=1800,
                roles=("site_env",), marks=ResourceState.CREATING,
                summary="create or converge an isolated environment"),
        JobType("site_delete", _SITE, verb="site delete", destructive=True, timeout=1800, max_attempts=1,
                roles=("site_env",), marks=ResourceState.DELETING, after=f"{_SITES}:after_site_delete",
                summary="remove an environment and everything it owns"),
        # Reads the node's fencing record; the control plane takes it over when the job succeeds.
        JobType("site_adopt", _SITE, verb="site adopt", destructive=False, timeout=300, max_attempts=1,
                after=f"{_SITES}:after_site_adopt",
                summary="take over the node's site incarnation and fencing token"),
        # A deploy's build is idempotent: the release id is fixed at enqueue, a retried run rebuilds
        # a building release from scratch and finds a switched one live, so a stalled deploy may be
        # retried. A rollback to "previous" is not (a second run would go one step further back).
        JobType("env_deploy", _SITE, verb="deploy", destructive=False, timeout=1800, max_attempts=2,
                roles=("env_release", "health_check", "page_cache"), marks=ResourceState.DEPLOYING,
                after=f"{_RELEASES}:after_deploy",
                summary="build, check and switch a release; roll back if unhealthy"),
        JobType("release_rollback", _SITE, verb="rollback", destructive=True, timeout=600, max_attempts=1,
                roles=("env_release", "health_check", "page_cache"), marks=ResourceState.DEPLOYING,
                after=f"{_RELEASES}:after_rollback",
                summary="switch back to an earlier release"),
        JobType("health_check", _SITE, verb="health", destructive=False, timeout=300,
                roles=("health_check",), after=f"{_RELEASES}:after_health_check",
                summary="check the live release over HTTP"),
        # Backup jobs get the repository's secrets; the other job types never see them.
        JobType("backup_create", _SITE, verb="backup create", destructive=False, timeout=3600,
                before=f"{_BACKUPS}:start_backup", after=f"{_BACKUPS}:after_backup_create",
                secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="dump the database and uploads, local and off-site"),
        JobType("backup_cleanup", _SITE, verb="backup cleanup", destructive=True, timeout=1800,
                max_attempts=1,
                after=f"{_BACKUPS}:after_backup_cleanup", secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="delete the backups the retention policy expired"),
        JobType("env_restore", _SITE, verb="restore", destructive=True, timeout=3600, max_attempts=1,
                roles=("page_cache",), marks=ResourceState.RESTORING, before=f"{_BACKUPS}:start_backup",
                after=f"{_BACKUPS}:after_env_restore", secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="restore a backup after taking a pre-restore one"),
        # Disaster recovery: runs on the node given with --to (job.node), not the site's; a failed run
        # removes what it created, but it is not retried by itself (the operator looks first).
        JobType("env_rebuild", _SITE, verb="restore", destructive=True, timeout=3600, max_attempts=1,
                roles=("site_env", "health_check", "floating_ip"), marks=ResourceState.RESTORING,
                after=f"{_BACKUPS}:after_env_rebuild",
                secret_scopes=(BACKUP_SECRET_SCOPE, PROVIDER_SECRET_SCOPE),
                summary="rebuild an environment on another node from its off-site backup"),
        # Two nodes: the source refuses writes and backs up, the target is rebuilt from that backup; the
        # source stays read-only until site_move_confirm. Not retried (a second final backup would race
        # the first run's target).
        # The provider token is for the floating IP switch (a site with one: `site ip`).
        JobType("site_move", _SITE, verb="site move", destructive=True, timeout=7200, max_attempts=1,
                roles=("site_env", "health_check", "floating_ip"), before=f"{_BACKUPS}:start_backup",
                after=f"{_BACKUPS}:after_site_move",
                secret_scopes=(BACKUP_SECRET_SCOPE, PROVIDER_SECRET_SCOPE),
                summary="move a site to another node: read-only source, final backup, rebuild, check, "
                "floating IP switch"),
        JobType("site_move_confirm", _SITE, verb="site move", destructive=True, timeout=1800,
                max_attempts=1, roles=("site_env", "floating_ip"),
                after=f"{_BACKUPS}:after_site_move_confirm",
                summary="remove a moved site's read-only copy from its old node"),
        # Converges (the IP is found by name, the node's unit is idempotent), so it may be retried.
        JobType("site_ip", _SITE, verb="site ip", destructive=False, timeout=600, max_attempts=2,
                roles=("floating_ip",), after=f"{_FLEET}:after_site_ip",
                secret_scopes=(PROVIDER_SECRET_SCOPE,),
                summary="give a site a floating IP at its node's provider, routed to its node"),
        # Not retried: a second run after a stall could restore the database over writes made since.
        JobType("env_update", _SITE, verb="update apply", destructive=True, timeout=3600, max_attempts=1,
                roles=("env_release", "health_check", "page_cache", "site_env"), marks=ResourceState.UPDATING,
                before=f"{_BACKUPS}:start_backup", after=f"{_UPDATES}:after_update",
                secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="back up, build a release with updated core/plugins/themes, check, switch "
                "(--safe: tried on a throwaway clone first)"),
        # Every phase is safe to repeat (the node keeps the new values until the last), so it may retry.
        JobType("secrets_rotate", _SITE, verb="secrets rotate", destructive=False, timeout=900,
                roles=("secrets_rotate",), after=f"{_ROTATION}:after_rotate",
                summary="new DB, Redis and WordPress secrets, no failed request"),
        # The domain jobs converge the server block and the certificate to the environment's domain
        # rows (each run orders only what changed), so a stalled one may be retried.
        JobType("domain_add", _SITE, verb="domain add", destructive=False, timeout=900, max_attempts=2,
                roles=("site_env", "domain"), after=f"{_DOMAINS}:after_domain_job",
                summary="serve a name (and its aliases): DNS check, certificate, HTTPS"),
        JobType("domain_remove", _SITE, verb="domain remove", destructive=False, timeout=900,
                max_attempts=2, roles=("site_env", "domain"), after=f"{_DOMAINS}:after_domain_job",
                summary="stop serving names; re-issue the certificate without them"),
        JobType("domain_renew", _SITE, verb="domain renew", destructive=False, timeout=900, max_attempts=2,
                roles=("site_env", "domain"), after=f"{_DOMAINS}:after_domain_job",
                summary="renew the certificate (the scheduler queues it 30 days before expiry)"),
        # Both converge (the switch is written whole, a purge removes what is there): safe to retry.
        # `cache disable` queues it too (pressluft_cache_state: disabled). With --object it builds, checks
        # and switches a release with (or without) the Redis Object Cache plugin's drop-in, like a deploy;
        # a retry finds its release built (immutable) and checks it again.
        JobType("env_cache_toggle", _SITE, verb="cache enable", destructive=False, timeout=1800,
                roles=("page_cache", "object_cache", "env_release", "health_check"),
                after="pressluft_lib.jobs.cache:after_toggle",
                summary="switch the nginx page cache, or with --object the Redis object cache, on or off"),
        JobType("cache_purge", _SITE, verb="cache purge", destructive=False, timeout=300,
                roles=("page_cache",), summary="purge the page cache of an environment, whole or by URL"),
        # A clone converges the environment and copies its source again from scratch (db reset), so a
        # stalled one may be retried; every environment of a site shares the site's lock.
        JobType("env_create", _SITE, verb="env create", destructive=False, timeout=3600, max_attempts=2,
                roles=("site_env",), marks=ResourceState.CREATING, after=f"{_ENVS}:after_env_create",
                summary="a new environment filled from a snapshot of another, URLs rewritten"),
        # Content down: overwrites the environment's database and/or uploads (never production's), so it
        # is destructive and never retried by itself.
        JobType("env_sync", _SITE, verb="env sync", destructive=True, timeout=3600, max_attempts=1,
                marks=ResourceState.CLONING, after=f"{_ENVS}:after_env_sync",
                summary="copy production's database and/or uploads down into another environment"),
        # Reads only; its report is the job's `drift` event.
        JobType("drift_check", _SITE, verb="drift", destructive=False, timeout=900,
                after=f"{_ENVS}:after_drift_check",
                summary="report how an environment differs from production (code, schema, writes)"),
        # Code up: a production release from the staging environment's live release, after a production
        # backup. Not retried: a second run after a stall could copy tables over writes made since.
        JobType("env_promote", _SITE, verb="promote", destructive=True, timeout=3600, max_attempts=1,
                roles=("env_release", "health_check", "page_cache"), marks=ResourceState.PROMOTING,
                before=f"{_BACKUPS}:start_backup", after=f"{_PROMOTE}:after_promote",
                secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="back up production, then release the staging environment's code into it"),
        JobType("env_delete", _SITE, verb="env delete", destructive=True, timeout=1800, max_attempts=1,
                roles=("site_env",), marks=ResourceState.DELETING, before=f"{_BACKUPS}:start_backup",
                after=f"{_ENVS}:after_env_delete", secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="a final backup, then remove an environment (never production) and all it owns"),
        # Converges the node's files to the payload's state (a rerun changes nothing): safe to retry.
        JobType("env_auth", _SITE, verb="env auth", destructive=False, timeout=300,
                after="pressluft_lib.jobs.env_auth:after_env_auth",
                summary="HTTP basic auth of a non-production environment on or off (ACME paths stay open)"),
        # Not retried: a second run after a stall could swap the import in over writes made since.
        JobType("site_import", _SITE, verb="import", destructive=True, timeout=7200, max_attempts=1,
                roles=("env_release", "health_check", "page_cache"), marks=ResourceState.RESTORING,
                before=f"{_BACKUPS}:start_backup", after=f"{_IMPORTS}:after_import",
                secret_scopes=(BACKUP_SECRET_SCOPE,),
                summary="import a site from an archive: analyse, stage, back up, swap in, check, switch"),
    )
}


def get(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except (KeyError, TypeError):
        raise ValidationError(
            f"unknown job type {name!r}; known: {', '.join(sorted(JOB_TYPES))}", details={"type": name}
        ) from None


def markdown_table() -> str:
    """The table at the top of docs/job-types.md (a unit test keeps the two equal)."""
    head = "| job type | CLI verb | roles | lock | destructive | attempts | timeout | marks | hooks |"
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for jt in JOB_TYPES.values():
        hooks = [
            f"{when}: `{_hook_name(hook).rpartition(':')[2]}`"
            for when, hook in (("before", jt.before), ("after", jt.after))
            if hook is not None
        ]
        cells = [
            f"`{jt.name}`", f"`pressluft {jt.verb}`", ", ".join(jt.roles) or "- (modules only)",
            str(jt.scope), "yes" if jt.destructive else "no", str(jt.max_attempts), f"{jt.timeout} s",
            f"`{jt.marks}`" if jt.marks else "-", ", ".join(hooks) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def register(job_type: JobType) -> JobType:
    """Add a job type at run time (tests' tiny playbooks); product job types are declared above."""
    if job_type.scope not in tuple(LockScope):
        raise ValidationError(f"job type scope must be 'site' or 'node', not {job_type.scope!r}")
    JOB_TYPES[job_type.name] = job_type
    return job_type
