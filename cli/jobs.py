"""`pressluft jobs ...`: list, show, follow and cancel jobs."""

from __future__ import annotations

import time

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane

from pressluft_lib import jobtypes
from pressluft_lib.states import JOB_TERMINAL, JobState

TYPE_COLUMNS = [
    "type",
    "verb",
    "playbook",
    "roles",
    "scope",
    "destructive",
    "max_attempts",
    "timeout",
    "marks",
]
# Job ids are 64-bit database integers; a larger number is bad input, not a driver overflow.
JOB_ID = click.IntRange(1, 2**63 - 1)
JOB_COLUMNS = ["id", "type", "state", "site", "node", "attempts", "created_at", "finished_at", "error"]
ERROR_WIDTH = 48  # `jobs list` shows the start of error_message; `jobs show` all of it


def _short_error(row: dict) -> dict:
    text = row.get("error_message") or row.get("error_code")
    if text and len(text) > ERROR_WIDTH:
        text = text[: ERROR_WIDTH - 1] + "…"
    return {**row, "error": text}


@click.group()
def jobs() -> None:
    """Infrastructure jobs (one playbook run each)."""


@jobs.command("list")
@click.option("--state", type=click.Choice(sorted(map(str, JobState))), help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@output.json_option
def jobs_list(state, limit) -> None:
    """Most recent jobs first."""
    output.emit(
        control_plane().jobs_list(state=state, limit=limit),
        lambda rows: output.table([_short_error(r) for r in rows], JOB_COLUMNS),
    )


def _event_line(e: dict) -> str:
    d = e["data"]
    if e["kind"] == "state":
        if "to" in d:
            extra = f" ({d['error_code']})" if d.get("error_code") else ""
            return f"[{e['seq']}] state {d.get('from') or '-'} -> {d['to']}{extra}"
        return f"[{e['seq']}] " + ", ".join(f"{k}={v}" for k, v in d.items())
    if "task" in d:
        msg = f": {d['msg']}" if d.get("msg") else ""
        return f"[{e['seq']}] {d['status']:<11} {d['host']}: {d['task']}{msg}"
    if "play" in d:
        return f"[{e['seq']}] PLAY {d['play']}"
    return f"[{e['seq']}] {d.get('event', e['kind'])}"


@jobs.command("types")
@click.option("--markdown", is_flag=True, help="Print the table of docs/job-types.md.")
@output.json_option
def jobs_types(markdown) -> None:
    """The job types: CLI verb, playbook, roles, lock scope, retries, hooks (the registry)."""
    if markdown:
        click.echo(jobtypes.markdown_table(), nl=False)
        return
    rows = [jt.as_dict() for jt in jobtypes.JOB_TYPES.values()]
    output.emit(rows, lambda rows: output.table(rows, TYPE_COLUMNS))


@jobs.command("show")
@click.argument("job_id", type=JOB_ID)
@output.json_option
def jobs_show(job_id) -> None:
    """A job with its events."""

    def human(d):
        output.fields({k: v for k, v in d.items() if k not in ("events", "error_message")})
        if d.get("error_message"):  # its own line, never wrapped or cut by the table
            click.echo(f"error_message: {d['error_message']}")
        for e in d["events"]:
            click.echo(_event_line(e))

    output.emit(control_plane().job_show(job_id), human)


@jobs.command("follow")
@click.argument("job_id", type=JOB_ID)
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="Give up after this many seconds."
)
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True, help="Polling interval."
)
@output.json_option
def jobs_follow(job_id, timeout, interval) -> None:
    """Print a job's events as they happen until it ends; exit 0 only if it succeeded.

    With --json: one JSON object per line (events), then {"job_id", "state"}.
    """
    cp = control_plane()
    deadline = time.monotonic() + timeout if timeout else None
    seq = 0
    while True:
        state, events = cp.job_events(job_id, seq)
        for e in events:
            seq = e["seq"]
            click.echo(output.json.dumps(e, sort_keys=True) if output.wants_json() else _event_line(e))
        if state in JOB_TERMINAL or state == JobState.STALLED:
            break
        if deadline and time.monotonic() > deadline:
            output.fail("follow_timeout", f"job {job_id} is still {state} after {timeout} s", 1)
        time.sleep(interval)
    if output.wants_json():
        click.echo(output.json.dumps({"job_id": job_id, "state": state}))
    else:
        click.echo(f"job {job_id} {state}")
    if state != JobState.SUCCEEDED:
        raise click.exceptions.Exit(output.EXIT_JOB_NOT_SUCCEEDED)


@jobs.command("cancel")
@click.argument("job_id", type=JOB_ID)
@output.json_option
def jobs_cancel(job_id) -> None:
    """Cancel a queued job at once, or ask a running one to stop."""
    data = control_plane().job_cancel(job_id)
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} cancelled"
            if d["state"] == JobState.CANCELLED
            else f"job {d['job_id']} asked to cancel (still {d['state']})"
        ),
    )


@jobs.command("retry")
@click.argument("job_id", type=JOB_ID)
@output.json_option
def jobs_retry(job_id) -> None:
    """Queue a failed, cancelled, timed_out or stalled job again (same type, target and payload; a new
    fencing token). Refused (exit 2) for any other job, or when its site or node moved on."""
    output.emit(
        control_plane().job_retry(job_id),
        lambda d: click.echo(f"job {d['job_id']} queued: {d['type']}, retrying job {d['retry_of']}"),
    )
