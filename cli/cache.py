"""`pressluft cache enable|disable|purge SITE[/ENV]`: an environment's nginx page cache, and with --object
its Redis object cache (docs/cache.md)."""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane


@click.group("cache")
def cache() -> None:
    """The page cache (or with --object the Redis object cache) of an environment."""


def _toggled(d: dict) -> None:
    release = f" (release {d['release']} if one is needed)" if d.get("release") else ""
    kind = "object cache " if d.get("kind") == "object" else ""
    click.echo(f"job {d['job_id']} queued: env_cache_toggle {d['site']}/{d['env']} {kind}{d['state']}"
               f"{release}")


_object = click.option("--object", "object_cache", is_flag=True,
                       help="The Redis object cache (a new release with or without the Redis Object Cache "
                            "plugin's drop-in) instead of the page cache.")


@cache.command("enable")
@click.argument("target", metavar="SITE[/ENV]")
@_object
@click.option("--plugin-zip", metavar="PATH",
              help="With --object: the plugin's zip on this machine (offline); default: the node downloads "
                   "the pinned version from wordpress.org.")
@output.json_option
def cache_enable(target, object_cache, plugin_zip) -> None:
    """Queue an env_cache_toggle job that switches the cache on."""
    kind = "object" if object_cache else "page"
    output.emit(control_plane().cache_toggle(target, True, kind=kind, plugin_zip=plugin_zip), _toggled)


@cache.command("disable")
@click.argument("target", metavar="SITE[/ENV]")
@_object
@output.json_option
def cache_disable(target, object_cache) -> None:
    """Queue an env_cache_toggle job that switches the cache off (the page cache is emptied)."""
    kind = "object" if object_cache else "page"
    output.emit(control_plane().cache_toggle(target, False, kind=kind), _toggled)


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
