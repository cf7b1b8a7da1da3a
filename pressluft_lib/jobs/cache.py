"""The page cache on the control plane: the input checks of env_cache_toggle and cache_purge (the
ControlPlane methods that enqueue them are in services/cache.py; docs/cache.md).

The node holds the switch (role page_cache); a purge URL is checked here against the environment's
domains and again on the node against its server block, which is the authority.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib import names
from pressluft_lib.errors import ValidationError
from pressluft_lib.storage.models import Domain, Environment, Site

TOGGLE = "env_cache_toggle"
PURGE = "cache_purge"
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
