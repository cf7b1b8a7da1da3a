"""`pressluft reset ...`, `pressluft audit list` and `pressluft worker`."""

from __future__ import annotations

import logging

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane


@click.group()
def reset() -> None:
    """Return a failed site or environment to active after you checked it."""


_FORCE = click.option(
    "--force",
    is_flag=True,
    help="Reset even if the last stalled or timed-out job's worker may still be running it.",
)


def _said(line: str):
    def human(d: dict) -> None:
        if d.get("warning"):
            click.echo(f"warning: {d['warning']}", err=True)
        click.echo(line.format(**d))

    return human


@reset.command("site")
@click.argument("name")
@_FORCE
@output.json_option
def reset_site(name, force) -> None:
    """failed -> active for a site.

    Refused while a job holds the site, and until the worker of its last stalled or timed-out job
    cannot still be running it (heartbeat timeout + stop grace after its last heartbeat).
    """
    output.emit(control_plane().reset_site(name, force=force), _said("site {site} is {state}"))


@reset.command("env")
@click.argument("site")
@click.argument("env")
@_FORCE
@output.json_option
def reset_env(site, env, force) -> None:
    """failed -> active for one environment of a site (refused as `reset site` is)."""
    output.emit(
        control_plane().reset_env(site, env, force=force), _said("environment {site}/{env} is {state}")
    )


@click.group()
def audit() -> None:
    """Who changed what."""


@audit.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@output.json_option
def audit_list(limit) -> None:
    """Most recent audit entries first."""
    output.emit(
        control_plane().audit_list(limit),
        lambda rows: output.table(rows, ["id", "created_at", "actor", "action", "target", "result"]),
    )


@click.command()
@click.option("--once", is_flag=True, help="Process jobs until none is due, then exit.")
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=1, show_default=True, help="Jobs run in parallel."
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=5),
    default=60,
    show_default=True,
    help="Seconds without heartbeat after which another worker's job counts as stalled.",
)
@click.option("--poll-interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True)
@output.json_option
def worker(once, concurrency, heartbeat_timeout, poll_interval) -> None:
    """Claim and run queued jobs (SIGTERM: finish running jobs; twice: cancel them)."""
    from pressluft_lib.execution.worker import Worker
    from pressluft_lib.services.views import job_dict

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    as_json = output.wants_json()  # read here: the callback runs in worker threads without a Click context

    def done(job) -> None:
        if not as_json:
            click.echo(
                f"job {job.id} {job.type}: {job.state}" + (f" ({job.error_code})" if job.error_code else "")
            )

    w = Worker(
        control_plane().session_factory,
        concurrency=concurrency,
        heartbeat_timeout=heartbeat_timeout,
        heartbeat_interval=min(5.0, heartbeat_timeout / 4),
        poll_interval=poll_interval,
        on_job_done=done,
    )
    processed = w.run(once=once)
    if as_json:
        output.emit_json({"worker_id": w.worker_id, "jobs": [job_dict(j) for j in processed]})
