"""Fixtures for the library tests: a fresh schema on SQLite (file, WAL) and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Base, Environment, Node, Site
from tests.rig.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = db.make_engine(postgres_url, pool_size=10)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sf(request, tmp_path) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker on an empty schema, once per backend."""
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path}/pressluft.db")
        Base.metadata.create_all(engine)
    else:
        engine = request.getfixturevalue("pg_engine")
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield db.session_factory(engine)
    if request.param == "sqlite":
        engine.dispose()


@pytest.fixture
def make_site(sf) -> Callable[..., Site]:
    """make_site(name, state="active", node="n1", env=None) -> Site (committed; node created on demand)."""

    def factory(name: str = "blog", state: str = "active", node: str = "n1", env: str | None = None) -> Site:
        with sf.begin() as s:
            n = s.query(Node).filter_by(name=node).one_or_none()
            if n is None:
                n = Node(name=node, host="127.0.0.1", state="active")
                s.add(n)
                s.flush()
            site = Site(name=name, node_id=n.id, state=state)
            s.add(site)
            s.flush()
            if env:
                s.add(Environment(site_id=site.id, name=env, state=state))
        return site

    return factory
