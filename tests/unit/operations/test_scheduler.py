"""`pressluft scheduler run`: the due tasks run, each run is recorded, a task not due is left alone."""

from __future__ import annotations

import json

from click.testing import CliRunner
from pressluft_cli.main import cli
from prometheus_client.parser import text_string_to_metric_families

from pressluft_lib.operations import scheduler
from pressluft_lib.services import ControlPlane
from tests.unit.cli.test_cli_backups import sites  # noqa: F401

SKIP = ("--skip", "drift") if "drift" in scheduler.BY_NAME else ()  # drift checks need a real node


def run(*args: str, code: int = 0):
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def test_due_tasks_run_once_then_wait(sites, tmp_path):  # noqa: F811
    prom = tmp_path / "pressluft.prom"
    first = json.loads(run("scheduler", "run", *SKIP, "--metrics-file", str(prom), "--json").stdout)
    by = {r["task"]: r for r in first}
    assert by["backups"]["status"] == "ok" and by["backups"]["enqueued"] == 2  # shop and blog are due
    assert by["metrics"]["status"] == "ok"
    depth = {s.name: s.value for f in text_string_to_metric_families(prom.read_text()) for s in f.samples}
    assert depth["pressluft_queue_depth"] == 2
    second = {r["task"]: r for r in json.loads(run("scheduler", "run", *SKIP, "--json").stdout)}
    assert second["backups"]["status"] == "not_due" and second["secrets"]["status"] == "not_due"
    assert second["metrics"]["status"] == "ok"  # every run
    audit = json.loads(run("audit", "list", "--json").stdout)
    assert sum(a["action"] == "scheduler.backups" for a in audit) == 1
    listed = {r["task"]: r for r in json.loads(run("scheduler", "list", "--json").stdout)}
    assert listed["backups"]["last_run"] and set(listed) == {t.name for t in scheduler.TASKS}


def test_dry_run_records_nothing(sites):  # noqa: F811
    out = json.loads(run("scheduler", "run", "--only", "backups", "--dry-run", "--json").stdout)
    assert out[0]["enqueued"] == 2
    again = json.loads(run("scheduler", "run", "--only", "backups", "--dry-run", "--json").stdout)
    assert again[0]["status"] == "ok", "a dry run is not recorded as a run"


def test_unknown_task_is_refused(sites):  # noqa: F811
    assert "unknown task" in run("scheduler", "run", "--only", "renewals-typo", code=2).output


def test_a_failing_task_is_recorded_and_the_others_still_run(sites, monkeypatch):  # noqa: F811
    def broken(_tick):
        raise RuntimeError("boom")

    tasks = (scheduler.Task("broken", scheduler.TASKS[0].every, broken, "fails"), *scheduler.TASKS[:1])
    monkeypatch.setattr(scheduler, "TASKS", tasks)
    out = scheduler.run(ControlPlane(sites, actor="test"))
    assert [(r["task"], r["status"]) for r in out] == [("broken", "failed"), ("backups", "ok")]
    assert "boom" in out[0]["error"]
