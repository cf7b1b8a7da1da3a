"""The worker: sweep (deadlines, stalls), claim, run (runner.execute heartbeats), finish; N threads.

SIGTERM/SIGINT once: claim nothing new, let running jobs end. Twice: also ask them to cancel.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from pressluft_lib import queue
from pressluft_lib.errors import ConflictError, PressluftError
from pressluft_lib.execution import runner
from pressluft_lib.storage.models import Job

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        session_factory: sessionmaker,
        *,
        concurrency: int = 1,
        worker_id: str | None = None,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 60.0,
        poll_interval: float = 1.0,
        data_dir: Path | None = None,
        types: list[str] | None = None,
        on_job_done: Callable[[Job], None] | None = None,
        playbook_dir: Path | None = None,
        stop_grace: float = runner.STOP_GRACE,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.session_factory = session_factory
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.stop_grace = stop_grace
        self.poll_interval = poll_interval
        self.data_dir = data_dir
        self.types = types
        self.on_job_done = on_job_done
        self.playbook_dir = playbook_dir  # tests: playbooks by job type name from here
        self.stopping = threading.Event()
        self.processed: list[Job] = []
        self._running: dict[str, Job] = {}  # by claim id
        self._claims = itertools.count(1)
        self._lock = threading.Lock()

    def stop(self, cancel_running: bool = False) -> None:
        """Claim no more jobs; with cancel_running, also ask the running ones to cancel."""
        self.stopping.set()
        if cancel_running:
            with self._lock:
                running = [j.id for j in self._running.values()]
            for job_id in running:
                try:
                    queue.request_cancel(self.session_factory, job_id, actor=f"worker:{self.worker_id}")
                except PressluftError as exc:
                    log.warning("cancel of job %s: %s", job_id, exc.message)

    def claim(self) -> Job | None:
        """Claim a due job under a claim id of its own (worker id + claim number): concurrent runs of
        this worker, and a retry it claims of its own stale attempt, never pass for one another."""
        claim_id = f"{self.worker_id}#{next(self._claims)}"
        return queue.claim(self.session_factory, claim_id, self.types)

    def run_one(self, job: Job) -> Job:
        with self._lock:
            self._running[job.worker_id] = job
        try:
            finished = runner.execute(
                self.session_factory,
                job,
                job.worker_id,
                data_dir=self.data_dir,
                playbook_dir=self.playbook_dir,
                heartbeat_interval=self.heartbeat_interval,
                heartbeat_timeout=self.heartbeat_timeout,
                stop_grace=self.stop_grace,
            )
        except ConflictError as exc:  # the queue gave the job to another attempt, or someone ended it
            log.warning("job %s: %s", job.id, exc.message)
            finished = job
        finally:
            with self._lock:
                self._running.pop(job.worker_id, None)
        with self._lock:
            self.processed.append(finished)
        if self.on_job_done:
            self.on_job_done(finished)
        return finished

    def _loop(self, once: bool) -> None:
        while not self.stopping.is_set():
            try:
                queue.sweep(self.session_factory, self.heartbeat_timeout)
                runner.remove_stale_runs(self.session_factory, self.data_dir)
                job = self.claim()
            except Exception:
                log.exception("claiming failed")
                job = None
                if once:
                    return
            if job is None:
                if once:
                    return
                self.stopping.wait(self.poll_interval)
                continue
            self.run_one(job)

    def run(self, once: bool = False) -> list[Job]:
        """Process jobs until stopped (or, with once, until none is due); returns the jobs processed."""
        restore = self._install_signals()
        try:
            threads = [
                threading.Thread(target=self._loop, args=(once,), name=f"worker-{i}")
                for i in range(self.concurrency)
            ]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)  # short joins keep the main thread responsive to signals
        finally:
            restore()
        return self.processed

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, _frame):
            again = self.stopping.is_set()
            log.warning(
                "signal %s: %s", signum, "cancelling running jobs" if again else "finishing running jobs"
            )
            self.stop(cancel_running=again)

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore
