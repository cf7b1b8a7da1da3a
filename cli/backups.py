"""`pressluft backup ...` and `pressluft restore SITE[/ENV] BACKUP_ID`.

SITE[/ENV]: `shop` is `shop/production`; `shop/staging` names the staging environment.
"""

from __future__ import annotations

import sys

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane

from pressluft_lib.errors import ValidationError
from pressluft_lib.names import DEFAULT_ENV

LIST_COLUMNS = ["id", "site", "env", "scope", "state", "trigger", "size_bytes", "created_at", "error"]


def split_target(target: str) -> tuple[str, str]:
    """`SITE` or `SITE/ENV` -> (site, env); the names are validated by the library."""
    site, sep, env = target.partition("/")
    if not site or (sep and not env) or "/" in env:
        raise ValidationError(
            f"invalid environment {target!r}: use SITE or SITE/ENV", details={"env": target}
        )
    return site, env or DEFAULT_ENV


@click.group()
def backup() -> None:
    """Backups of environments: create, list, show, retention, repository, cleanup, schedule."""


@backup.command("create")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--scope", type=click.Choice(["full", "db", "files"]), default="full", show_default=True)
@click.option(
    "--include-core/--no-include-core",
    default=None,
    help="Archive the live release (core, themes, plugins); the default for --scope full.",
)
@output.json_option
def backup_create(target, scope, include_core) -> None:
    """Queue a backup_create job; prints the job id and the backup id."""
    site, env = split_target(target)
    data = control_plane().backup_create(site, env, scope=scope, include_core=include_core)
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} queued: backup_create {d['site']}/{d['env']} ({d['scope']}) "
            f"backup {d['backup_id']}"
        ),
    )


@backup.command("list")
@click.argument("target", metavar="[SITE[/ENV]]", required=False)
@output.json_option
def backup_list(target) -> None:
    """Backups, newest first (deleted ones are not listed)."""
    site, env = split_target(target) if target else (None, None)
    if target and "/" not in target:
        env = None  # `backup list shop` lists every environment of the site
    output.emit(control_plane().backup_list(site, env), lambda rows: output.table(rows, LIST_COLUMNS))


@backup.command("show")
@click.argument("backup_id")
@output.json_option
def backup_show(backup_id) -> None:
    """One backup with its manifest."""

    def human(d):
        output.fields({k: v for k, v in d.items() if k != "manifest"})
        if d.get("manifest"):
            click.echo(output.json.dumps(d["manifest"], indent=2, sort_keys=True))

    output.emit(control_plane().backup_show(backup_id), human)


@backup.command("retention")
@click.argument("site")
@click.option("--daily", type=int, help="Days to keep the newest backup of (default 7).")
@click.option("--weekly", type=int, help="ISO weeks to keep the newest backup of (default 4).")
@click.option("--monthly", type=int, help="Months to keep the newest backup of (default 3).")
@output.json_option
def backup_retention(site, daily, weekly, monthly) -> None:
    """Show a site's retention ladder, or change parts of it."""
    data = control_plane().backup_retention(site, daily=daily, weekly=weekly, monthly=monthly)
    output.emit(
        data,
        lambda d: click.echo(
            f"site {d['site']} keeps {d['daily']} daily, {d['weekly']} weekly, {d['monthly']} monthly backups"
        ),
    )


@backup.command("cleanup")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--dry-run", is_flag=True, help="Only show what the retention ladder would remove.")
@output.json_option
def backup_cleanup(target, dry_run) -> None:
    """Expire backups by the site's retention and queue a backup_cleanup job removing them."""
    site, env = split_target(target)

    def human(d):
        if d["job_id"]:
            click.echo(f"job {d['job_id']} queued: backup_cleanup {d['site']}/{d['env']}")
        for ref in d["remove"]:
            click.echo(f"{'would remove' if dry_run else 'remove'} {ref}")
        if not d["remove"]:
            click.echo("nothing to remove")

    output.emit(control_plane().backup_cleanup(site, env, dry_run=dry_run), human)


@backup.command("schedule")
@click.option(
    "--interval",
    type=click.FloatRange(min=0, max=8784, min_open=True),
    default=24,
    show_default=True,
    help="Hours between full backups of an environment.",
)
@click.option("--site", "sites", multiple=True, help="Only these sites (repeatable; default all).")
@click.option("--dry-run", is_flag=True, help="Show what is due without queueing anything.")
@output.json_option
def backup_schedule(interval, sites, dry_run) -> None:
    """Queue due backups and cleanups (one job per site; busy sites are skipped). Run it from a timer."""

    def human(d):
        for e in d["enqueued"]:
            job = f"job {e['job_id']} queued" if e["job_id"] else "due"
            click.echo(f"{job}: {e['type']} {e['site']}/{e['env']}")
        for s in d["skipped"]:
            click.echo(f"skipped {s['site']}: {s['reason']}")
        for ref in d["reconciled"]:
            click.echo(f"backup {ref} marked failed: its job ended without a result")
        if not d["enqueued"]:
            click.echo("nothing queued")

    output.emit(control_plane().backup_schedule(interval, list(sites) or None, dry_run=dry_run), human)


@backup.group("repo")
def repo() -> None:
    """The restic repository every backup is also sent to (optional)."""


def _stdin_lines(count: int) -> list[str]:
    lines = [line.rstrip("\r\n") for line in sys.stdin.read().splitlines()[:count]] if count else []
    if len(lines) < count or not all(lines):
        raise ValidationError(f"expected {count} non-empty line(s) on stdin")
    return lines


@repo.command("set")
@click.option("--url", required=True, help="/path, sftp:user@host:/path or s3:https://host/bucket/prefix.")
@click.option("--password-stdin", is_flag=True, help="Read the repository password from stdin (line 1).")
@click.option("--s3-access-key-id", help="S3 access key id.")
@click.option(
    "--s3-secret-access-key-stdin",
    is_flag=True,
    help="Read the S3 secret access key from stdin (the line after the password, if any).",
)
@output.json_option
def repo_set(url, password_stdin, s3_access_key_id, s3_secret_access_key_stdin) -> None:
    """Set the repository; secrets come from stdin only and are stored encrypted."""
    lines = _stdin_lines(int(password_stdin) + int(s3_secret_access_key_stdin))
    password = lines.pop(0) if password_stdin else None
    s3_secret = lines.pop(0) if s3_secret_access_key_stdin else None
    data = control_plane().backup_repo_set(url, password, s3_access_key_id, s3_secret)
    output.emit(data, _repo_human)


@repo.command("show")
@output.json_option
def repo_show() -> None:
    """The repository URL and which secrets are set (never their values)."""
    output.emit(control_plane().backup_repo_show(), _repo_human)


@repo.command("unset")
@output.json_option
def repo_unset() -> None:
    """Forget the repository and its secrets (backups stay local to the nodes)."""
    output.emit(control_plane().backup_repo_unset(), _repo_human)


def _repo_human(d) -> None:
    output.fields(
        d, ["repository", "restic_password_set", "s3_access_key_id_set", "s3_secret_access_key_set"]
    )


@click.command("restore")
@click.argument("target", metavar="SITE[/ENV]")
@click.argument("backup_id", required=False)
@click.option(
    "--to", "to_node", metavar="NODE", help="Rebuild the environment on this node (disaster recovery)."
)
@click.option(
    "--from-offsite", "offsite_id", metavar="BACKUP_ID", help="With --to: the full backup to read off-site."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@output.json_option
def restore(target, backup_id, to_node, offsite_id, yes) -> None:
    """Queue an env_restore job: a pre-restore backup first, then the backup's database and files.

    With --to NODE --from-offsite BACKUP_ID: queue env_rebuild instead, which rebuilds the environment on
    NODE from the backup's off-site copy alone (the site's node may be gone); the site then lives on NODE.
    """
    site, env = split_target(target)
    if (to_node is None) != (offsite_id is None) or (to_node is not None and backup_id is not None):
        raise ValidationError(
            "use restore SITE[/ENV] BACKUP_ID, or restore SITE[/ENV] --to NODE --from-offsite BACKUP_ID"
        )
    if to_node is None and backup_id is None:
        raise ValidationError("restore needs a BACKUP_ID (or --to NODE --from-offsite BACKUP_ID)")
    if not yes:
        if output.wants_json():
            raise ValidationError("restore --json needs --yes (no prompt in machine mode)")
        question = (
            f"Rebuild {site}/{env} on node {to_node} from backup {offsite_id} (the site then lives there)?"
            if to_node
            else f"Replace the database and files of {site}/{env} with backup {backup_id}?"
        )
        click.confirm(question, abort=True)
    if to_node is not None:
        data = control_plane().restore_to(site, env, to_node, offsite_id)
        output.emit(
            data,
            lambda d: click.echo(
                f"job {d['job_id']} queued: env_rebuild {d['site']}/{d['env']} on {d['node']} "
                f"(was {d['from_node']}) from {d['backup_id']}"
                + ("" if not d["floating_ip"] else f"; floating IP {d['floating_ip']['name']} moves with it"
                   if d["floating_ip"]["switched"] else f"; {d['floating_ip']['note']}")
            ),
        )
        return
    data = control_plane().restore(site, env, backup_id)
    output.emit(
        data,
        lambda d: click.echo(
            f"job {d['job_id']} queued: env_restore {d['site']}/{d['env']} from {d['backup_id']} "
            f"(pre-restore backup {d['pre_restore_backup_id']})"
        ),
    )
