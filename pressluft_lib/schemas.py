"""Pydantic models validating every input at the library boundary (CLI and services use these).

`parse(Model, data)` turns pydantic's errors into one ValidationError (code invalid_input).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from pressluft_lib import jobtypes, names
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
