"""`pressluft domain add|remove|list|renew|schedule` (docs/domains.md).

Job types domain_add, domain_remove and domain_renew (docs/job-types.md).
"""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.backups import split_target
from pressluft_cli.context import control_plane


@click.group()
def domain() -> None:
    """Domains of environments, with Let's Encrypt (ACME) certificates."""


@domain.command("add")
@click.argument("target", metavar="SITE[/ENV]")
@click.argument("name")
@click.option("--redirect-from", "aliases", multiple=True, metavar="ALIAS",
              help="A name answered with a 301 to NAME (repeatable).")
@click.option("--www", type=click.Choice(["redirect", "serve", "none"]), default="none", show_default=True,
              help="www.NAME (or NAME without www.): redirect to NAME, serve it too, or leave it out.")
@click.option("--hsts", is_flag=True, help="Send Strict-Transport-Security once HTTPS works (opt-in).")
@click.option("--force", is_flag=True, help="Order the certificate without checking DNS first.")
@output.json_option
def domain_add(target, name, aliases, www, hsts, force) -> None:
    """Queue a domain_add job: NAME becomes the environment's canonical name, with a certificate.

    Every name must resolve to the node (A and AAAA) unless --force; the site keeps serving HTTP when
    the order fails, and running the same command again after fixing DNS retries it."""
    site, env = split_target(target)
    data = control_plane().domain_add(site, env, name, list(aliases), www=www, hsts=hsts, force=force)
    extra = f", aliases {', '.join(data['aliases'])}" if data["aliases"] else ""
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: domain_add {d['site']}/{d['env']} {d['canonical']}{extra}"))


@domain.command("remove")
@click.argument("target", metavar="SITE[/ENV]")
@click.argument("names", nargs=-1, required=True)
@output.json_option
def domain_remove(target, names) -> None:
    """Queue a domain_remove job: stop serving NAMES; the certificate is re-issued without them."""
    site, env = split_target(target)
    data = control_plane().domain_remove(site, env, list(names))
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: domain_remove {d['site']}/{d['env']} {', '.join(d['removed'])}"))


@domain.command("list")
@click.argument("target", metavar="[SITE[/ENV]]", required=False)
@output.json_option
def domain_list(target) -> None:
    """Domains with their role and certificate state (pending, issued, renewing, failed) and expiry."""
    site, env = (None, None)
    if target:
        site, env = split_target(target)
        env = env if "/" in target else None
    rows = control_plane().domain_list(site, env)
    output.emit(rows, lambda r: output.table(
        r, ["site", "env", "name", "role", "state", "tls_state", "tls_expires_at", "hsts"]))


@domain.command("renew")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def domain_renew(target) -> None:
    """Queue a domain_renew job: a new certificate now, whatever its expiry."""
    site, env = split_target(target)
    data = control_plane().domain_renew(site, env)
    output.emit(data, lambda d: click.echo(f"job {d['job_id']} queued: domain_renew {d['site']}/{d['env']}"))


@domain.command("schedule")
@click.option("--dry-run", is_flag=True, help="Show what is due without queueing anything.")
@output.json_option
def domain_schedule(dry_run) -> None:
    """Queue renewals of certificates that expire within 30 days (busy sites skipped); for a timer."""

    def human(d):
        for e in d["enqueued"]:
            job = f"job {e['job_id']} queued" if e["job_id"] else "due"
            click.echo(f"{job}: domain_renew {e['site']}/{e['env']} (expires {e['expires_at']})")
        for s in d["skipped"]:
            click.echo(f"skipped {s['site']}/{s['env']}: {s['reason']}")
        if not d["enqueued"]:
            click.echo("nothing queued")

    output.emit(control_plane().domain_schedule(dry_run=dry_run), human)
