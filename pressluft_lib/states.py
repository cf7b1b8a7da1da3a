"""States of jobs and resources as enums, and the state machines as plain tables (data only).

Each enum is a StrEnum: its members are the strings stored in the database and shown in the
event stream, so `job.state == JobState.QUEUED` and `job.state == "queued"` are the same test.
The guarded `transition()` that moves a row through these tables is in storage/transitions.py.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    STALLED = "stalled"  # its worker stopped heartbeating; re-queued only if not destructive
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class ResourceState(StrEnum):
    """Sites and environments share one machine."""

    CREATING = "creating"
    ACTIVE = "active"
    CLONING = "cloning"
    DEPLOYING = "deploying"
    RESTORING = "restoring"
    PROMOTING = "promoting"
    UPDATING = "updating"
    DELETING = "deleting"
    FAILED = "failed"
    DELETED = "deleted"


class NodeState(StrEnum):
    PENDING = "pending"
    # node_create: its server is being created at the provider. Not "creating": settle_map is keyed by
    # state name over sites and nodes together, and a site's creating must settle to active.
    CREATING = "creating_server"
    DESTROYING = "destroying"  # node_destroy: its server is being deleted
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    REMOVED = "removed"


class ReleaseState(StrEnum):
    BUILDING = "building"
    CHECKING = "checking"
    HEALTHY = "healthy"
    LIVE = "live"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    PRUNED = "pruned"


class BackupState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    EXPIRED = "expired"
    FAILED = "failed"
    DELETED = "deleted"


class DomainState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"
    REMOVED = "removed"


class DomainRole(StrEnum):
    """What a name does for its environment (docs/domains.md)."""

    CANONICAL = "canonical"  # the one name the environment answers as (at most one per environment)
    ALIAS = "alias"  # answered with a 301 to the canonical name
    SERVE = "serve"  # served as is: `--www serve`, and the names `site create --domain` gave


class TlsState(StrEnum):
    """The certificate of a name; NULL for names that want none (site_create's names)."""

    PENDING = "pending"  # queued for its first certificate
    ISSUED = "issued"
    RENEWING = "renewing"  # a renewal (or a re-issue for a changed name list) is queued or running
    FAILED = "failed"  # the last order failed (the job's error says why); the site keeps serving HTTP


J, R, N, REL, B, D = JobState, ResourceState, NodeState, ReleaseState, BackupState, DomainState

JOB_ACTIVE = (J.QUEUED, J.RUNNING, J.STALLED)
JOB_TERMINAL = (J.SUCCEEDED, J.FAILED, J.CANCELLED, J.TIMED_OUT)
JOB: dict[str, frozenset[str]] = {
    J.QUEUED: frozenset({J.RUNNING, J.CANCELLED}),
    J.RUNNING: frozenset({J.SUCCEEDED, J.FAILED, J.CANCELLED, J.TIMED_OUT, J.STALLED}),
    J.STALLED: frozenset({J.QUEUED, J.FAILED}),  # queued only for non-destructive types
    **{s: frozenset() for s in JOB_TERMINAL},
}

# A resource in a mutating state rejects other mutations.
RESOURCE_MUTATING = (R.CREATING, R.CLONING, R.DEPLOYING, R.RESTORING, R.PROMOTING, R.UPDATING, R.DELETING)
RESOURCE: dict[str, frozenset[str]] = {
    R.CREATING: frozenset({R.ACTIVE, R.FAILED}),
    R.ACTIVE: frozenset({R.CLONING, R.DEPLOYING, R.RESTORING, R.PROMOTING, R.UPDATING, R.DELETING}),
    **{s: frozenset({R.ACTIVE, R.FAILED}) for s in RESOURCE_MUTATING[1:-1]},
    R.DELETING: frozenset({R.DELETED, R.FAILED}),
    R.FAILED: frozenset({R.ACTIVE, R.DELETING}),  # active only through reset_site/reset_env
    R.DELETED: frozenset(),
}
# A retry (queue.retry, nothing else) moves a failed site or environment straight into its job's state.
RETRY_FROM_FAILED = frozenset(RESOURCE_MUTATING)

NODE: dict[str, frozenset[str]] = {
    # pending -> active only for node_create's rerun on a node that was active (its after hook): the
    # server existed and is unchanged, so nothing needs provisioning.
    N.PENDING: frozenset({N.CREATING, N.PROVISIONING, N.ACTIVE, N.DESTROYING, N.REMOVED}),
    # A created server is provisioned next: the node is pending (not active) until then.
    N.CREATING: frozenset({N.PENDING, N.FAILED}),
    N.PROVISIONING: frozenset({N.ACTIVE, N.FAILED}),
    N.ACTIVE: frozenset({N.CREATING, N.PROVISIONING, N.DESTROYING, N.REMOVED}),
    N.FAILED: frozenset({N.CREATING, N.PROVISIONING, N.DESTROYING, N.REMOVED}),
    N.DESTROYING: frozenset({N.REMOVED, N.FAILED}),
    N.REMOVED: frozenset(),
}

RELEASE: dict[str, frozenset[str]] = {
    REL.BUILDING: frozenset({REL.CHECKING, REL.FAILED}),
    REL.CHECKING: frozenset({REL.HEALTHY, REL.FAILED}),
    REL.HEALTHY: frozenset({REL.LIVE, REL.PRUNED}),
    REL.LIVE: frozenset({REL.HEALTHY, REL.ROLLED_BACK}),  # healthy: superseded by a newer live release
    REL.ROLLED_BACK: frozenset({REL.PRUNED}),
    REL.FAILED: frozenset({REL.PRUNED}),
    REL.PRUNED: frozenset(),
}

BACKUP: dict[str, frozenset[str]] = {
    B.PENDING: frozenset({B.RUNNING, B.FAILED}),
    B.RUNNING: frozenset({B.COMPLETED, B.FAILED}),
    B.COMPLETED: frozenset({B.EXPIRED, B.DELETED}),
    B.EXPIRED: frozenset({B.DELETED}),
    B.FAILED: frozenset({B.DELETED}),
    B.DELETED: frozenset(),
}

DOMAIN: dict[str, frozenset[str]] = {
    D.PENDING: frozenset({D.ACTIVE, D.FAILED, D.REMOVED}),
    D.ACTIVE: frozenset({D.FAILED, D.REMOVED}),
    D.FAILED: frozenset({D.PENDING, D.REMOVED}),
    D.REMOVED: frozenset(),
}

# Where a mutating state goes when its job ends: success -> SETTLE_SUCCESS[state], else failed.
NODE_MUTATING = (N.PROVISIONING, N.CREATING, N.DESTROYING)
# A job cancelled before it ran changed nothing: these states are entered from active only, so their
# resource goes back to active. The others (creating, deleting, provisioning) end as failed.
SETTLE_UNTOUCHED = {
    s: R.ACTIVE for s in RESOURCE_MUTATING if {a for a, nxt in RESOURCE.items() if s in nxt} == {R.ACTIVE}
}
SETTLE_SUCCESS = {
    **{s: R.ACTIVE for s in RESOURCE_MUTATING}, R.DELETING: R.DELETED, N.PROVISIONING: N.ACTIVE,
    N.CREATING: N.PENDING, N.DESTROYING: N.REMOVED,
}


def settle_map(success: bool, untouched: bool = False) -> dict[str, str]:
    """The settle rule, the one place it is written: {mutating state: the state its resource (site,
    environment or node) takes when its job ends}. Success: SETTLE_SUCCESS; a job that never ran
    (untouched): SETTLE_UNTOUCHED where it applies; otherwise failed. The queue's SQL applies it."""
    fail = R.FAILED.value
    return {
        str(s): str(SETTLE_SUCCESS[s])
        if success
        else str(SETTLE_UNTOUCHED.get(s, fail) if untouched else fail)
        for s in (*RESOURCE_MUTATING, *NODE_MUTATING)
    }
