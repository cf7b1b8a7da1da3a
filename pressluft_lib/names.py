"""Name rules of docs/contracts.md; every boundary (schemas, CLI, services) validates through here."""

from __future__ import annotations

import re

from pressluft_lib.errors import ValidationError

DEFAULT_ENV = "production"
# Secret-store scopes: the backup repository's credentials (only backup job types get them) ...
BACKUP_SECRET_SCOPE = "global:backup"


def env_secret_scope(site: str, env: str) -> str:
    """... and one environment's generated secrets (every job on that environment gets them)."""
    return f"env:{site}_{env}"

# A job type listing this scope gets its node's provider account's secrets (the API token): the scope
# is `provider:<name>` of the node the job runs for (runner.load_secrets).
PROVIDER_SECRET_SCOPE = "provider"
PROVIDER_TOKEN = "api_token"  # the secret's name in that scope; a job sees it as pressluft_api_token


def provider_secret_scope(name: str) -> str:
    return f"provider:{name}"


_PROVIDER_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")


def validate_provider(name: object) -> str:
    name = _check_str("provider", name)
    if not _PROVIDER_RE.fullmatch(name):
        raise ValidationError(
            f"invalid provider name {name!r}: 1-31 lowercase letters, digits or '-', starting with a letter",
            details={"provider": name},
        )
    return name


RESERVED_NAMES = frozenset(
    "root admin administrator mysql mariadb nginx redis postgres www wwwdata daemon bin sys sync games "
    "man lp mail news uucp proxy backup list irc nobody systemd sshd messagebus pressluft debian ubuntu "
    "sudo".split()
)

# Node names are inventory host names: never one of Ansible's own groups or hosts, nor the group the
# inventory plugin puts every node in (a node named `all` made every playbook fail with a group loop).
# The plugin's other groups (provider_*, role_*) contain `_`, which a node name cannot.
RESERVED_NODE_NAMES = frozenset(("all", "ungrouped", "localhost", "pressluft"))
# `<site>_<env>` names the environment's MariaDB schema and user: never a system schema
# (site `information` + env `schema` would have been information_schema).
RESERVED_ENV_NAMES = frozenset(("information_schema", "performance_schema", "mysql", "sys"))

_SITE_RE = re.compile(r"[a-z][a-z0-9]{1,19}")
_ENV_RE = re.compile(r"[a-z][a-z0-9]{1,10}")
_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# Node names end up as inventory host names: keep them DNS-label-like.
_NODE_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?")


def _check_str(kind: str, value: object) -> str:
    if not isinstance(value, str):
        got = type(value).__name__
        raise ValidationError(f"{kind} name must be a string, got {got}", details={kind: repr(value)})
    return value


def validate_site(name: object) -> str:
    name = _check_str("site", name)
    if not _SITE_RE.fullmatch(name):
        raise ValidationError(
            f"invalid site name {name!r}: 2-20 lowercase letters or digits, starting with a letter",
            details={"site": name},
        )
    if name in RESERVED_NAMES:
        raise ValidationError(f"site name {name!r} is reserved", details={"site": name})
    return name


def validate_env(name: object) -> str:
    name = _check_str("env", name)
    if not _ENV_RE.fullmatch(name):
        raise ValidationError(
            f"invalid environment name {name!r}: 2-11 lowercase letters or digits, starting with a letter",
            details={"env": name},
        )
    return name


def validate_domain(name: object) -> str:
    name = _check_str("domain", name)
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise ValidationError(
            f"invalid domain {name!r}: lowercase RFC 1123 host name with at least two labels",
            details={"domain": name},
        )
    return name


def normalize_domain(name: object) -> str:
    """A name as typed (Unicode or A-labels, any case, a trailing dot) -> its checked A-label form.

    IDNA 2008 with UTS #46 mapping (what browsers do), so `Bücher.Example` and `xn--bcher-kva.example`
    are one name; wildcards are refused (they need DNS-01, docs/domains.md).
    """
    import idna  # only the domain verbs need it

    name = _check_str("domain", name)
    raw = name[:-1] if name.endswith(".") else name
    if not raw or len(raw) > 253 or any(c.isspace() or c in "*/\\@:" for c in raw):
        raise ValidationError(f"invalid domain {name[:100]!r}: a host name such as www.example.com",
                              details={"domain": name[:100]})
    try:
        ascii_name = idna.encode(raw, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise ValidationError(
            f"invalid domain {name[:100]!r}: {exc}", details={"domain": name[:100]}
        ) from None
    return validate_domain(ascii_name)


def validate_node(name: object) -> str:
    name = _check_str("node", name)
    if not _NODE_RE.fullmatch(name):
        raise ValidationError(
            f"invalid node name {name!r}: lowercase letters, digits, '.' and '-', at most 63 characters",
            details={"node": name},
        )
    if name in RESERVED_NODE_NAMES:
        raise ValidationError(
            f"node name {name!r} is reserved (inventory groups and hosts: "
            f"{', '.join(sorted(RESERVED_NODE_NAMES))})",
            details={"node": name},
        )
    return name


def validate_env_pair(site: object, env: object) -> tuple[str, str]:
    """(site, env) whose derived name `<site>_<env>` is not reserved."""
    site, env = validate_site(site), validate_env(env)
    if f"{site}_{env}" in RESERVED_ENV_NAMES:
        raise ValidationError(
            f"site {site!r} with environment {env!r} is reserved: {site}_{env} is a MariaDB system schema",
            details={"site": site, "env": env},
        )
    return site, env


def env_user(site: str, env: str = DEFAULT_ENV) -> str:
    """Linux user, DB name/user, Redis ACL user and PHP-FPM pool name of an environment."""
    site, env = validate_env_pair(site, env)
    return f"{site}_{env}"
