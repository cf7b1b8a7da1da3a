"""ansible_exec.collections_path: the checkout's collection resolves, also for concurrent jobs."""

from __future__ import annotations

import os
import threading

from pressluft_lib.execution.ansible_exec import ROOT, collections_path


def link_in(data_dir):
    return data_dir / "collections" / "ansible_collections" / "pressluft" / "wordpress"


def test_checkout_collection_resolves_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PRESSLUFT_COLLECTIONS_PATH", raising=False)
    base = collections_path(tmp_path).split(os.pathsep)[0]
    assert link_in(tmp_path).resolve() == ROOT
    assert base == str(tmp_path / "collections")


def test_concurrent_jobs_of_one_worker_all_get_the_link(tmp_path, monkeypatch):
    # A worker with concurrency > 1 runs jobs in threads of one process: each call must
    # succeed however the threads interleave (the pid alone does not make a temp name unique).
    monkeypatch.delenv("PRESSLUFT_COLLECTIONS_PATH", raising=False)
    threads, errors = 8, []
    for attempt in range(40):
        data_dir = tmp_path / str(attempt)
        start = threading.Barrier(threads)

        def call(data_dir=data_dir, start=start):
            start.wait()
            try:
                collections_path(data_dir)
            except OSError as e:
                errors.append(e)

        workers = [threading.Thread(target=call) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        link = link_in(data_dir)
        assert link.resolve() == ROOT
        leftovers = [p.name for p in link.parent.iterdir() if p.name != "wordpress"]
        assert leftovers == [], "temporary links left behind"
    assert errors == []
