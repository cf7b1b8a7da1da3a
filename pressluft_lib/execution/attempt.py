"""One attempt of a job: the claim that runs it, kept alive by heartbeats, stopped when it may not go on.

A claim is (job id, attempt number, claim id); heartbeat and finish match all three, so an attempt
the queue gave up on (stalled and re-queued, timed out, finished by someone else) can neither extend
nor end the job, even when the same worker claimed its retry. The attempt asks its run to stop when:
- the queue refuses a heartbeat ("stopped": the job is no longer this attempt's);
- the job's cancel flag is set ("cancelled");
- no heartbeat got through for `lease` s ("stalled": e.g. the database is unreachable; other workers
  treat the job as stalled after the same time, so this worker must not go on touching the node).
`pressluft reset` relies on the last rule: `lease + stop grace` after an attempt's last heartbeat,
its playbook cannot still be running (docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import sessionmaker

from pressluft_lib import queue
from pressluft_lib.errors import ConflictError
from pressluft_lib.execution.ansible_exec import Stop
from pressluft_lib.states import JobState
from pressluft_lib.storage.models import Job

log = logging.getLogger(__name__)


class Attempt:
    def __init__(
        self, session_factory: sessionmaker, job: Job, claim_id: str, *, interval: float, lease: float
    ):
        self.session_factory = session_factory
        self.job = job
        self.claim_id = claim_id
        self.interval = interval
        self.lease = lease
        self._stop: Stop | None = None
        self._last_ok = time.monotonic()  # the claim itself was the first heartbeat
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> Attempt:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._done.set()
        self._thread.join()

    def request_stop(self, state: str, reason: str) -> None:
        if self._stop is None:  # the first reason is the one recorded
            log.warning("job %s attempt %s: stopping (%s)", self.job.id, self.job.attempts, reason)
            self._stop = (state, reason)

    def should_stop(self) -> Stop | None:
        """Polled by the run; also checks the lease, in case a heartbeat hangs on a dead connection."""
        if self._stop is None and time.monotonic() - self._last_ok > self.lease:
            self.request_stop(
                JobState.STALLED, f"no heartbeat got through for {self.lease:g} s: the job counts as stalled"
            )
        return self._stop

    def beat(self) -> None:
        try:
            cancel = queue.heartbeat(self.session_factory, self.job, self.claim_id)
        except ConflictError as exc:
            self.request_stop("stopped", f"heartbeat refused: {exc.message}")
            return
        except Exception:  # a transient database error: the next beat retries, the lease decides
            log.exception("heartbeat of job %s failed", self.job.id)
            return
        self._last_ok = time.monotonic()
        if cancel:
            self.request_stop(JobState.CANCELLED, "cancel requested")

    def _loop(self) -> None:
        # Beats go on while a cancel or a lost lease stops the run (so that the job does not look
        # stalled meanwhile); a refused beat ends them: the job is no longer this attempt's.
        while not self._done.wait(self.interval):
            if self._stop is not None and self._stop[0] == "stopped":
                return
            self.beat()
