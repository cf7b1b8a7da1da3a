"""`pressluft update SITE[/ENV] ...`, `update list SITE[/ENV]`, `update report ID` (docs/updates.md).

`update` is a group whose first argument is either a subcommand (list) or the environment to update:
`pressluft update shop --plugins all` queues an env_update job of shop/production.
"""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane


class UpdateGroup(click.Group):
    """Dispatches `update SITE[/ENV] ...` to the apply command unless SITE names a subcommand."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "apply", self.commands["apply"], args
        return super().resolve_command(ctx, args)


@click.group("update", cls=UpdateGroup, invoke_without_command=False)
def update() -> None:
    """Update core, plugins and themes: `pressluft update SITE[/ENV] --plugins all` (see apply)."""


@update.command("apply")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--core", is_flag=True, help="Update WordPress core.")
@click.option(
    "--plugins",
    "plugins",
    multiple=True,
    metavar="all|NAME[,NAME]",
    help="Plugins to update: all, or slugs (repeatable, comma-separated).",
)
@click.option(
    "--themes", "themes", multiple=True, metavar="all|NAME[,NAME]", help="Themes to update (as --plugins)."
)
@click.option("--minor-only", is_flag=True, help="Only minor and patch updates (1.3 -> 1.4, never 2.0).")
@click.option("--exclude", "exclude", multiple=True, metavar="NAME", help="Slug never updated (repeatable).")
@click.option(
    "--plugin-zip",
    "plugin_zips",
    multiple=True,
    type=click.Path(),
    metavar="FILE",
    help="Update the installed plugin of this zip from it (offline; repeatable).",
)
@click.option(
    "--theme-zip",
    "theme_zips",
    multiple=True,
    type=click.Path(),
    metavar="FILE",
    help="Update the installed theme of this zip from it (offline; repeatable).",
)
@click.option("--core-zip", type=click.Path(), metavar="FILE", help="Update core from this WordPress zip.")
@click.option(
    "--health-url",
    "health_urls",
    multiple=True,
    metavar="PATH",
    help="Path that must answer 2xx before and after the switch (repeatable; default /).",
)
@click.option("--marker", metavar="S", help="String every health-check answer must contain.")
@click.option("--safe", is_flag=True,
              help="Try the planned versions on a throwaway clone first; apply them if it compares well.")
@click.option("--max-diff", "max_diff", multiple=True, metavar="KIND=FRACTION",
              help="With --safe: changed fraction a page kind tolerates (home, sitemap, rest, login, feed).")
@output.json_option
def apply(
    target, core, plugins, themes, minor_only, exclude, plugin_zips, theme_zips, core_zip, health_urls,
    marker, safe, max_diff,
) -> None:
    """Queue an env_update job: plan, back up, build a new release, check, switch, restore on failure."""
    data = control_plane().update(
        target,
        core=core,
        plugins=list(plugins),
        themes=list(themes),
        minor_only=minor_only,
        exclude=list(exclude),
        plugin_zips=list(plugin_zips),
        theme_zips=list(theme_zips),
        core_zip=core_zip,
        health_urls=list(health_urls) or None,
        marker=marker,
        safe=safe,
        max_diff=list(max_diff) or None,
    )
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} queued: env_update {d['site']}/{d['env']} release {d['release']} "
            f"(pre-update backup {d['backup_id']})"
            + (f"; safe: clone {d['clone']}, report {d['report_id']} (pressluft update report "
               f"{d['report_id']})" if d.get("safe") else "")
        ),
    )


@update.command("report")
@click.argument("report_id", metavar="ID", type=int)
@output.json_option
def report(report_id) -> None:
    """A safe update's comparison of its clone with the environment: per URL status, change, diff."""
    output.emit(control_plane().update_report(report_id), _print_report)


def _print_report(d) -> None:
    click.echo(f"report {d['id']} of {d['site']}/{d['env']} (job {d['job_id']}, clone {d['clone']}): "
               f"{d['state']}")
    if d.get("reason"):
        click.echo(f"reason: {d['reason']}")
    upd = d.get("update") or {}
    for u in upd.get("updates") or []:
        click.echo(f"  {u.get('type')} {u.get('name')} {u.get('from')} -> {u.get('to')}")
    if upd.get("state"):
        click.echo(f"update: {upd['state']} (phase {upd.get('phase')})")
    if d.get("timings"):
        click.echo("seconds: " + ", ".join(f"{k} {v}" for k, v in d["timings"].items()))
    for u in d.get("urls") or []:
        verdict = "ok" if u.get("ok") else "FAIL"
        click.echo(f"{verdict:4} {u.get('path')} [{u.get('kind')}] HTTP {u.get('status')} -> "
                   f"{u.get('clone_status')}, changed {float(u.get('changed') or 0):.2%} "
                   f"(max {float(u.get('max_diff') or 0):.2%})")
        for line in u.get("diff") or []:
            click.echo(f"     {line}")
    errors = (d.get("php_errors") or {}).get("lines") or []
    if errors:
        click.echo("PHP errors on the clone:")
        for line in errors:
            click.echo(f"  {line}")


@update.command("list")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def update_list(target) -> None:
    """Updates of an environment, newest first: outcome, items, pre-update backup, database restored."""
    rows = control_plane().update_list(target)
    output.emit(
        rows,
        lambda rs: output.table(
            [
                {
                    **r,
                    "items": ", ".join(
                        f"{u.get('name')} {u.get('from')}->{u.get('to')}" for u in r.get("updates") or []
                    ),
                }
                for r in rs
            ],
            ["release", "state", "items", "backup_id", "db_restored", "reason"],
        ),
    )


@update.command("policy")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--auto", type=click.Choice(["off", "minor", "all"]),
              help="What `update schedule` applies: off, minor (minor and patch only) or all.")
@click.option("--core/--no-core", default=None, help="Include core in scheduled updates.")
@click.option("--plugins", "plugins", multiple=True, metavar="all|NAME[,NAME]", help="Plugins (default all).")
@click.option("--themes", "themes", multiple=True, metavar="all|NAME[,NAME]", help="Themes (default none).")
@click.option("--exclude", "exclude", multiple=True, metavar="NAME", help="Never update this slug.")
@click.option("--pin", "pins", multiple=True, metavar="NAME=VERSION", help="Hold a slug at a version.")
@click.option("--unpin", "unpin", multiple=True, metavar="NAME", help="Remove a pin.")
@click.option("--interval", "interval_hours", type=int, metavar="HOURS", help="Hours between updates (24).")
@output.json_option
def policy(target, auto, core, plugins, themes, exclude, pins, unpin, interval_hours) -> None:
    """Show or change the environment's update policy (no options: show it)."""
    data = control_plane().update_policy(
        target, auto=auto, core=core, plugins=list(plugins) or None, themes=list(themes) or None,
        exclude=list(exclude) or None, pins=list(pins) or None, unpin=list(unpin) or None,
        interval_hours=interval_hours,
    )
    output.emit(data, lambda d: click.echo("\n".join(f"{k}: {v}" for k, v in d.items())))


@update.command("schedule")
@click.option("--site", "sites", multiple=True, metavar="S", help="Only these sites (repeatable).")
@click.option("--dry-run", is_flag=True, help="Say what is due without queueing.")
@output.json_option
def schedule(sites, dry_run) -> None:
    """Queue the updates whose environment policy makes them due (one job per site; for a timer)."""
    data = control_plane().update_schedule(list(sites) or None, dry_run=dry_run)
    output.emit(data, lambda d: click.echo("\n".join(
        [f"{'would queue' if d['dry_run'] else 'queued'} env_update {i['site']}/{i['env']}"
         + (f" (job {i['job_id']})" if i.get("job_id") else "") for i in d["enqueued"]]
        + [f"skipped {i['site']}/{i['env']}: {i['reason']}" for i in d["skipped"]]) or "nothing due"))
