"""Operating the control plane: `version`, `doctor`, `metrics`, `scheduler`, `check`, `install-service`."""

from __future__ import annotations

from pathlib import Path

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane

from pressluft_lib import __version__, collection_version
from pressluft_lib.errors import ValidationError

# A failed doctor check or a drift found: the command ran, and what it checked is not as it should be.
EXIT_CHECK_FAILED = 11


def _db_url() -> str:
    from pressluft_lib.storage import db as dbmod

    return click.get_current_context().find_root().obj.get("db") or dbmod.default_url()


def _prom_path(value: str | None) -> Path | None:
    """A metrics file: `*.prom` (what node_exporter's textfile collector reads) in an existing directory."""
    if value is None:
        return None
    path = Path(value).expanduser().absolute()
    if path.suffix != ".prom" or not path.stem or not path.parent.is_dir():
        shown = value[:200]
        raise ValidationError(f"metrics file {shown!r}: a NAME.prom file in an existing directory",
                              details={"file": shown})
    return path


@click.command()
@output.json_option
def version() -> None:
    """The Pressluft version (library, CLI and collection share it), Python and Ansible."""
    import platform

    from ansible.release import __version__ as ansible_core

    data = {"pressluft": __version__, "collection": collection_version(), "python": platform.python_version(),
            "ansible_core": ansible_core}
    output.emit(data, lambda d: click.echo(
        f"pressluft {d['pressluft']} (collection pressluft.wordpress {d['collection']}, "
        f"ansible-core {d['ansible_core']}, Python {d['python']})"))


@click.command()
@click.option("--skip-nodes", is_flag=True, help="Check the control plane only (no SSH to nodes).")
@output.json_option
def doctor(skip_nodes) -> None:
    """Check the database, migrations, secret key, data dir, and SSH and services of every node.

    Exit 0 when every check passes, 11 when any fails (each failure is named with a code).
    """
    from pressluft_lib.operations import doctor as doc

    checks = doc.run(_db_url(), nodes=not skip_nodes)
    failed = [c for c in checks if c.status == "failed"]

    def human(_):
        for c in checks:
            mark = {"ok": "ok  ", "failed": "FAIL", "skipped": "skip"}[c.status]
            code = f" [{c.code}]" if c.code else ""
            click.echo(f"{mark} {c.name}{code}: {c.message}")
        click.echo(f"{len(failed)} of {len(checks)} checks failed" if failed else "all checks passed")

    output.emit({"ok": not failed, "checks": [c.as_dict() for c in checks]}, human)
    if failed:
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["json", "prometheus"]), default="prometheus", show_default=True
)
@click.option("--output", "target", metavar="FILE.prom",
              help="Write atomically to this file (node_exporter's textfile directory) instead of stdout.")
def metrics(fmt, target) -> None:
    """Gauges from the database: jobs by type and state, queue depth and age, failures in 24 h,
    age of each environment's last good backup, certificate expiry (once TLS states exist)."""
    import json

    from pressluft_lib.operations import metrics as m

    path = _prom_path(target)
    if path is not None and fmt != "prometheus":
        raise ValidationError("--output writes the prometheus format only")
    cp = control_plane()
    with cp.session_factory() as session:
        data = m.collect(session)
    if path is not None:
        m.write_atomically(path, m.prometheus(data))
    elif fmt == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(m.prometheus(data), nl=False)


@click.group()
def scheduler() -> None:
    """Periodic work (backups, rotations, metrics, drift checks), run by pressluft-scheduler.timer."""


@scheduler.command("list")
@output.json_option
def scheduler_list() -> None:
    """The periodic tasks, how often each runs, and when it last ran."""
    from pressluft_lib.operations import scheduler as sch

    cp = control_plane()
    with cp.session_factory() as session:
        rows = [
            {"task": t.name, "every_seconds": int(t.every.total_seconds()), "help": t.help,
             "last_run": (lr.isoformat() + "Z") if (lr := sch.last_run(session, t.name)) else None}
            for t in sch.TASKS
        ]
    output.emit(rows, lambda r: output.table(r, ["task", "every_seconds", "last_run", "help"]))


@scheduler.command("run")
@click.option("--only", multiple=True, help="Only this task (repeatable).")
@click.option("--skip", multiple=True, help="Not this task (repeatable).")
@click.option("--force", is_flag=True, help="Run the tasks even if they are not due.")
@click.option("--dry-run", is_flag=True, help="Show what the tasks would queue; record nothing.")
@click.option("--metrics-file", metavar="FILE.prom", envvar="PRESSLUFT_METRICS_FILE",
              help="Where the metrics task writes (env PRESSLUFT_METRICS_FILE).")
@output.json_option
def scheduler_run(only, skip, force, dry_run, metrics_file) -> None:
    """Run the due periodic tasks once (the timer calls this). Exit 11 if a task failed."""
    from pressluft_lib.operations import scheduler as sch

    unknown = sorted(n for n in {*only, *skip} if n not in sch.BY_NAME)
    if unknown:
        raise ValidationError(f"unknown task {unknown[0][:100]!r}: one of {', '.join(sch.BY_NAME)}")
    wanted = [t.name for t in sch.TASKS if (not only or t.name in only) and t.name not in skip]
    options = {"metrics_file": _prom_path(metrics_file)}
    results = sch.run(control_plane(), only=wanted, force=force, dry_run=dry_run, options=options)

    def human(rows):
        for r in rows:
            rest = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("task", "status"))
            click.echo(f"{r['task']}: {r['status']}" + (f" ({rest})" if rest else ""))

    output.emit(results, human)
    if any(r["status"] == "failed" for r in results):
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


@click.command("install-service")
@click.option("--user", default="pressluft", show_default=True, help="System user the services run as.")
@click.option("--data-dir", default="/var/lib/pressluft", show_default=True,
              help="PRESSLUFT_HOME of the services, owned by the user, mode 0700.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--heartbeat-timeout", type=click.IntRange(5, 3600), default=60, show_default=True)
@click.option("--stop-timeout", type=click.IntRange(10, 86400), default=None,
              help="Seconds a stopping worker may take to finish its jobs (default: longest job timeout).")
@click.option("--schedule", default="*:0/5", show_default=True, help="OnCalendar of the scheduler timer.")
@click.option("--no-start", is_flag=True, help="Enable the units but do not start them now.")
@click.option("--dry-run", is_flag=True, help="Print the unit files; change nothing.")
@output.json_option
def install_service(user, data_dir, concurrency, heartbeat_timeout, stop_timeout, schedule, no_start,
                    dry_run) -> None:
    """Install pressluft-worker.service and pressluft-scheduler.timer (systemd hosts only, as root)."""
    from pressluft_lib.operations import units

    s = units.Settings(user=user, data_dir=Path(data_dir), concurrency=concurrency,
                       heartbeat_timeout=heartbeat_timeout, schedule=schedule,
                       executable=units.default_executable())
    if stop_timeout is not None:
        s.stop_timeout = stop_timeout
    if dry_run:
        s.validate()
        rendered = units.render(s)
        output.emit(rendered, lambda r: click.echo("\n".join(f"# {k}\n{v}" for k, v in r.items())))
        return
    result = units.install(s, start=not no_start)
    output.emit(result, lambda d: click.echo(
        f"installed {', '.join(d['units'])} for user {d['user']} (data dir {d['data_dir']})"
        + ("; started" if d["started"] else "")))


@click.group()
def check() -> None:
    """Configuration drift: the playbook in check mode with diff; nothing on the node changes."""


def _report(r: dict) -> None:
    if r["status"] in ("busy", "skipped"):
        click.echo(f"{r['target']}: {r['status']} ({r['reason']})")
        return
    click.echo(f"{r['target']}: {r['status']}" + (f": {r['error']}" if r.get("error") else ""))
    for c in r.get("changes", []):
        click.echo(f"--- {c['host']}: {c['task']}")
        if c.get("diff"):
            click.echo(c["diff"].rstrip("\n"))


def _check_exit(r: dict) -> None:
    if r["status"] != "clean":
        raise click.exceptions.Exit(EXIT_CHECK_FAILED)


@check.command("node")
@click.argument("name")
@output.json_option
def check_node(name) -> None:
    """Run node_provision in check mode; exit 11 on any difference (or when it cannot run)."""
    from pressluft_lib.operations import drift

    r = drift.check_node(control_plane(), name)
    output.emit(r, _report)
    _check_exit(r)


@check.command("site")
@click.argument("target", metavar="SITE[/ENV]")
@output.json_option
def check_site(target) -> None:
    """Run the environment's site_create in check mode; exit 11 on any difference."""
    from pressluft_cli.backups import split_target

    from pressluft_lib.operations import drift

    site, env = split_target(target)
    r = drift.check_site(control_plane(), site, env)
    output.emit(r, _report)
    _check_exit(r)


COMMANDS = (version, doctor, metrics, scheduler, install_service, check)
