"""Pydantic models validating every input at the library boundary (CLI and services use these).

`parse(Model, data)` turns pydantic's errors into one ValidationError (code invalid_input).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from pressluft_lib import jobtypes, names, urls
from pressluft_lib.errors import ValidationError
from pressluft_lib.states import JobState

SiteName = Annotated[str, AfterValidator(names.validate_site)]
EnvName = Annotated[str, AfterValidator(names.validate_env)]
DomainName = Annotated[str, AfterValidator(names.validate_domain)]
NodeName = Annotated[str, AfterValidator(names.validate_node)]
PhpVersion = Annotated[str, Field(pattern=r"^[5-9]\.[0-9]$")]
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=True)


class NodeCreate(_Input):
    name: NodeName
    host: str
    port: int = Field(22, ge=1, le=65535)
    user: str = "root"
    ssh_key_path: str | None = None
    local: bool = False
    provider: Literal["static", "hcloud", "local"] = "static"
    roles: list[Literal["web", "db", "cache", "backup"]] = Field(
        default_factory=lambda: ["web", "db", "cache"]
    )

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
            return v
        except ValueError:
            if _HOST_RE.fullmatch(v):
                return v
        raise ValueError(f"invalid host {v!r}: an IP address or DNS name")

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not _USER_RE.fullmatch(v):
            raise ValueError(f"invalid SSH user {v!r}")
        return v

    @field_validator("ssh_key_path")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or "\x00" in v):
            raise ValueError("ssh_key_path must be an absolute path")
        return v


class Retention(_Input):
    daily: int | None = Field(None, ge=0, le=366)
    weekly: int | None = Field(None, ge=0, le=520)
    monthly: int | None = Field(None, ge=0, le=240)


class SiteCreate(_Input):
    name: SiteName
    node: NodeName
    env: EnvName = names.DEFAULT_ENV
    domains: list[DomainName] = Field(default_factory=list, max_length=100)
    php_version: PhpVersion | None = None
    retention: Retention | None = None

    @field_validator("domains")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("domains must be unique")
        return v

    @model_validator(mode="after")
    def _pair(self) -> SiteCreate:
        names.validate_env_pair(self.name, self.env)
        return self

    def effective_domains(self) -> list[str]:
        """The contract default: `<site>.localhost` when no domain is given."""
        return list(self.domains) or [f"{self.name}.localhost"]


_LINE_RE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_ADMIN_RE = re.compile(r"[A-Za-z0-9._@-]{1,60}")
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_HTTP_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[^\s\x00-\x1f\x7f]{0,1000}")


def _file(value: str | None, what: str) -> str | None:
    """An existing regular file on this machine, made absolute (the worker reads it)."""
    if value is None:
        return None
    if "\x00" in value or not value:
        raise ValueError(f"{what} must be a file path")
    try:
        path = Path(value).expanduser().absolute()
        ok = path.is_file()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{what} {value!r} is not a readable file")
    return str(path)


class SiteOptions(_Input):
    """What `site create` passes to site_create besides names (pressluft_wordpress_* variables)."""

    wordpress_src: str | None = None
    wordpress_url: str | None = None
    wordpress_checksum: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = None
    title: str | None = None
    admin_user: str | None = None
    admin_email: str | None = None

    @field_validator("wordpress_src")
    @classmethod
    def _src(cls, v: str | None) -> str | None:
        return _file(v, "the WordPress archive")

    @field_validator("wordpress_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            urls.refuse_credentials(v, "WordPress URL", "use a public URL")
            if not _HTTP_URL_RE.fullmatch(v):
                raise ValueError("the WordPress URL must be an http(s) URL of an archive")
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str | None) -> str | None:
        if v is not None and not _LINE_RE.fullmatch(v):
            raise ValueError("the title must be one line of 1-200 characters")
        return v

    @field_validator("admin_user")
    @classmethod
    def _admin(cls, v: str | None) -> str | None:
        if v is not None and not _ADMIN_RE.fullmatch(v):
            raise ValueError("the admin user must be 1-60 letters, digits or . _ @ -")
        return v

    @field_validator("admin_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 254 or not _EMAIL_RE.fullmatch(v)):
            raise ValueError("the admin e-mail must be an address like admin@example.com")
        return v

    def payload(self) -> dict[str, str]:
        if self.wordpress_src and self.wordpress_url:
            raise ValidationError("give --wordpress-src or --wordpress-url, not both")
        if bool(self.wordpress_url) != bool(self.wordpress_checksum):
            raise ValidationError("--wordpress-url goes with --wordpress-checksum sha256:<hex>")
        data = self.model_dump()
        given = {k if k.startswith("wordpress_") else f"wordpress_{k}": v for k, v in data.items()}
        return {f"pressluft_{k}": v for k, v in given.items() if v is not None}


class NodeOptions(_Input):
    """What `node provision` passes besides --var: hardening, and a WP-CLI phar for offline nodes."""

    hardening: bool | None = None
    wpcli_src: str | None = None
    wpcli_sha512: Annotated[str, Field(pattern=r"^([0-9a-f]{128})?$")] | None = None

    @field_validator("wpcli_src")
    @classmethod
    def _src(cls, v: str | None) -> str | None:
        return _file(v, "the WP-CLI phar")

    def split(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(control-plane payload, node role variables)."""
        payload = {} if self.hardening is None else {"pressluft_hardening_enabled": self.hardening}
        given = (("node_wpcli_src", self.wpcli_src), ("node_wpcli_sha512", self.wpcli_sha512))
        roles = {k: v for k, v in given if v is not None}
        return payload, roles


class EnvRef(_Input):
    site: SiteName
    env: EnvName = names.DEFAULT_ENV

    @model_validator(mode="after")
    def _pair(self) -> EnvRef:
        names.validate_env_pair(self.site, self.env)
        return self


class JobFilter(_Input):
    site: SiteName | None = None
    node: NodeName | None = None
    state: list[JobState] | None = None
    type: str | None = None
    limit: int = Field(50, ge=1, le=1000)

    @field_validator("type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is not None:
            jobtypes.get(v)
        return v


class JobCreate(_Input):
    type: str
    site: SiteName | None = None
    env: EnvName | None = None
    node: NodeName | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        jobtypes.get(v)
        return v


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate `data` into `model`; one ValidationError listing every problem."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or model.__name__
            cause = err.get("ctx", {}).get("error")
            msg = cause.message if isinstance(cause, ValidationError) else err["msg"]
            problems.append(f"{where}: {msg}")
        raise ValidationError("; ".join(problems), details={"errors": problems}) from None
