"""Output helpers: rich tables for people, `--json` for machines, errors with stable exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

# Not a PressluftError: `jobs follow` watched a job that ended without succeeding.
EXIT_JOB_NOT_SUCCEEDED = 9


def json_option(f: Callable) -> Callable:
    """--json: print JSON instead of tables (errors too, as {"error": {...}} on stdout)."""

    def remember(ctx: click.Context, _param, value: bool) -> bool:
        if value:
            ctx.ensure_object(dict)["json"] = True
            ctx.find_root().ensure_object(dict)["json"] = True
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=remember,
        expose_value=False,
        is_eager=True,
        help="Print JSON.",
    )(f)


def wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().ensure_object(dict).get("json"))


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(rows: Iterable[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    t = Table(title=title)
    for col in columns:
        t.add_column(col.upper().replace("_", " "))
    for row in rows:
        t.add_row(*[_cell(row.get(c)) for c in columns])
    console().print(t)


def fields(data: dict[str, Any], keys: list[str] | None = None) -> None:
    """A two-column key/value table for one object."""
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    for key in keys or list(data):
        t.add_row(key, _cell(data.get(key)))
    console().print(t)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def emit(data: Any, human: Callable[[Any], None]) -> None:
    if wants_json():
        emit_json(data)
    else:
        human(data)


def fail(code: str, message: str, exit_code: int, details: dict | None = None) -> None:
    """Report an error the same way for every command, then exit with its code."""
    if wants_json():
        emit_json({"error": {"code": code, "message": message, **({"details": details} if details else {})}})
    else:
        click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(exit_code)
