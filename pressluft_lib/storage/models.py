"""Control-plane data model (SQLAlchemy 2 typed ORM). Times are naive UTC (`utcnow()`)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    case,
    false,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pressluft_lib.states import (
    BackupState,
    DomainRole,
    DomainState,
    JobState,
    NodeState,
    ReleaseState,
    ResourceState,
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# Explicit constraint names so alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[str]: JSON}


def new_incarnation() -> str:
    """A random site incarnation id; the letter first keeps Ansible from reading it as a number."""
    return "i" + secrets.token_hex(8)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Node(Timestamps, Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    user: Mapped[str] = mapped_column(String(32), default="root")
    ssh_key_path: Mapped[str | None] = mapped_column(String(4096))
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    provider: Mapped[str] = mapped_column(String(32), default="static")
    roles: Mapped[list[str]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), default=NodeState.PENDING)
    # Site capacity (pressluft_lib/capacity.py): an operator's override, else derived from what the last
    # node_provision reported (memory, PHP-FPM's open-files limit); NULL = not set / not reported yet.
    site_capacity: Mapped[int | None] = mapped_column(Integer)
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    limits_capacity: Mapped[int | None] = mapped_column(Integer)
    # A node created from a provider account (`node create`): the account, and what its server was
    # created with (type, location, image, network; the server's id once it exists).
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), index=True)
    cloud: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    sites: Mapped[list[Site]] = relationship(back_populates="node")


class Provider(Timestamps, Base):
    """A cloud account nodes are created from; its API token is in the secret store, never here."""

    __tablename__ = "providers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "hetzner"
    api_endpoint: Mapped[str] = mapped_column(String(255))
    # Sources allowed to reach SSH (port 22) through the firewall every node of this account gets.
    admin_cidrs: Mapped[list[str]] = mapped_column(default=list)


class FloatingIp(Timestamps, Base):
    """A provider's floating IP that follows one site between nodes (`site ip`, docs/move.md): its address
    is routed to the server of the node that holds the site; `site move` reassigns it to the target."""

    __tablename__ = "floating_ips"
    __table_args__ = (UniqueConstraint("provider_id", "name", name="uq_floating_ips_provider_id_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    name: Mapped[str] = mapped_column(String(63))  # the provider's name of it
    address: Mapped[str | None] = mapped_column(String(45))  # known once site_ip reported it
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), unique=True)


class Site(Timestamps, Base):
    """One incarnation of a site: a name deleted and created again is a new row (the old one keeps its
    jobs, environments and backups), with a new `incarnation` the node's fencing record tells apart."""

    __tablename__ = "sites"
    __table_args__ = (
        Index(
            "uq_sites_name_live",
            "name",
            unique=True,
            postgresql_where=text("state != 'deleted'"),
            sqlite_where=text("state != 'deleted'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    incarnation: Mapped[str] = mapped_column(String(64), default=new_incarnation)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=ResourceState.CREATING)
    # Monotonic per incarnation; each job (and each retry) takes the next value, see queue.py.
    last_fencing_token: Mapped[int] = mapped_column(Integer, default=0)
    php_version: Mapped[str | None] = mapped_column(String(8))
    backup_keep_daily: Mapped[int | None] = mapped_column(Integer)
    backup_keep_weekly: Mapped[int | None] = mapped_column(Integer)
    backup_keep_monthly: Mapped[int | None] = mapped_column(Integer)

    node: Mapped[Node] = relationship(back_populates="sites")
    environments: Mapped[list[Environment]] = relationship(back_populates="site")

    @classmethod
    def by_name(cls, name: str) -> Any:
        """SELECT the live incarnation called `name`, else the most recent deleted one."""
        deleted_last = case((cls.state == ResourceState.DELETED, 1), else_=0)
        return select(cls).where(cls.name == name).order_by(deleted_last, cls.id.desc()).limit(1)


class Environment(Timestamps, Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("site_id", "name", name="uq_environments_site_id_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(11))
    state: Mapped[str] = mapped_column(String(16), default=ResourceState.CREATING)
    php_version: Mapped[str | None] = mapped_column(String(8))
    # What `pressluft update schedule` applies (jobs/updates.py POLICY_DEFAULTS); NULL: the defaults.
    update_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # WordPress's table prefix when it is not wp_ (an imported site's; docs/import.md).
    table_prefix: Mapped[str | None] = mapped_column(String(32))

    site: Mapped[Site] = relationship(back_populates="environments")
    domains: Mapped[list[Domain]] = relationship(back_populates="environment")
    releases: Mapped[list[Release]] = relationship(back_populates="environment")
    backups: Mapped[list[Backup]] = relationship(back_populates="environment")


class Release(Timestamps, Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("env_id", "release_id", name="uq_releases_env_id_release_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    env_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    release_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=ReleaseState.BUILDING)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    environment: Mapped[Environment] = relationship(back_populates="releases")


class UpdateReport(Timestamps, Base):
    """A safe update's comparison of its throwaway clone with the environment (`pressluft update report`).

    Made at enqueue (state pending) so the CLI can name it; the env_update job's after hook fills it."""

    __tablename__ = "update_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    env_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | passed | failed
    clone: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Backup(Timestamps, Base):
    __tablename__ = "backups"
    id: Mapped[int] = mapped_column(primary_key=True)
    env_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=BackupState.PENDING)
    scope: Mapped[str] = mapped_column(String(16), default="full")
    location: Mapped[str | None] = mapped_column(Text)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    environment: Mapped[Environment] = relationship(back_populates="backups")


class Domain(Timestamps, Base):
    __tablename__ = "domains"
    id: Mapped[int] = mapped_column(primary_key=True)
    env_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), index=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=DomainState.PENDING)
    # docs/domains.md: canonical | alias | serve, and the certificate's state (NULL: no certificate wanted).
    role: Mapped[str] = mapped_column(String(16), default=DomainRole.SERVE, server_default=DomainRole.SERVE)
    tls_state: Mapped[str | None] = mapped_column(String(16))
    tls_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    tls_error: Mapped[str | None] = mapped_column(Text)
    # HSTS is opt-in and a property of the environment's canonical row.
    hsts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    environment: Mapped[Environment] = relationship(back_populates="domains")


class Job(Base):
    __tablename__ = "jobs"
    # Partial indexes: a queue scan touches only queued (or running) rows, not the whole history.
    __table_args__ = (
        Index(
            "ix_jobs_claim",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        Index(
            "ix_jobs_running",
            "heartbeat_at",
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    env_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    # "site:<id>" or "node:<id>" while the job is queued/running (and a retryable one stalled);
    # NULL otherwise. The unique index makes "one active mutation per site/node" race-safe.
    lock_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    fencing_token: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime)
    not_before: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str | None] = mapped_column(String(128))
    # Last JobEvent.seq; bumped with an atomic UPDATE so seq is gap-free and race-free per job.
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    events: Mapped[list[JobEvent]] = relationship(back_populates="job", order_by="JobEvent.seq")


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_id_seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # "state", "runner" or "log"
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="events")


class AuditLog(Base):
    """Who did what. Resource state transitions are recorded here (action "transition")."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), index=True)
    result: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Secret(Base):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_secrets_scope_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))  # e.g. "env:<site>_<env>", "node:<name>"
    name: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Setting(Base):
    """One control-plane setting; which names exist and what values they take is pressluft_lib.settings."""

    __tablename__ = "settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
