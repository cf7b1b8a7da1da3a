"""`pressluft cache enable|disable|purge SITE[/ENV]`: an environment's nginx page cache (docs/cache.md)."""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane


@click.group("cache")
def cache() -> None:
    """The page cache of an environment."""


def _toggled(d: dict) -> None:
    click.echo(f"job {d['job_id']} queued: env_cache_toggle {d['site']}/{d['env']} {d['state']}")


@cache.command("enable")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def cache_enable(target) -> None:
    """Queue an env_cache_toggle job that switches the page cache on."""
    output.emit(control_plane().cache_toggle(target, True), _toggled)


@cache.command("disable")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def cache_disable(target) -> None:
    """Queue an env_cache_toggle job that switches the page cache off (and empties it)."""
    output.emit(control_plane().cache_toggle(target, False), _toggled)


@cache.command("purge")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--url", "urls", multiple=True, metavar="URL",
              help="Page to purge, http(s)://HOST/PATH of a name the environment serves (repeatable; "
                   "default: everything).")
@output.json_option
def cache_purge(target, urls) -> None:
    """Queue a cache_purge job: the whole page cache, or the pages given with --url."""
    data = control_plane().cache_purge(target, urls=list(urls) or None)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: cache_purge {d['site']}/{d['env']} "
        f"{', '.join(d['urls']) if d['urls'] else 'everything'}"))
