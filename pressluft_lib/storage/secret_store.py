"""Secrets encrypted at rest (Fernet). Key: $PRESSLUFT_SECRET_KEY, else a 0600 key file beside the DB.

Values are never logged or put into exceptions; only scope and name are.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from pressluft_lib.errors import ConfigError, NotFound, SecretError, ValidationError
from pressluft_lib.storage import db as dbmod
from pressluft_lib.storage.models import Secret, utcnow

KEY_ENV = "PRESSLUFT_SECRET_KEY"
KEY_FILE = "secret.key"
_SCOPE_RE = re.compile(r"(env|node|site|global|provider):[a-z0-9_.-]{1,58}|global")
_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,127}")
# Sealed returns (plugins/filter/seal.py has the format): the X25519 key is derived from the store's key.
SEAL_INFO = b"pressluft seal v1"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _hkdf(info: bytes, secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def key_file_path(url: str | None = None) -> Path:
    """The key file beside a SQLite DB; for other databases the Pressluft data dir."""
    url = url or dbmod.default_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///") :]).expanduser().parent / KEY_FILE
    return dbmod.data_dir() / KEY_FILE


def _read_key_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"secret key file {path} is accessible by group/other (mode {mode & 0o777:o}): chmod 600 it"
            )
        return os.read(fd, 4096).strip()
    finally:
        os.close(fd)


def load_key(url: str | None = None, *, create: bool = True) -> bytes:
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    path = key_file_path(url)
    if not path.exists():
        if not create:
            raise ConfigError(f"no secret key: set {KEY_ENV} or create {path}")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return _read_key_file(path)  # another process created it first
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
    return _read_key_file(path)


class SecretStore:
    def __init__(self, key: bytes | None = None, *, url: str | None = None):
        key = key if key is not None else load_key(url)
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise ConfigError("the secret key is not a valid Fernet key (32 url-safe base64 bytes)") from None
        self._key = key

    def __repr__(self) -> str:
        return "SecretStore(<key hidden>)"

    @functools.cached_property
    def _sealing(self) -> X25519PrivateKey:
        """Derived only when a job seals or opens a value: most stores just read and write secrets."""
        return X25519PrivateKey.from_private_bytes(_hkdf(b"pressluft sealing key", self._key))

    def sealing_public_key(self) -> str:
        """The public key (base64) that playbooks seal returned secrets to (pressluft_seal_to)."""
        return base64.b64encode(self._sealing.public_key().public_bytes(*_RAW)).decode()

    def unseal(self, sealed: str) -> Any:
        """The value a playbook sealed with pressluft.wordpress.seal; SecretError when it is not ours."""
        try:
            blob = base64.b64decode(sealed, validate=True)
            peer, ciphertext = blob[:32], blob[32:]
            shared = self._sealing.exchange(X25519PublicKey.from_public_bytes(peer))
            ours = self._sealing.public_key().public_bytes(*_RAW)
            key = _hkdf(SEAL_INFO + peer + ours, shared)
            return json.loads(ChaCha20Poly1305(key).decrypt(bytes(12), ciphertext, None))
        except (binascii.Error, ValueError, TypeError, InvalidTag):
            raise SecretError("a sealed value could not be opened with this control plane's key") from None

    @staticmethod
    def _check(scope: str, name: str) -> None:
        if not isinstance(scope, str) or not _SCOPE_RE.fullmatch(scope):
            raise ValidationError(f"invalid secret scope {scope!r}: e.g. 'env:<site>_<env>', 'node:<name>'")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValidationError(f"invalid secret name {name!r}")

    def put(self, session: Session, scope: str, name: str, value: str) -> None:
        """Create or replace a secret in the caller's transaction."""
        self._check(scope, name)
        if not isinstance(value, str):
            raise ValidationError("a secret value must be a string")
        token = self._fernet.encrypt(value.encode())
        row = session.scalar(select(Secret).where(Secret.scope == scope, Secret.name == name))
        if row is None:
            session.add(Secret(scope=scope, name=name, ciphertext=token))
        else:
            row.ciphertext = token
            row.updated_at = utcnow()
        session.flush()

    def get(self, session: Session, scope: str, name: str) -> str:
        self._check(scope, name)
        token = session.scalar(select(Secret.ciphertext).where(Secret.scope == scope, Secret.name == name))
        if token is None:
            raise NotFound(f"secret {scope}/{name} does not exist")
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise SecretError(f"secret {scope}/{name} cannot be decrypted with this key") from None

    def names(self, session: Session, scope: str) -> list[str]:
        return list(session.scalars(select(Secret.name).where(Secret.scope == scope).order_by(Secret.name)))

    def delete(self, session: Session, scope: str, name: str) -> bool:
        self._check(scope, name)
        row = session.scalar(select(Secret).where(Secret.scope == scope, Secret.name == name))
        if row is not None:
            session.delete(row)
            session.flush()
        return row is not None
