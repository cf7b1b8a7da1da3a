"""50 concurrent enqueues on one site: exactly one accepted, 49 ConflictErrors naming the holder."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from pressluft_lib import queue
from pressluft_lib.errors import ConflictError
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job, Site

N = 50


def test_fifty_concurrent_enqueues_one_winner(sf, make_site):
    make_site("blog", state="creating")
    # One connection per thread, all opened before the barrier so the enqueues really overlap.
    racer = db.session_factory(db.make_engine(sf.kw["bind"].url, poolclass=NullPool))
    barrier = threading.Barrier(N)
    accepted: list[int] = []
    conflicts: list[ConflictError] = []
    other: list[BaseException] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        with racer() as s:
            s.connection()  # connect (and on SQLite: BEGIN IMMEDIATE) only after everyone is ready
            s.rollback()
            barrier.wait(timeout=30)
            try:
                with s.begin():
                    job = queue.enqueue(s, "site_create", site="blog", actor=f"t{i}")
                with lock:
                    accepted.append(job.id)
            except ConflictError as exc:
                with lock:
                    conflicts.append(exc)
            except BaseException as exc:
                with lock:
                    other.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not other, other[:3]
    assert len(accepted) == 1 and len(conflicts) == N - 1
    assert all("site blog is busy" in c.message for c in conflicts)
    assert sum(c.details.get("job_id") == accepted[0] for c in conflicts) >= 1
    with sf() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        assert s.scalar(select(Site.last_fencing_token).where(Site.name == "blog")) == 1
