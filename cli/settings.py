"""`pressluft settings ...`: control-plane settings (docs/settings.md)."""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane

from pressluft_lib import settings as st


@click.group()
def settings() -> None:
    """Control-plane settings (preview domain, DNS-01 provider)."""


@settings.command("show")
@output.json_option
def settings_show() -> None:
    """Every setting, its value (empty: unset) and meaning."""
    rows = control_plane().settings_show()
    output.emit(rows, lambda r: output.table(r, ["name", "value", "meaning"]))


@settings.command("set")
@click.argument("name", type=click.Choice(st.NAMES))
@click.argument("value")
@output.json_option
def settings_set(name, value) -> None:
    """Set NAME to VALUE (checked; a refused value changes nothing)."""
    data = control_plane().settings_set(name, value)
    output.emit(data, lambda d: click.echo(f"{d['name']} = {d['value']}"))


@settings.command("unset")
@click.argument("name", type=click.Choice(st.NAMES))
@output.json_option
def settings_unset(name) -> None:
    """Back to the default behaviour of NAME."""
    output.emit(control_plane().settings_unset(name), lambda d: click.echo(f"{d['name']} unset"))
