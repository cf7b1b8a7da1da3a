"""`pressluft site ...`: create, list, show and delete sites."""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane
from pressluft_cli.nodes import var_option

from pressluft_lib.errors import ValidationError
from pressluft_lib.names import DEFAULT_ENV
from pressluft_lib.services.base import parse_vars


@click.group()
def site() -> None:
    """WordPress sites."""


@site.command("create")
@click.argument("name")
@click.option("--node", help="Node the site lives on (default: the active node with the most headroom).")
@click.option("--php", "php_version", metavar="VERSION", help="PHP version, e.g. 8.2 (default: the node's).")
@click.option("--domain", "domains", multiple=True, help="Domain (repeatable; default NAME.localhost).")
@click.option("--env", default=DEFAULT_ENV, show_default=True, help="First environment.")
@click.option(
    "--wordpress",
    metavar="VERSION|FILE|URL",
    envvar="PRESSLUFT_WORDPRESS",
    show_envvar=True,
    help="WordPress to install (default: the latest official release, checked against its published "
    "SHA-1): a release such as 6.8.1, a core archive on this machine (offline; scripts/wordpress-archive "
    "builds one), or the URL of a wordpress-<version>.tar.gz with a <URL>.sha1 beside it.",
)
@click.option("--title", help="WordPress site title (first install only; default NAME).")
@click.option("--admin-user", help="WordPress admin user name (first install only; default admin).")
@click.option("--admin-email", help="WordPress admin e-mail (first install only).")
@var_option
@output.json_option
def site_create(name, node, php_version, domains, env, wordpress, title, admin_user, admin_email,
                variables) -> None:
    """Queue a site_create job; prints the job id.

    Again on a site whose creation failed, retries it (the same options, new --var values). A deleted
    site's name makes a new site (a new incarnation; the old one's history stays).
    """
    placed = None
    if node is None:  # placement: load, memory, disk (node status query) and site capacity of each node
        placed = control_plane().site_place(name)
        node = placed["node"]
    data = control_plane().site_create(
        name, node, php_version=php_version, domains=list(domains), env=env, variables=parse_vars(variables),
        wordpress=wordpress, title=title, admin_user=admin_user, admin_email=admin_email,
    )
    if placed is not None:
        data = {**data, "placement": placed}

    def human(d):
        if placed is not None:
            click.echo(f"placed on {placed['node']}: {placed['reason']}")
            for c in placed["candidates"][1:]:
                click.echo(f"  not {c['explain']}")
        click.echo(
            f"job {d['job_id']} queued: site_create {d['site']} on {d['node']} ({', '.join(d['domains'])}), "
            f"WordPress {d['wordpress']}"
            + (f", retrying job {d['retry_of']}" if d.get("retry_of") else "")
        )

    output.emit(data, human)


@site.command("list")
@output.json_option
def site_list() -> None:
    """All sites."""
    output.emit(
        control_plane().site_list(),
        lambda rows: output.table(rows, ["name", "node", "state", "php_version", "created_at"]),
    )


@site.command("show")
@click.argument("name")
@output.json_option
def site_show(name) -> None:
    """One site with its environments and domains."""

    def human(d):
        shown = ["name", "node", "state", "php_version", "incarnation", "fencing_token", "created_at"]
        output.fields(d, shown)
        output.table(d["environments"], ["name", "state", "php_version", "domains"], title="environments")

    output.emit(control_plane().site_show(name), human)


@site.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@output.json_option
def site_delete(name, yes) -> None:
    """Queue a site_delete job: removes the site's files, database, users and configuration."""
    if not yes:
        if output.wants_json():
            raise ValidationError("site delete --json needs --yes (no prompt in machine mode)")
        click.confirm(f"Delete site {name} with its database and files?", abort=True)
    data = control_plane().site_delete(name)
    output.emit(data, lambda d: click.echo(f"job {d['job_id']} queued: site_delete {d['site']}"))


@site.command("move")
@click.argument("name")
@click.option("--to", "to_node", metavar="NODE", help="Move the site to this node.")
@click.option("--confirm", is_flag=True, help="After a move: remove the read-only copy from the old node.")
@click.option("--env", default=DEFAULT_ENV, show_default=True, help="The site's environment.")
@output.json_option
def site_move(name, to_node, confirm, env) -> None:
    """Queue site_move (--to NODE): the old node refuses writes and takes a final backup, NODE is rebuilt
    from it and checked; or site_move_confirm (--confirm): the old node's read-only copy is removed."""
    if bool(to_node) == bool(confirm):
        raise ValidationError("use site move NAME --to NODE, or site move NAME --confirm after a move")
    if confirm:
        data = control_plane().site_move_confirm(name)
        output.emit(
            data,
            lambda d: click.echo(
                f"job {d['job_id']} queued: site_move_confirm {d['site']} (removes it from {d['node']})"
            ),
        )
        return
    data = control_plane().site_move(name, to_node, env=env)

    def human(d) -> None:
        click.echo(
            f"job {d['job_id']} queued: site_move {d['site']} {d['from_node']} -> {d['node']} "
            f"(final backup {d['backup_id']})"
        )
        if d.get("floating_ip"):
            fip = d["floating_ip"]
            click.echo(
                f"Traffic: floating IP {fip['name']} ({fip['address']}) switches to {d['node']} once it "
                f"passed its checks. When it succeeded, run: pressluft site move {d['site']} --confirm"
            )
            return
        click.echo(
            f"When it succeeded: point DNS for {', '.join(d['domains']) or d['site']} at {d['address']}, "
            f"then run: pressluft site move {d['site']} --confirm"
        )

    output.emit(data, human)


@site.command("ip")
@click.argument("name")
@click.option("--name", "ip_name", metavar="IP",
              help="The floating IP's name at the provider [default: SITE-ip].")
@click.option("--release", is_flag=True,
              help="Take the site's floating IP off its node and delete it at the provider.")
@click.option("--yes", is_flag=True, help="Release without asking.")
@output.json_option
def site_ip(name, ip_name, release, yes) -> None:
    """Queue site_ip: floating IP IP at the provider of the site's node (created there when the account has
    none of that name) is routed to the node, which answers on it; `site move` switches it to the target.
    With --release: the node stops answering on it and the provider deletes it (the address is gone)."""
    if release:
        if ip_name is not None:
            raise ValidationError("--release takes no --name: a site has one floating IP")
        if not yes:
            if output.wants_json():
                raise ValidationError("site ip --release --json needs --yes (no prompt in machine mode)")
            click.confirm(f"Delete the floating IP of site {name} at the provider (DNS pointing at it "
                          "breaks)?", abort=True)
        data = control_plane().site_ip_release(name)
        output.emit(data, lambda d: click.echo(
            f"job {d['job_id']} queued: site_ip {d['site']} (release floating IP {d['floating_ip']} "
            f"{d['address']} from {d['node']})"))
        return
    data = control_plane().site_ip(name, ip_name)
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} queued: site_ip {d['site']} (floating IP {d['floating_ip']} -> {d['node']})"
        ),
    )


@site.command("adopt")
@click.argument("name")
@output.json_option
def site_adopt(name) -> None:
    """Queue a site_adopt job: the site takes over the node's fencing record (its incarnation and last
    token), for a control plane that is behind the node. Audited; see docs/contracts.md, "Fencing"."""
    data = control_plane().site_adopt(name)
    output.emit(data, lambda d: click.echo(f"job {d['job_id']} queued: site_adopt {d['site']}"))
