"""Secrets are encrypted at rest, keyed by env var or a 0600 key file, and never shown."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from pressluft_lib.errors import ConfigError, NotFound, SecretError, ValidationError
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Secret
from pressluft_lib.storage.secret_store import KEY_ENV, SecretStore, key_file_path, load_key


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    url = f"sqlite:///{tmp_path}/data/pressluft.db"
    db.upgrade(url)
    return url


def test_roundtrip_encrypted_at_rest(sqlite_url):
    store = SecretStore(url=sqlite_url)
    sf = db.session_factory(sqlite_url)
    with sf.begin() as s:
        store.put(s, "env:blog_production", "db_password", "s3cr3t-value")
    with sf() as s:
        raw = s.scalar(select(Secret.ciphertext))
        assert b"s3cr3t-value" not in raw
        assert store.get(s, "env:blog_production", "db_password") == "s3cr3t-value"
        assert store.names(s, "env:blog_production") == ["db_password"]
    with sf.begin() as s:
        store.put(s, "env:blog_production", "db_password", "rotated")
    with sf.begin() as s:
        assert store.get(s, "env:blog_production", "db_password") == "rotated"
        assert store.delete(s, "env:blog_production", "db_password") is True
        with pytest.raises(NotFound):
            store.get(s, "env:blog_production", "db_password")
    assert "s3cr3t" not in repr(store)


def test_key_file_created_0600_and_reused(sqlite_url):
    path = key_file_path(sqlite_url)
    assert not path.exists()
    key = load_key(sqlite_url)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(sqlite_url) == key


def test_key_file_readable_by_others_is_refused(sqlite_url):
    path = key_file_path(sqlite_url)
    load_key(sqlite_url)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        SecretStore(url=sqlite_url)


def test_env_key_and_wrong_key(sqlite_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    sf = db.session_factory(sqlite_url)
    with sf.begin() as s:
        SecretStore(url=sqlite_url).put(s, "node:web1", "root_token", "abc")
    assert not key_file_path(sqlite_url).exists()  # the env key was used
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with sf() as s, pytest.raises(SecretError) as exc:
        SecretStore(url=sqlite_url).get(s, "node:web1", "root_token")
    assert "abc" not in str(exc.value)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match="not a valid Fernet key"):
        SecretStore(url=sqlite_url)


def test_invalid_scope_and_name(sqlite_url):
    store = SecretStore(Fernet.generate_key())
    with db.session_factory(sqlite_url).begin() as s:
        for scope, name in (("env blog", "x"), ("env:../x", "x"), ("env:blog_production", "Bad Name")):
            with pytest.raises(ValidationError):
                store.put(s, scope, name, "v")
        with pytest.raises(ValidationError):
            store.put(s, "global", "x", 123)
