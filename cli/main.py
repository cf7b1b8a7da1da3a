"""Entry point of the `pressluft` CLI."""

import click

from pressluft_lib import __version__


@click.group()
@click.version_option(__version__, prog_name="pressluft")
def cli() -> None:
    """Pressluft: WordPress hosting on your own servers."""
