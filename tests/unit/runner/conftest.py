"""A control-plane database with a local node and tiny job types whose playbooks live in this directory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from pressluft_lib import jobtypes
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Node

PLAYBOOKS = Path(__file__).parent / "playbooks"
# The tiny types' --var allowlist: every tiny_* knob their stand-in playbooks read (and x_word).
TINY_VARS = frozenset(
    {"x_word"} | {m for f in PLAYBOOKS.glob("*.yml") for m in re.findall(r"\btiny_[a-z_]+", f.read_text())}
)


@dataclass
class ControlPlaneDb:
    url: str
    sf: sessionmaker
    data_dir: Path
    db_file: Path


@pytest.fixture
def tiny_types() -> Iterator[None]:
    added = [
        jobtypes.register(
            jobtypes.JobType(
                "tiny", "node", destructive=False, timeout=600, max_attempts=1, variables=TINY_VARS
            )
        ),
        jobtypes.register(
            jobtypes.JobType(
                "tiny_site", "site", destructive=False, timeout=600, max_attempts=1, variables=TINY_VARS
            )
        ),
        jobtypes.register(
            jobtypes.JobType(
                "tiny_broken", "node", destructive=False, timeout=600, max_attempts=1, variables=TINY_VARS
            )
        ),
    ]
    yield
    for jt in added:
        jobtypes.JOB_TYPES.pop(jt.name, None)


@pytest.fixture
def cp(tmp_path, monkeypatch, tiny_types) -> ControlPlaneDb:
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PRESSLUFT_DB", raising=False)
    monkeypatch.delenv("PRESSLUFT_SECRET_KEY", raising=False)
    db_file = tmp_path / "home" / "cp.db"
    url = f"sqlite:///{db_file}"
    db.upgrade(url)
    sf = db.session_factory(url)
    with sf.begin() as s:
        s.add(Node(name="local", host="localhost", local=True, provider="local", state="active"))
    return ControlPlaneDb(url, sf, tmp_path / "home", db_file)
