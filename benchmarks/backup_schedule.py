"""`pressluft backup schedule` over many sites: how long one timer run takes on SQLite.

Sites with a year of daily completed backups each (the cleanup plan then walks every one of
them); run 1 queues a backup for every site (all due), the backup jobs are then finished,
run 2 finds nothing due and queues one cleanup per site; run 3 finds every site busy.

    .venv/bin/python -m benchmarks.backup_schedule [--sites 200] [--days 365]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy import insert, select

from pressluft_lib import jobtypes, queue
from pressluft_lib.services import ControlPlane
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Backup, Environment, Job, Node, Site, utcnow


def populate(url: str, sites: int, days: int) -> None:
    now = utcnow().replace(microsecond=0)
    with db.session_factory(url).begin() as s:
        node = Node(name="n1", host="127.0.0.1", state="active")
        s.add(node)
        s.flush()
        for i in range(sites):
            site = Site(name=f"site{i:04d}", node_id=node.id, state="active")
            s.add(site)
            s.flush()
            env = Environment(site_id=site.id, name="production", state="active")
            s.add(env)
            s.flush()
            rows = [
                {"env_id": env.id, "state": "completed", "scope": "full", "location": "/x",
                 "created_at": now - timedelta(days=d, hours=2), "updated_at": now,
                 "manifest": {"trigger": "schedule"}}
                for d in range(1, days + 1)
            ]
            s.execute(insert(Backup), rows)


def timed(label: str, fn):
    start = time.perf_counter()
    out = fn()
    took = time.perf_counter() - start
    print(f"{label}: {took:.2f} s, queued {len(out['enqueued'])}, skipped {len(out['skipped'])}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    os.environ.setdefault("PRESSLUFT_SECRET_KEY", Fernet.generate_key().decode())
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cp.db"
        db.upgrade(url)
        populate(url, args.sites, args.days)
        cp = ControlPlane(url, actor="bench")
        print(f"{args.sites} sites x {args.days} completed daily backups")
        timed("run 1 (every site due: backups)", cp.backup_schedule)
        sf = cp.session_factory
        while (job := queue.claim(sf, "bench")) is not None:
            with sf.begin() as s:
                done = queue.finish(s, job, "succeeded", worker_id="bench")
                bid = done.payload["pressluft_backup_id"]
                artifacts = {"pressluft_backup": {"id": bid, "location": "/x"}}
                jobtypes.get(done.type).run_after(s, done, artifacts)
        out = timed("run 2 (nothing due: cleanups)", cp.backup_schedule)
        removed = sum(len(e["remove"]) for e in out["enqueued"])
        print(f"  cleanups remove {removed} backups ({removed / max(len(out['enqueued']), 1):.0f} per site)")
        timed("run 3 (every site busy)", cp.backup_schedule)
        with sf() as s:
            assert s.scalar(select(Job.id).where(Job.state == "running")) is None


if __name__ == "__main__":
    main()
