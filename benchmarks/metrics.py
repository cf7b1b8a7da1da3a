"""`pressluft metrics` on a large control plane: collect + Prometheus render time, and the file size.

Fills a SQLite control-plane database with --sites sites (one node, one environment each, one
completed backup each) and --jobs finished jobs spread over the job types and states, then times
metrics.collect() + prometheus() (median of --repeat) and, for scale, the same on a database 10x
smaller in the same run (the ratio shows how the cost grows). Prints the load before and during.

    .venv/bin/python -m benchmarks.metrics [--sites 2000] [--jobs 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from pressluft_lib.operations import metrics
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Backup, Environment, Job, Node, Site, utcnow

STATES = ("succeeded", "failed", "cancelled", "timed_out", "queued")
TYPES = ("site_create", "backup_create", "env_deploy", "health_check", "backup_cleanup")


def fill(url: str, sites: int, jobs: int) -> None:
    db.upgrade(url)
    sf = db.session_factory(url)
    now = utcnow()
    with sf.begin() as s:
        node_id = s.execute(insert(Node).values(name="web1", host="192.0.2.1", state="active",
                                                created_at=now, updated_at=now).returning(Node.id)).scalar()
        s.execute(insert(Site), [dict(name=f"s{i}", node_id=node_id, state="active", created_at=now,
                                      updated_at=now, incarnation=f"i{i}") for i in range(sites)])
        s.execute(insert(Environment), [dict(site_id=i + 1, name="production", state="active", created_at=now,
                                             updated_at=now) for i in range(sites)])
        s.execute(insert(Backup), [dict(env_id=i + 1, state="completed", created_at=now,
                                        updated_at=now - timedelta(hours=i % 48)) for i in range(sites)])
        s.execute(insert(Job), [dict(type=TYPES[i % len(TYPES)], state=STATES[i % len(STATES)],
                                     site_id=i % sites + 1, created_at=now - timedelta(minutes=i % 3000),
                                     updated_at=now, finished_at=now - timedelta(minutes=i % 3000),
                                     payload={}) for i in range(jobs)])
    sf.kw["bind"].dispose()


def measure(url: str, repeat: int) -> tuple[float, int]:
    sf = db.session_factory(url)
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        with sf() as s:
            text = metrics.prometheus(metrics.collect(s))
        times.append(time.perf_counter() - t0)
        size = len(text)
    sf.kw["bind"].dispose()
    return statistics.median(times), size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        small, big = f"sqlite:///{Path(tmp) / 'small.db'}", f"sqlite:///{Path(tmp) / 'big.db'}"
        fill(small, a.sites // 10, a.jobs // 10)
        fill(big, a.sites, a.jobs)
        t_small, size_small = measure(small, a.repeat)
        t_big, size_big = measure(big, a.repeat)
    print(f"load during: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{a.sites // 10} sites / {a.jobs // 10} jobs: {t_small * 1000:.0f} ms, {size_small} bytes")
    print(f"{a.sites} sites / {a.jobs} jobs: {t_big * 1000:.0f} ms, {size_big} bytes")
    print(f"ratio big/small: {t_big / t_small:.1f} (10x the rows)")


if __name__ == "__main__":
    main()
