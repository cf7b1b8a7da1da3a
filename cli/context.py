"""The ControlPlane a command works on; command modules import it from here, main imports them."""

from __future__ import annotations

import click


def control_plane(ctx: click.Context | None = None):
    """The ControlPlane for --db / PRESSLUFT_DB (created on first use, so --help needs no database)."""
    from pressluft_lib.services import ControlPlane

    root = (ctx or click.get_current_context()).find_root()
    obj = root.ensure_object(dict)
    if "cp" not in obj:
        obj["cp"] = ControlPlane(obj.get("db"))
    return obj["cp"]
