"""Control-plane settings (docs/settings.md): a few named values in the `settings` table, each checked
by the pydantic model below at every write and every read (a row written past the library is input
too). An unset setting keeps the behaviour Pressluft had before the setting existed.

- preview_domain: environments created without --domain answer as <env>.<site>.<preview_domain>
  (unset: <env>.<site>.localhost), and their certificate is the site's wildcard *.<site>.<preview_domain>,
  ordered with DNS-01 through dns_provider.
- dns_provider: the provider account (`pressluft provider add`) whose DNS API sets the DNS-01 TXT
  records; its API token is the one the secret store already holds for that account.
- dns_zone: the zone at that provider holding the preview domain (unset: the preview domain itself).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pressluft_lib import names, schemas
from pressluft_lib.errors import ValidationError
from pressluft_lib.storage.models import Setting, utcnow

# Provider kinds with a DNS-01 implementation (roles/domain/tasks/dns01_<kind>.yml).
DNS01_KINDS = ("hetzner",)
LOCAL_SUFFIX = "localhost"  # the preview suffix when no preview domain is set


def _dns_name(value: str) -> str:
    """A DNS name as typed (IDNA, any case, trailing dot) in its checked A-label form, no wildcard."""
    return names.normalize_domain(value)


DnsName = Annotated[str, AfterValidator(_dns_name)]
ProviderName = Annotated[str, AfterValidator(names.validate_provider)]


class Settings(BaseModel):
    """Every setting and its type; None is unset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    preview_domain: DnsName | None = None
    dns_provider: ProviderName | None = None
    dns_zone: DnsName | None = None

    def zone(self) -> str | None:
        """The DNS zone the preview domain's records go into."""
        return self.dns_zone or self.preview_domain


NAMES = tuple(Settings.model_fields)
DESCRIPTIONS = {
    "preview_domain": "environments answer as <env>.<site>.<preview_domain> (unset: <env>.<site>.localhost)",
    "dns_provider": "provider account whose DNS API answers DNS-01 challenges (pressluft provider add)",
    "dns_zone": "DNS zone at that provider holding the preview domain (unset: the preview domain)",
}


def check_name(name: object) -> str:
    if name not in NAMES:
        raise ValidationError(f"unknown setting {str(name)[:64]!r}; known: {', '.join(NAMES)}",
                              details={"setting": str(name)[:64]})
    return name


def check_zone(values: Settings) -> None:
    """The zone must hold the preview domain: it is the domain or one of its parents."""
    zone, preview = values.dns_zone, values.preview_domain
    if zone and preview and preview != zone and not preview.endswith("." + zone):
        raise ValidationError(f"dns_zone {zone} does not hold the preview domain {preview}",
                              details={"dns_zone": zone, "preview_domain": preview})


def load(session: Session) -> Settings:
    rows = {r.name: r.value for r in session.scalars(select(Setting)) if r.name in NAMES}
    return schemas.parse(Settings, rows)


def put(session: Session, name: str, value: Any) -> Settings:
    """Set one setting (validated with the others, so the result is consistent); returns them all."""
    check_name(name)
    current = load(session).model_dump(exclude_none=True)
    merged = schemas.parse(Settings, {**current, name: value})
    check_zone(merged)
    row = session.get(Setting, name)
    stored = getattr(merged, name)
    if row is None:
        session.add(Setting(name=name, value=stored, updated_at=utcnow()))
    else:
        row.value, row.updated_at = stored, utcnow()
    session.flush()
    return merged


def remove(session: Session, name: str) -> Settings:
    check_name(name)
    session.execute(delete(Setting).where(Setting.name == name))
    session.flush()
    return load(session)


def preview_host(values: Settings, site: str, env: str) -> str:
    """The name an environment answers to when none is given: <env>.<site>.<preview domain>."""
    return names.validate_domain(f"{env}.{site}.{values.preview_domain or LOCAL_SUFFIX}")


def preview_wildcard(values: Settings, site: str, name: str) -> str | None:
    """*.<site>.<preview domain> when `name` is one label below <site>.<preview domain>, else None.

    A wildcard covers exactly one label, so *.<preview domain> could never cover <env>.<site>.<...>:
    the certificate is the site's own."""
    if not values.preview_domain:
        return None
    parent = f"{site}.{values.preview_domain}"
    first, _, rest = name.partition(".")
    return f"*.{parent}" if rest == parent and first else None
