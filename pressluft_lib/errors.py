"""Errors of the control plane: a stable string `code` for machines and an `exit_code` for the CLI."""

from __future__ import annotations

from typing import Any


class PressluftError(Exception):
    """Base error. `code` is stable API (scripts match on it); `message` is for humans."""

    code = "error"
    exit_code = 1

    def __init__(self, code: str | None = None, message: str = "", *, details: dict[str, Any] | None = None):
        if code is not None:
            self.code = code
        self.message = message or self.code
        self.details = details or {}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class _Coded(PressluftError):
    """Subclasses carry their code; they are raised as `Cls(message, details=...)`."""

    def __init__(self, message: str = "", *, details: dict[str, Any] | None = None):
        super().__init__(None, message, details=details)


class ValidationError(_Coded, ValueError):
    """Bad input; also a ValueError so pydantic validators can raise it."""

    code = "invalid_input"
    exit_code = 2


class NotFound(_Coded):
    code = "not_found"
    exit_code = 3


class ConflictError(_Coded):
    """Another job holds the site/node, or a guarded update lost a race."""

    code = "conflict"
    exit_code = 4


class TransitionError(_Coded):
    code = "forbidden_transition"
    exit_code = 5


class StaleFencingToken(_Coded):
    code = "stale_fencing_token"
    exit_code = 6


class ConfigError(_Coded):
    """Bad configuration of the control plane itself (database URL, secret key file, ...)."""

    code = "config_error"
    exit_code = 7


class SecretError(_Coded):
    """A secret cannot be decrypted (wrong key or tampered ciphertext)."""

    code = "secret_error"
    exit_code = 8


class DatabaseError(_Coded):
    """The control-plane database cannot be reached or used (refused, bad password, unwritable file,
    missing driver, schema not migrated)."""

    code = "database_error"
    exit_code = 10


class EnvironmentNotActive(_Coded):
    """A node query on an environment that is not serving (creating, failed, deleted...)."""

    code = "environment_not_active"
    exit_code = 12


class NodeUnreachable(_Coded):
    """A node query found no answer within its deadline (refused, silent, or the SSH login failed)."""

    code = "node_unreachable"
    exit_code = 13


class WpCliError(_Coded):
    """WP-CLI ran on the node and failed (or printed something that is not the expected answer)."""

    code = "wp_cli_error"
    exit_code = 14
