"""`pressluft import SITE[/ENV] --archive FILE|URL` or `--from ssh://USER@HOST/PATH` (docs/import.md)."""

from __future__ import annotations

import click
from pressluft_cli import output
from pressluft_cli.context import control_plane


@click.command("import")
@click.argument("target", metavar="SITE[/ENV]")
@click.option("--archive", metavar="FILE|URL",
              help="A .tar, .tar.gz, .tgz or .zip with a WordPress tree or wp-content and one "
                   ".sql/.sql.gz dump; a URL is fetched by the node.")
@click.option("--from", "from_", metavar="ssh://USER@HOST[:PORT]/PATH",
              help="Pull the site from another server: the node runs `wp db export` there over SSH, "
                   "then rsync.")
@click.option("--ssh-key", metavar="PATH",
              help="Private key on the node for --from (default /root/.ssh/id_ed25519).")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust an unknown host key of --from on first use (default: it must be in root's "
                   "known_hosts on the node).")
@click.option("--allow-http", is_flag=True, help="Accept an http:// URL (default: https:// only).")
@click.option("--max-size", "max_bytes", type=click.IntRange(min=1), metavar="BYTES",
              help="Largest archive accepted (a URL's download stops there; default 10 GiB).")
@click.option("--keep-constant", "keep_constants", multiple=True, metavar="NAME",
              help="Carry this constant over from the imported wp-config.php (repeatable): it must be "
                   "defined there with a plain string, number, true, false or null; never one Pressluft "
                   "writes (DB_*, keys and salts, WP_HOME, ...).")
@click.option("--health-url", "health_urls", multiple=True, metavar="PATH",
              help="Path that must answer 2xx before and after the switch (repeatable; default /).")
@click.option("--marker", metavar="S", help="String every health-check answer must contain.")
@output.json_option
def import_(target, archive, from_, ssh_key, accept_new_host_key, allow_http, max_bytes, keep_constants,
            health_urls, marker) -> None:
    """Queue a site_import job: analyse, stage beside the live site, back up, swap in, check, switch."""
    data = control_plane().site_import(target, archive, allow_http=allow_http, max_bytes=max_bytes,
                                       health_urls=list(health_urls) or None, marker=marker, from_=from_,
                                       ssh_key=ssh_key, accept_new_host_key=accept_new_host_key,
                                       keep_constants=list(keep_constants))
    output.emit(data, lambda d: click.echo(
        f"job {d['job_id']} queued: site_import {d['site']}/{d['env']} release {d['release']} "
        f"(pre-import backup {d['backup_id']})"))
