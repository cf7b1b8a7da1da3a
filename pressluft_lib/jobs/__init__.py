"""Job families: what each kind of job does on the control plane (enqueue checks, before/after hooks)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib.errors import ConflictError, NotFound
from pressluft_lib.states import ResourceState
from pressluft_lib.storage.models import Environment, Site


def env_rows(session: Session, site: str, env: str) -> tuple[Site, Environment]:
    """The live site and its environment; NotFound when either is missing or deleted."""
    site_row = session.scalar(Site.by_name(site))
    if site_row is None or site_row.state == ResourceState.DELETED:
        raise NotFound(f"site {site!r} does not exist", details={"site": site})
    env_row = session.scalar(
        select(Environment).where(Environment.site_id == site_row.id, Environment.name == env)
    )
    if env_row is None or env_row.state == ResourceState.DELETED:
        raise NotFound(f"site {site} has no environment {env}", details={"site": site, "env": env})
    return site_row, env_row


def require_active(site_row: Site, env_row: Environment, needs: str) -> None:
    """ConflictError "site|environment X is S: NEEDS" unless both are active."""
    for obj, label in ((site_row, f"site {site_row.name}"),
                       (env_row, f"environment {site_row.name}/{env_row.name}")):
        if obj.state != ResourceState.ACTIVE:
            raise ConflictError(f"{label} is {obj.state}: {needs}", details={"state": obj.state})


def active_env_rows(session: Session, site: str, env: str, needs: str) -> tuple[Site, Environment]:
    """env_rows, both active."""
    site_row, env_row = env_rows(session, site, env)
    require_active(site_row, env_row, needs)
    return site_row, env_row
