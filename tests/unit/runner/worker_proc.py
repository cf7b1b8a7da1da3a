"""A worker process for the SIGTERM test: the tiny job types, playbooks from this directory."""

from __future__ import annotations

import sys
from pathlib import Path

from pressluft_lib import jobtypes
from pressluft_lib.execution.worker import Worker
from pressluft_lib.storage import db

if __name__ == "__main__":
    url, data_dir = sys.argv[1], Path(sys.argv[2])
    knobs = frozenset(("tiny_sleep", "tiny_fail", "tiny_stubborn_sleep"))
    jobtypes.register(
        jobtypes.JobType("tiny", "node", destructive=False, timeout=600, max_attempts=1, variables=knobs)
    )
    w = Worker(
        db.session_factory(url),
        poll_interval=0.2,
        heartbeat_interval=0.5,
        data_dir=data_dir,
        playbook_dir=Path(__file__).parent / "playbooks",
    )
    print("ready", flush=True)
    done = w.run()
    print("processed", ",".join(str(j.id) for j in done), flush=True)
