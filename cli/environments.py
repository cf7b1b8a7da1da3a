"""`pressluft env create SITE/ENV --from ENV` (a new environment of a site, cloned from another) and
`pressluft drift [show] SITE/ENV`.

The job types are env_create and drift_check (docs/environments.md, docs/job-types.md).
"""

from __future__ import annotations

import json
import sys

import click
from pressluft_cli import output
from pressluft_cli.backups import split_target
from pressluft_cli.context import control_plane

from pressluft_lib.errors import ValidationError
from pressluft_lib.names import DEFAULT_ENV


def env_target(target: str) -> tuple[str, str]:
    """SITE/ENV with the environment spelled out (these commands never default to production)."""
    if "/" not in target:
        raise ValidationError(f"invalid environment {target!r}: use SITE/ENV", details={"env": target})
    return split_target(target)


@click.group("env")
def env() -> None:
    """Environments of a site: create one as a clone of another."""


@env.command("create")
@click.argument("target", metavar="SITE/ENV")
@click.option("--from", "source", default=DEFAULT_ENV, show_default=True, metavar="ENV",
              help="Environment of the same site to clone (database, live release, uploads).")
@click.option("--domain", "domains", multiple=True,
              help="Domain (repeatable; default ENV.SITE.localhost, the preview domain).")
@click.option("--no-staging", "production_like", is_flag=True,
              help="Do not make it a staging environment (WP_ENVIRONMENT_TYPE, noindex, mail caught).")
@output.json_option
def env_create(target, source, domains, production_like) -> None:
    """Queue an env_create job: a full isolated environment on the site's node, filled from a consistent
    snapshot of --from, its URLs rewritten to the new domain. Staging-safe unless --no-staging."""
    site, name = env_target(target)
    data = control_plane().env_create(site, name, source=source, domains=list(domains),
                                      staging=not production_like)
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} queued: env_create {d['site']}/{d['env']} from {d['source']} "
            f"({', '.join(d['domains'])})" + (f", retrying job {d['retry_of']}" if d.get("retry_of") else "")
        ),
    )


@click.command("drift")
@click.argument("words", nargs=-1, metavar="[show] SITE/ENV")
@click.option("--against", default=DEFAULT_ENV, show_default=True, metavar="ENV",
              help="Environment compared with (check only).")
@output.json_option
def drift(words, against) -> None:
    """`drift SITE/ENV`: queue a drift_check job (code, schema and production's writes since the clone,
    compared with --against); `drift show SITE/ENV`: print the newest stored report."""
    if len(words) == 2 and words[0] == "show":
        site, name = env_target(words[1])
        output.emit(control_plane().drift_show(site, name), _show_report)
        return
    if len(words) != 1:
        raise ValidationError("use `pressluft drift SITE/ENV` or `pressluft drift show SITE/ENV`")
    site, name = env_target(words[0])
    data = control_plane().drift_check(site, name, against=against)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: drift_check {d['site']}/{d['env']} against {d['against']}"
        + (f" (writes since {d['since']} UTC)" if d["since"] else "")))


def _show_report(d) -> None:
    r = d["report"]
    click.echo(f"drift of {d['site']}/{d['env']} (job {d['job_id']}, {d['checked_at']}): "
               f"differs in {', '.join(r.get('differs') or []) or 'nothing'}")
    click.echo(json.dumps(r, indent=2, sort_keys=True))
    base = d["baseline"]
    renewed = ", ".join(f"{t} (pushed {at} UTC)" for t, at in sorted(base["renewed"].items()))
    click.echo("baseline of production's writes (rows per table at the clone"
               + (f"; renewed by promotions: {renewed}" if renewed else "") + "):")
    click.echo(json.dumps(base["rows"], indent=2, sort_keys=True))



@env.command("sync")
@click.argument("target", metavar="SITE/ENV")
@click.option("--from", "source", default=DEFAULT_ENV, show_default=True, metavar="ENV",
              help="Environment whose content is copied down.")
@click.option("--db", "database", is_flag=True, help="Copy the database (URLs rewritten).")
@click.option("--uploads", is_flag=True, help="Copy the uploads.")
@output.json_option
def env_sync(target, source, database, uploads) -> None:
    """Queue an env_sync job: content down (both the database and the uploads unless --db or --uploads
    chooses); the environment's code stays. Never into production."""
    site, name = env_target(target)
    if not (database or uploads):
        database = uploads = True
    data = control_plane().env_sync(site, name, source=source, database=database, uploads=uploads)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: env_sync {d['site']}/{d['env']} from {d['source']} "
        f"({' and '.join(d['copied'])})"))


@env.command("delete")
@click.argument("target", metavar="SITE/ENV")
@output.json_option
def env_delete(target) -> None:
    """Queue an env_delete job: a final backup of the environment, then it is removed with everything it owns
    (user, pool, database, Redis ACL user, server block, certificate, domains). Never production: that goes
    with `site delete`, after every other environment."""
    site, name = env_target(target)
    data = control_plane().env_delete(site, name)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: env_delete {d['site']}/{d['env']}, final backup {d['backup_id']} first"))


@env.command("auth")
@click.argument("target", metavar="SITE/ENV")
@click.option("--user", metavar="NAME", help="The user that may log in (letters, digits, '.', '_', '-').")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from stdin (one line); default: a generated one, printed once.")
@click.option("--off", is_flag=True, help="Switch basic auth off.")
@output.json_option
def env_auth(target, user, password_stdin, off) -> None:
    """Queue an env_auth job: HTTP basic auth on a non-production environment (never production), or
    --off. ACME challenge paths stay open; the node keeps only the password's hash."""
    site, name = env_target(target)
    password = None
    if password_stdin:
        if off:
            raise ValidationError("--off takes no password")
        password = sys.stdin.readline().rstrip("\r\n")
    data = control_plane().env_auth(site, name, user=user, password=password, off=off)

    def human(d) -> None:
        what = "off" if d["state"] == "absent" else f"on for user {d['user']}"
        click.echo(f"job {d['job_id']} queued: env_auth {d['site']}/{d['env']} {what}")
        if d.get("password"):
            click.echo(f"password (shown once): {d['password']}")

    output.emit(data, human)


@click.command("promote")
@click.argument("target", metavar="SITE/ENV")
@click.option("--tables", "tables", multiple=True, metavar="TABLE",
              help="Also copy this table into production (repeatable; refused when production wrote to it "
                   "since the clone).")
@click.option("--force", is_flag=True,
              help="Copy --tables even when production wrote to them since the clone.")
@click.option("--allow-protected", is_flag=True,
              help="Allow --tables among the protected ones (users, comments, orders, subscribers).")
@click.option("--health-url", "health_urls", multiple=True, metavar="PATH",
              help="Path checked before and after the switch (repeatable; default /).")
@click.option("--marker", metavar="S", help="String every health-check answer must contain.")
@output.json_option
def promote(target, tables, force, allow_protected, health_urls, marker) -> None:
    """Queue an env_promote job: production gets a release built from SITE/ENV's live release (code only,
    unless --tables), after a fresh production backup. Needs a drift report newer than ENV's last change."""
    site, name = env_target(target)
    data = control_plane().promote(site, name, tables=list(tables), force=force,
                                   allow_protected=allow_protected, health_urls=list(health_urls) or None,
                                   marker=marker)
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: env_promote {d['site']}/{d['from']} (release {d['from_release']}) into "
        f"{d['env']} as release {d['release']}, backup {d['backup_id']} first"
        + (f", tables {', '.join(d['tables'])}" if d["tables"] else "")))


COMMANDS = (env, drift, promote)
