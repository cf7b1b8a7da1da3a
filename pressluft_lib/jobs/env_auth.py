"""HTTP basic auth of an environment on the control plane (job env_auth; docs/environments.md): the input
checks and the after hook. services/environments.py enqueues it.

The password lives in the environment's secret scope as `basic_auth_password` (the job gets it as
pressluft_basic_auth_password, like every secret of the environment); the node keeps only its hash
(module env_auth). The user name is not a secret: it travels in the payload and the job's result.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from pressluft_lib import names
from pressluft_lib.errors import ValidationError
from pressluft_lib.states import JobState
from pressluft_lib.storage.models import Environment, Job, Secret
from pressluft_lib.storage.secret_store import SecretStore

JOB_TYPE = "env_auth"
PASSWORD_SECRET = "basic_auth_password"
STATE_KEY, USER_KEY = "pressluft_basic_auth_state", "pressluft_basic_auth_user"
# The node's module checks the same (module_utils/_env_auth.py): no ':' and nothing nginx or a shell
# could read as anything but a word.
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PROBE_USER = "pressluft-probe"  # the node's health checks log in with it
PASSWORD_MIN, PASSWORD_MAX = 8, 128


def check_user(user: object) -> str:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        raise ValidationError(f"invalid basic auth user {str(user)[:80]!r}: 1-64 letters, digits, '.', '_' "
                              "and '-', starting with a letter or digit", details={"user": str(user)[:80]})
    if user == PROBE_USER:
        raise ValidationError(f"basic auth user {user!r} is reserved for the node's health checks")
    return user


def check_password(password: object) -> str:
    """The password itself is never part of the error."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationError(f"the basic auth password must have {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if not password.isprintable():
        raise ValidationError("the basic auth password must not contain control characters or line breaks")
    return password


def check_env(site: str, env: str) -> None:
    if env == names.DEFAULT_ENV:
        raise ValidationError(f"basic auth is for non-production environments: {site}/{env} stays public",
                              details={"site": site, "env": env})


def new_password() -> str:
    return secrets.token_urlsafe(18)


def store_password(session: Session, url: str, site: str, env: str, password: str) -> None:
    SecretStore(url=url).put(session, names.env_secret_scope(site, env), PASSWORD_SECRET, password)


def after_env_auth(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    """Auth switched off on the node: the password goes from the secret store too."""
    off = (job.payload or {}).get(STATE_KEY) == "absent"
    if job.state != JobState.SUCCEEDED or not off or job.env_id is None:
        return
    env = session.get(Environment, job.env_id)
    if env is not None:  # a row delete needs no key (SecretStore would load one)
        scope = names.env_secret_scope(env.site.name, env.name)
        session.execute(delete(Secret).where(Secret.scope == scope, Secret.name == PASSWORD_SECRET))
