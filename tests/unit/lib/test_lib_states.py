"""Every allowed and every forbidden transition of every state machine, and guarded-update races."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from pressluft_lib.errors import ConflictError, TransitionError
from pressluft_lib.storage import db, transitions
from pressluft_lib.storage.models import (
    AuditLog,
    Backup,
    Base,
    Domain,
    Environment,
    Job,
    JobEvent,
    Node,
    Release,
    Site,
)

CASES = [
    (model, current, new, new in table[current])
    for model, table in transitions.MACHINES.items()
    for current in table
    for new in table
    if new != current
]


@pytest.fixture(scope="module")
def walk_sf(tmp_path_factory):
    engine = db.make_engine(f"sqlite:///{tmp_path_factory.mktemp('states')}/s.db")
    Base.metadata.create_all(engine)
    with db.session_factory(engine).begin() as s:
        node = Node(name="n1", host="127.0.0.1")
        s.add(node)
        s.flush()
        site = Site(name="blog", node_id=node.id)
        s.add(site)
        s.flush()
        env = Environment(site_id=site.id, name="production")
        s.add(env)
    yield db.session_factory(engine)
    engine.dispose()


def _make(s, model, state):
    if model is Node:
        obj = Node(name="n2", host="127.0.0.1", state=state)
    elif model is Site:
        obj = Site(name="shop", node_id=1, state=state)
    elif model is Environment:
        obj = Environment(site_id=1, name="staging", state=state)
    elif model is Job:
        obj = Job(type="site_create", site_id=1, state=state)
    elif model is Release:
        obj = Release(env_id=1, release_id="20260101000000", state=state)
    elif model is Backup:
        obj = Backup(env_id=1, state=state)
    else:
        obj = Domain(env_id=1, name="a.example.com", state=state)
    s.add(obj)
    s.flush()
    return obj


def test_tables_are_closed():
    """Every target state is itself a state of the machine, and every machine has a terminal state."""
    for table in transitions.MACHINES.values():
        assert all(targets <= table.keys() for targets in table.values())
        assert any(not targets for targets in table.values())


@pytest.mark.parametrize(
    ("model", "current", "new", "ok"), CASES, ids=[f"{m.__name__}:{c}->{n}" for m, c, n, _ in CASES]
)
def test_transition(walk_sf, model, current, new, ok):
    with walk_sf() as s, s.begin():
        obj = _make(s, model, current)
        if model is Job and current == "stalled" and new == "queued":
            obj.type = "site_delete"  # destructive: never re-queued
            s.flush()
            with pytest.raises(TransitionError, match="never re-queued"):
                transitions.transition(s, obj, new)
            obj.type = "site_create"
            s.flush()
        if ok:
            transitions.transition(s, obj, new, event={"why": "test"})
            assert obj.state == new
            assert s.scalar(select(model.state).where(model.id == obj.id)) == new
            if model is Job:
                ev = s.scalars(select(JobEvent).where(JobEvent.job_id == obj.id)).one()
                assert (ev.seq, ev.kind, ev.data) == (1, "state", {"from": current, "to": new, "why": "test"})
            else:
                log = s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
                assert (log.action, log.result, log.detail["from"]) == ("transition", new, current)
        else:
            with pytest.raises(TransitionError):
                transitions.transition(s, obj, new)
            assert s.scalar(select(model.state).where(model.id == obj.id)) == current
        s.rollback()


def test_lost_race_is_a_conflict(sf, make_site):
    site = make_site(state="active")
    with sf() as stale_session:
        stale = stale_session.get(Site, site.id)  # loaded while still active
        stale_session.commit()
    with sf.begin() as s:
        transitions.transition(s, s.get(Site, site.id), "deploying")
    with sf.begin() as s:
        with pytest.raises(ConflictError, match="changed concurrently"):
            transitions.transition(s, s.merge(stale, load=False), "updating")
    with sf() as s:
        assert s.get(Site, site.id).state == "deploying"
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 1


def test_concurrent_transitions_one_winner(sf, make_site):
    """Two sessions race active -> (deploying | updating) on one site: exactly one wins."""
    site = make_site(state="active")
    engine = sf.kw["bind"]
    racer = db.session_factory(db.make_engine(engine.url, poolclass=NullPool))
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(target: str) -> None:
        with racer() as s:
            obj = s.get(Site, site.id)
            s.commit()
            barrier.wait(timeout=10)
            try:
                with s.begin():
                    transitions.transition(s, obj, target)
                results[target] = "won"
            except ConflictError as exc:
                results[target] = exc

    threads = [threading.Thread(target=run, args=(t,)) for t in ("deploying", "updating")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(type(r).__name__ for r in results.values()) == ["ConflictError", "str"]
    winner = next(k for k, v in results.items() if v == "won")
    with sf() as s:
        assert s.get(Site, site.id).state == winner
