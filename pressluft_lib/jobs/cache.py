"""The page cache on the control plane: the input checks of env_cache_toggle and cache_purge (the
ControlPlane methods that enqueue them are in services/cache.py; docs/cache.md).

The node holds the switch (role page_cache); a purge URL is checked here against the environment's
domains and again on the node against its server block, which is the authority.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names
from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import releases
from pressluft_lib.states import JobState, ReleaseState
from pressluft_lib.storage.models import Domain, Environment, Job, Site

TOGGLE = "env_cache_toggle"
PURGE = "cache_purge"
PAGE, OBJECT = "page", "object"
MAX_URLS = 100
# The node's module accepts the same shape (module_utils/_page_cache.py check_url).
_URL_RE = re.compile(r"(https?)://([^/?#\s]{1,253})(/[\x21-\x7e]*)?")


def served_names(session: Session, site: Site, env: Environment) -> list[str]:
    """The names the environment's server block lists: its domains, else `<site>.localhost`."""
    found = session.scalars(select(Domain.name).where(Domain.env_id == env.id).order_by(Domain.id)).all()
    return list(found) or [f"{site.name}.localhost"]


def check_urls(urls: list[str] | None, owned: list[str]) -> list[str]:
    """The purge URLs unchanged, or ValidationError naming the first bad one (nothing is queued)."""
    urls = list(urls or ())
    if len(urls) > MAX_URLS:
        raise ValidationError(f"at most {MAX_URLS} URLs per purge, got {len(urls)}")
    for url in urls:
        match = _URL_RE.fullmatch(url) if isinstance(url, str) else None
        if match is None:
            raise ValidationError(f"invalid URL {str(url)[:200]!r}: use http(s)://HOST/PATH without spaces",
                                  details={"url": str(url)[:200]})
        host, path = match.group(2), match.group(3) or "/"
        names.validate_domain(host)
        if "?" in path or "#" in path:
            raise ValidationError(f"URL {url!r} has a query or fragment: pages with a query string are never "
                                  "cached", details={"url": url})
        if host not in owned:
            raise ValidationError(f"host {host} of {url!r} is not served by this environment "
                                  f"(its names: {', '.join(owned)})", details={"url": url, "names": owned})
    return urls


def check_kind(kind: str, state: str, plugin_zip: str | None) -> dict[str, str]:
    """The payload keys of the cache kind (ValidationError for bad input; nothing is queued)."""
    if kind not in (PAGE, OBJECT):
        raise ValidationError(f"cache kind must be {PAGE} or {OBJECT}, got {str(kind)[:40]!r}")
    if kind == PAGE:
        if plugin_zip:
            raise ValidationError("--plugin-zip goes with the object cache only")
        return {}
    payload = {"pressluft_cache_kind": OBJECT}
    if plugin_zip:
        if state != "enabled":
            raise ValidationError("--plugin-zip goes with cache enable only")
        path = Path(plugin_zip)
        if not path.is_absolute() or path.suffix != ".zip" or any(c.isspace() for c in plugin_zip):
            raise ValidationError(f"--plugin-zip must be an absolute path of a .zip without spaces, "
                                  f"got {plugin_zip[:200]!r}")
        if not path.is_file():
            raise ValidationError(f"--plugin-zip {plugin_zip[:200]}: no such file on this machine")
        payload["pressluft_object_cache_zip"] = str(path)
    return payload


def after_toggle(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """An object cache toggle's release: recorded like a deploy's; its row goes when nothing was built."""
    release_id = (job.payload or {}).get("pressluft_release")
    if (job.payload or {}).get("pressluft_cache_kind") != OBJECT or job.env_id is None or not release_id:
        return
    result = artifacts.get("pressluft_object_cache")
    built = isinstance(result, dict) and result.get("release") == release_id
    env = session.get(Environment, job.env_id)
    row = releases.release_row(session, env, release_id) if env is not None else None
    if job.state == JobState.SUCCEEDED and not built:
        if row is not None and row.state == ReleaseState.BUILDING:
            session.delete(row)
            session.flush()
        return
    releases.after_deploy(session, job, artifacts)
