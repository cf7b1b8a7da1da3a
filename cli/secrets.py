"""`pressluft secrets rotate SITE[/ENV]` and `pressluft secrets schedule`.

The noun-verb pattern of `backup create`: the job type is secrets_rotate (docs/job-types.md).
"""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.backups import split_target
from pressluft_cli.context import control_plane


@click.group()
def secrets() -> None:
    """Secrets of environments: rotate now, or on a schedule."""


@secrets.command("rotate")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--admin-password", "admin", is_flag=True, help="Also rotate the WordPress admin's password.")
@output.json_option
def secrets_rotate(target, admin) -> None:
    """Queue a secrets_rotate job: DB and Redis passwords, WordPress salts; no secret is printed."""
    site, env = split_target(target)
    data = control_plane().secrets_rotate(site, env, admin=admin)
    extra = " (admin password too)" if data["admin"] else ""
    output.emit(
        data, lambda d: click.echo(f"job {d['job_id']} queued: secrets_rotate {d['site']}/{d['env']}{extra}")
    )


@secrets.command("schedule")
@click.option(
    "--max-age",
    "max_age",
    type=click.FloatRange(min=0, max=3660, min_open=True),
    default=90,
    show_default=True,
    help="Days after which an environment's secrets are rotated.",
)
@click.option("--site", "sites", multiple=True, help="Only these sites (repeatable; default all).")
@click.option("--dry-run", is_flag=True, help="Show what is due without queueing anything.")
@output.json_option
def secrets_schedule(max_age, sites, dry_run) -> None:
    """Queue rotations of secrets older than --max-age (one job per site, busy sites skipped); for a timer."""

    def human(d):
        for e in d["enqueued"]:
            job = f"job {e['job_id']} queued" if e["job_id"] else "due"
            click.echo(f"{job}: {e['type']} {e['site']}/{e['env']} (age {e['age_days']} days)")
        for s in d["skipped"]:
            click.echo(f"skipped {s['site']}: {s['reason']}")
        if not d["enqueued"]:
            click.echo("nothing queued")

    output.emit(control_plane().secrets_schedule(max_age, list(sites) or None, dry_run=dry_run), human)
