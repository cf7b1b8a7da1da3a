"""`pressluft deploy|rollback|health SITE[/ENV]` and `pressluft release list SITE[/ENV]`.

ENV defaults to production: `shop` is `shop/production`, `shop/staging` names the staging environment.
"""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane


@click.command("deploy")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--source", type=click.Path(), help="Directory or .tar.gz/.tgz/.tar/.zip archive (code tree).")
@click.option("--git", "git_url", metavar="URL", help="Git repository of the code tree.")
@click.option("--ref", metavar="R", help="Branch, tag or commit with --git (default HEAD).")
@click.option("--health-url", "health_urls", multiple=True, metavar="PATH",
              help="Path that must answer 2xx before and after the switch (repeatable; default /).")
@click.option("--marker", metavar="S", help="String every health-check answer must contain.")
@click.option("--keep", type=int, help="Good releases to keep (default 5).")
@output.json_option
def deploy(target, source, git_url, ref, health_urls, marker, keep) -> None:
    """Queue an env_deploy job: build, check, switch, check, roll back on failure."""
    data = control_plane().deploy(target, source=source, git=git_url, git_ref=ref,
                                  health_urls=list(health_urls) or None, marker=marker, keep=keep)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: env_deploy {d['site']}/{d['env']} release {d['release']}"))


@click.command("rollback")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--to", "to", metavar="RELEASE", help="Release to go back to (default: the previous one).")
@output.json_option
def rollback(target, to) -> None:
    """Queue a release_rollback job (then a health check of the live site)."""
    data = control_plane().rollback(target, to=to)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: release_rollback {d['site']}/{d['env']} to {d['to'] or 'previous'}"))


@click.command("health")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--url", "urls", multiple=True, metavar="PATH", help="Path that must answer 2xx (default /).")
@click.option("--marker", metavar="S", help="String every answer must contain.")
@output.json_option
def health(target, urls, marker) -> None:
    """Queue a health_check job of the live release."""
    data = control_plane().health_check(target, urls=list(urls) or None, marker=marker)
    output.emit(data, lambda d: click.echo(f"job {d['job_id']} queued: health_check {d['site']}/{d['env']}"))


@click.group("release")
def release() -> None:
    """Release history."""


@release.command("list")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def release_list(target) -> None:
    """Releases of an environment, newest first, with their state and the reason of failures."""
    output.emit(
        control_plane().release_list(target),
        lambda rows: output.table(rows, ["release", "state", "job_id", "healthy", "reason", "updated_at"]),
    )


COMMANDS = (deploy, rollback, health, release)
