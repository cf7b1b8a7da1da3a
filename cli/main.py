"""Entry point of the `pressluft` CLI: the group, global options, error handling, db and completion."""

from __future__ import annotations

import click
from pressluft_cli import (
    admin,
    backups,
    cache,
    domains,
    environments,
    imports,
    jobs,
    nodes,
    ops,
    output,
    providers,
    queries,
    releases,
    secrets,
    settings,
    sites,
    updates,
)
from sqlalchemy.engine import make_url

from pressluft_lib import __version__
from pressluft_lib.errors import PressluftError


class PressluftGroup(click.Group):
    """Turns library errors into one message and the error's stable exit code (docs/cli.md)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Undecodable argv bytes arrive as lone surrogates, which no database or file name can hold;
        # NUL (from callers that are not a shell) is no file name either.
        for arg in args:
            try:
                arg.encode("utf-8")
                bad = "\x00" in arg
            except UnicodeEncodeError:
                bad = True
            if bad:
                if "--json" in args:
                    ctx.ensure_object(dict)["json"] = True
                output.fail("invalid_input", "an argument is not valid UTF-8 text (or holds a NUL byte)", 2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return super().invoke(ctx)
        except PressluftError as exc:
            output.fail(exc.code, exc.message, exc.exit_code, exc.details)
        except SQLAlchemyError as exc:  # unreachable, refused, unwritable or unmigrated database
            from pressluft_lib.storage.db import explain

            err = explain(exc)
            output.fail(err.code, err.message, err.exit_code)


@click.group(cls=PressluftGroup)
@click.version_option(__version__, prog_name="pressluft")
@click.option(
    "--db",
    "db_url",
    envvar="PRESSLUFT_DB",
    metavar="URL",
    help="Control-plane database URL (default: SQLite in the Pressluft data dir). Env: PRESSLUFT_DB.",
)
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    """Pressluft: WordPress hosting on your own servers."""
    ctx.ensure_object(dict)["db"] = db_url


@cli.group()
def db() -> None:
    """The control-plane database."""


@db.command("upgrade")
@output.json_option
def db_upgrade() -> None:
    """Create the schema or migrate it to the current version."""
    from pressluft_lib.storage import db as dbmod

    url = click.get_current_context().find_root().obj.get("db") or dbmod.default_url()
    dbmod.upgrade(url)
    shown = make_url(url).render_as_string(hide_password=True)
    output.emit(
        {"database": shown, "status": "up to date"},
        lambda d: click.echo(f"database {d['database']} is up to date"),
    )


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script, e.g. `eval "$(pressluft completion bash)"`."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "pressluft", "_PRESSLUFT_COMPLETE").source())


for command in (
    nodes.node, sites.site, *environments.COMMANDS, jobs.jobs, admin.reset, admin.audit, *releases.COMMANDS,
    admin.worker, backups.backup, backups.restore, secrets.secrets, *ops.COMMANDS, queries.login,
    domains.domain, providers.provider, updates.update, cache.cache, imports.import_, settings.settings,
):
    cli.add_command(command)
sites.site.add_command(queries.site_info)
nodes.node.add_command(queries.node_status)
