"""Queue claim throughput: N worker processes claim + finish M jobs; prints claims/s and double claims.

    .venv/bin/python benchmarks/claims.py [--jobs 10000] [--workers 8] [--backend sqlite|postgresql|both]

PostgreSQL runs in a throwaway cluster of the host's PostgreSQL 15 (tests/rig/postgres.py) with
durable defaults (fsync on); --fast turns fsync/synchronous_commit off. Every job belongs to its own
site (as in production: one active job per site), so finish() also settles the site (creating -> active).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from pressluft_lib import queue
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job, JobEvent, Node, Site, utcnow


def seed(url: str, jobs: int) -> None:
    db.upgrade(url)
    engine = db.make_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        node_id = conn.execute(
            insert(Node).values(name="bench", host="127.0.0.1").returning(Node.id)
        ).scalar_one()
        conn.execute(
            insert(Site),
            [
                {"name": f"s{i}", "node_id": node_id, "state": "creating", "last_fencing_token": 1}
                for i in range(jobs)
            ],
        )
        site_ids = conn.execute(select(Site.id).order_by(Site.id)).scalars().all()
        conn.execute(
            insert(Job),
            [
                {"type": "site_create", "site_id": sid, "node_id": node_id, "lock_key": f"site:{sid}",
                 "fencing_token": 1, "payload": {}, "created_at": now, "updated_at": now}
                for sid in site_ids
            ],
        )  # fmt: skip
    if engine.dialect.name == "postgresql":  # planner statistics, as autovacuum would give
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _stat(path: Path) -> list[str]:
    return path.read_text().rsplit(")", 1)[1].split()  # fields from 3 (state) on


def _children(pid: int) -> list[list[str]]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            f = _stat(stat)
        except OSError:  # exited meanwhile: its time is in the parent's cutime now
            continue
        if f[1] == str(pid):
            found.append(f)
    return found


def process_tree_cpu(pid: int, settle_to: int | None = None) -> tuple[float, int]:
    """CPU seconds of the PostgreSQL server (postmaster, reaped and live children) and its child count.

    settle_to: first wait (up to 10 s) until no more than that many children are left, so that the
    benchmark's backends have exited and been reaped (an exiting backend's time is in neither place).
    """
    deadline = time.monotonic() + 10
    while settle_to is not None and len(_children(pid)) > settle_to and time.monotonic() < deadline:
        time.sleep(0.05)
    own = _stat(Path(f"/proc/{pid}/stat"))
    children = _children(pid)
    ticks = sum(int(v) for v in own[11:15]) + sum(int(f[11]) + int(f[12]) for f in children)
    return ticks / os.sysconf("SC_CLK_TCK"), len(children)


def work(url: str, name: str, start, out) -> None:
    sf = db.session_factory(db.make_engine(url, pool_size=1))
    start.wait()
    claimed = []
    while (job := queue.claim(sf, name)) is not None:
        claimed.append(job.id)
        queue.finish(sf, job, "succeeded", worker_id=name)
    out.put(claimed)


def run(url: str, jobs: int, workers: int, server_pid: int | None = None) -> dict:
    seed(url, jobs)
    ctx = mp.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=work, args=(url, f"w{i}", start, out)) for i in range(workers)]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = usage.ru_utime + usage.ru_stime
    server0, background = process_tree_cpu(server_pid) if server_pid else (0.0, 0)
    for p in procs:
        p.start()
    time.sleep(1.0)  # let every worker connect before the clock starts
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=3600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    # CPU the workers used (load-independent): tells what an idle machine could do.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = usage.ru_utime + usage.ru_stime - cpu0
    server_cpu = process_tree_cpu(server_pid, settle_to=background)[0] - server0 if server_pid else None
    ids = [i for r in results for i in r]
    engine = db.make_engine(url)
    with engine.connect() as conn:
        succeeded = conn.scalar(select(func.count()).select_from(Job).where(Job.state == "succeeded"))
        max_attempts = conn.scalar(select(func.max(Job.attempts)))
        events = conn.scalar(select(func.count()).select_from(JobEvent))
        active_sites = conn.scalar(select(func.count()).select_from(Site).where(Site.state == "active"))
    engine.dispose()
    return {
        "jobs": jobs,
        "workers": workers,
        "seconds": round(elapsed, 2),
        "claims_per_s": round(len(ids) / elapsed, 1),
        "worker_cpu_ms_per_job": round(worker_cpu * 1000 / max(len(ids), 1), 2),
        **({"server_cpu_ms_per_job": round(server_cpu * 1000 / max(len(ids), 1), 2)} if server_pid else {}),
        "load_avg_1m": round(os.getloadavg()[0], 1),
        "double_claims": len(ids) - len(set(ids)) + (max_attempts - 1 if max_attempts else 0),
        "claimed": len(set(ids)),
        "succeeded": succeeded,
        "events": events,
        "sites_active": active_sites,
        "per_worker": sorted(len(r) for r in results),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--fast", action="store_true", help="PostgreSQL with fsync and synchronous_commit off")
    args = ap.parse_args()
    ok = True
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            res = run(f"sqlite:///{tmp}/bench.db", args.jobs, args.workers)
        print("sqlite     ", res, flush=True)
        ok &= res["double_claims"] == 0 and res["succeeded"] == args.jobs
    if args.backend in ("postgresql", "both"):
        from tests.rig.postgres import start_cluster

        cluster = start_cluster(durable=not args.fast)
        try:
            pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
            res = run(cluster.create_database("bench"), args.jobs, args.workers, server_pid=pid)
        finally:
            cluster.stop()
        print("postgresql ", res, flush=True)
        ok &= res["double_claims"] == 0 and res["succeeded"] == args.jobs
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
