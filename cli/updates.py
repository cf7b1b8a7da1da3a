"""`pressluft update SITE[/ENV] ...` and `pressluft update list SITE[/ENV]` (docs/updates.md).

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
@output.json_option
def apply(
    target, core, plugins, themes, minor_only, exclude, plugin_zips, theme_zips, core_zip, health_urls, marker
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
    )
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} queued: env_update {d['site']}/{d['env']} release {d['release']} "
            f"(pre-update backup {d['backup_id']})"
        ),
    )


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
