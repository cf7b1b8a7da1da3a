"""`pressluft node ...`: register, list, show, remove and provision nodes."""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane

from pressluft_lib.errors import ValidationError
from pressluft_lib.services.base import parse_vars

NODE_COLUMNS = ["name", "host", "port", "user", "local", "state", "sites", "capacity"]
var_option = click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY=VALUE",
    help="Node tuning variable from the job type's allowlist (repeatable; docs/job-types.md).",
)


@click.group()
def node() -> None:
    """Managed servers."""


@node.command("add")
@click.argument("name")
@click.option("--host", help="Address Ansible connects to (IP or DNS name).")
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", default="root", show_default=True, help="SSH user (with sudo when not root).")
@click.option("--ssh-key", type=click.Path(dir_okay=False), help="Private key file for SSH.")
@click.option("--local", is_flag=True, help="This machine, reached without SSH (single-server mode).")
@output.json_option
def node_add(name, host, port, user, ssh_key, local) -> None:
    """Register a node (then: pressluft node provision NAME)."""
    data = control_plane().node_add(name, host=host, port=port, user=user, ssh_key=ssh_key, local=local)
    output.emit(
        data,
        lambda d: click.echo(
            f"node {d['name']} added ({d['state']}); next: pressluft node provision {d['name']}"
        ),
    )


@node.command("list")
@output.json_option
def node_list() -> None:
    """All nodes."""
    output.emit(control_plane().node_list(), lambda rows: output.table(rows, NODE_COLUMNS))


@node.command("show")
@click.argument("name")
@output.json_option
def node_show(name) -> None:
    """One node and its sites."""
    output.emit(control_plane().node_show(name), output.fields)


@node.command("remove")
@click.argument("name")
@output.json_option
def node_remove(name) -> None:
    """Forget a node that hosts no sites (the server itself is left alone)."""
    output.emit(control_plane().node_remove(name), lambda d: click.echo(f"node {d['name']} removed"))


@node.command("capacity")
@click.argument("name")
@click.argument("value", metavar="N|auto")
@output.json_option
def node_capacity(name, value) -> None:
    """Set how many environments the node may hold (auto: derived from its memory and limits)."""
    data = control_plane().node_capacity(name, value)
    output.emit(
        data,
        lambda d: click.echo(
            f"node {d['name']}: {d['used']}/{d['capacity']} environments ({d['source']} capacity)"
        ),
    )


@node.command("provision")
@click.argument("name")
@click.option("--hardening/--no-hardening", default=None,
              help="Harden SSH, sysctls and the firewall (default: yes for SSH nodes, no for --local).")
@click.option("--wpcli-src", metavar="FILE", help="WP-CLI phar on this machine to install (offline nodes).")
@click.option("--wpcli-sha512", metavar="HEX", help="SHA-512 of the WP-CLI phar (empty: do not check).")
@var_option
@output.json_option
def node_provision(name, hardening, wpcli_src, wpcli_sha512, variables) -> None:
    """Queue a node_provision job (nginx, PHP, MariaDB, Redis, WP-CLI, hardening)."""
    data = control_plane().node_provision(
        name, parse_vars(variables), hardening=hardening, wpcli_src=wpcli_src, wpcli_sha512=wpcli_sha512
    )
    output.emit(data, lambda d: click.echo(f"job {d['job_id']} queued: node_provision {d['node']}"))


@node.command("create")
@click.argument("name")
@click.option("--provider", "provider_name", required=True, help="Provider account (provider list).")
@click.option("--type", "server_type", help="Server type, e.g. cx22 (default: the profile's).")
@click.option("--location", required=True, help="Location, e.g. fsn1.")
@click.option("--image", default="debian-12", show_default=True, help="Image of the new server.")
@click.option("--network", help="Private network to attach (created when missing).")
@click.option("--profile", help="Preset: server type and node tuning (pressluft provider catalog NAME).")
@click.option("--hardening/--no-hardening", default=None, help="Passed to the node_provision that follows.")
@click.option("--wpcli-src", metavar="FILE", help="WP-CLI phar for the node_provision that follows.")
@click.option("--wpcli-sha512", metavar="HEX", help="SHA-512 of that phar.")
@var_option
@output.json_option
def node_create(name, provider_name, server_type, location, image, network, profile, hardening, wpcli_src,
                wpcli_sha512, variables) -> None:
    """Queue a node_create job: the server at the provider, then node_provision. Again: resumes/converges."""
    data = control_plane().node_create(
        name, provider_name, server_type, location, image=image, network=network, profile=profile,
        variables=parse_vars(variables), hardening=hardening, wpcli_src=wpcli_src, wpcli_sha512=wpcli_sha512,
    )
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: node_create {d['node']} ({d['server_type']} in {d['location']}, "
        f"{d['image']}) at {d['provider']}; node_provision follows"))


@node.command("destroy")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@output.json_option
def node_destroy(name, yes) -> None:
    """Queue a node_destroy job: lift the protection, delete the server and its primary IP."""
    if not yes:
        if output.wants_json():
            raise ValidationError("node destroy --json needs --yes (no prompt in machine mode)")
        click.confirm(f"Delete the server of node {name} and its IP address at the provider?", abort=True)
    output.emit(control_plane().node_destroy(name),
                lambda d: click.echo(f"job {d['job_id']} queued: node_destroy {d['node']}"))
