"""Node queries: `pressluft login`, `pressluft site info`, `pressluft node status` (docs/node-queries.md).

They answer at once (no job, no worker) within a hard 10 s deadline; each call is audited.
"""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.backups import split_target
from pressluft_cli.context import control_plane


@click.command("login")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--user", "login", metavar="LOGIN", help="WordPress user (default: the first administrator).")
@click.option("--ttl", type=int, default=300, show_default=True,
              help="Seconds the link stays valid (10-3600).")
@click.option("--redirect", metavar="PATH", help="Path to open after the login (default: the dashboard).")
@output.json_option
def login(target, login, ttl, redirect) -> None:
    """Print a one-time login URL: it opens a confirmation page, whose button logs in once."""
    site, env = split_target(target)
    data = control_plane().login(site, env, user=login, ttl=ttl, redirect=redirect)
    output.emit(data, lambda d: click.echo(d["url"]))


@click.command("info")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def site_info(target) -> None:
    """WordPress, PHP, plugins and themes (with the updates WordPress knows of) and disk usage, read live."""
    site, env = split_target(target)

    def human(d):
        wp = d["wordpress"]
        disk = d["disk"]
        output.fields({
            "environment": f"{d['site']}/{d['env']} on {d['node']}",
            "wordpress": wp["version"] + (f" (update: {wp['update']})" if wp.get("update") else ""),
            "php": d["php"]["version"],
            "table_prefix": d.get("table_prefix"),
            "release": _size(disk["release"]),
            "uploads": _size(disk["uploads"]),
            "database": _size(disk["database"]),
        })
        output.table(d["plugins"], ["name", "version", "active", "update"], title="plugins")
        output.table(d["themes"], ["name", "version", "active", "update"], title="themes")

    output.emit(control_plane().site_info(site, env), human)


@click.command("status")
@click.argument("name")
@output.json_option
def node_status(name) -> None:
    """Load, memory and free disk of a node, read live."""

    def human(d):
        mem = d["memory"]
        output.fields({
            "node": d["node"],
            "cpus": d["cpus"],
            "load": f"{d['load']['1m']:.2f} {d['load']['5m']:.2f} {d['load']['15m']:.2f}",
            "memory": f"{_mib(mem['available_bytes'])} available of {_mib(mem['total_bytes'])}",
        })
        disks = [{**x, "free": _mib(x["free_bytes"]), "total": _mib(x["total_bytes"])} for x in d["disk"]]
        output.table(disks, ["path", "free", "total"], title="disk")

    output.emit(control_plane().node_status(name), human)


def _mib(n: int) -> str:
    return f"{n / 1048576:.0f} MiB"


def _size(d: dict) -> str:
    return _mib(d.get("bytes", 0)) + ("" if d.get("complete", True) else " (at least; counting stopped)")
