"""`pressluft provider ...`: cloud accounts nodes are created from (docs/providers.md)."""

from __future__ import annotations

import sys

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane

from pressluft_lib.errors import ValidationError


@click.group()
def provider() -> None:
    """Cloud provider accounts (Hetzner Cloud)."""


def _read_token() -> str:
    """One line from stdin; a prompt that does not echo when stdin is a terminal. Never printed."""
    if sys.stdin.isatty():
        return click.prompt("API token", hide_input=True, err=True)
    line = sys.stdin.readline()
    if not line.strip():
        raise ValidationError(
            "no API token on stdin (e.g. `pressluft provider add hetzner NAME < token-file`)"
        )
    return line


@provider.command("add")
@click.argument("kind", type=click.Choice(["hetzner"]))
@click.argument("name")
@click.option(
    "--admin-cidr",
    "admin_cidrs",
    multiple=True,
    required=True,
    metavar="CIDR",
    help="Source allowed to reach the nodes' SSH (repeatable; include the control plane's address).",
)
@click.option("--endpoint", metavar="URL", help="API endpoint (default: Hetzner Cloud's).")
@output.json_option
def provider_add(kind, name, admin_cidrs, endpoint) -> None:
    """Add an account; its API token is read from stdin, checked against the API and stored encrypted."""
    data = control_plane().provider_add(kind, name, _read_token(), list(admin_cidrs), endpoint=endpoint)
    output.emit(
        data,
        lambda d: click.echo(
            f"provider {d['name']} added ({d['kind']}, token checked and stored); "
            f"next: pressluft provider catalog {d['name']}"
        ),
    )


@provider.command("list")
@output.json_option
def provider_list() -> None:
    """All accounts (never their tokens)."""
    output.emit(
        control_plane().provider_list(),
        lambda rows: output.table(rows, ["name", "kind", "api_endpoint", "admin_cidrs", "created_at"]),
    )


@provider.command("remove")
@click.argument("name")
@output.json_option
def provider_remove(name) -> None:
    """Forget an account that has no nodes left, and its token."""
    output.emit(control_plane().provider_remove(name), lambda d: click.echo(f"provider {d['name']} removed"))


@provider.command("catalog")
@click.argument("name")
@output.json_option
def provider_catalog(name) -> None:
    """Server types with monthly prices, locations, images and node profiles of an account."""

    def human(d):
        rows = [
            {**t, "monthly": ", ".join(f"{loc} {p}" for loc, p in sorted(t["monthly_eur"].items()))}
            for t in d["server_types"]
        ]
        output.table(
            rows,
            ["name", "cores", "memory_gb", "disk_gb", "architecture", "monthly"],
            title=f"server types ({d['currency']}/month incl. VAT)",
        )
        output.table(d["locations"], ["name", "city", "country", "network_zone"], title="locations")
        output.table([{"name": i} for i in d["images"]], ["name"], title="images")
        output.table(
            d["profiles"], ["name", "server_type", "variables"], title="profiles (node create --profile)"
        )

    output.emit(control_plane().provider_catalog(name), human)
