"""Site import on the control plane: the input checks of site_import and its `after` hook (the
ControlPlane method that enqueues it is in services/imports.py; docs/import.md).

At enqueue an import gets, like an update, a release row (building, id `<queued at>-<job id>`) and a
pending pre-import backup row (scope full, trigger pre_import). The playbook returns `pressluft_import`
{state: live|failed, reason, phase: stage|swapped|reverted|live, analysis, table_prefix, backup, ...} and,
once env_release ran, `pressluft_release` as env_deploy does. The hook settles both rows, stores the
imported table prefix on the environment, and returns the environment to active when the site serves what
it served (a failure while staging, or after the swap was undone).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert
from sqlalchemy.orm import Session

from pressluft_lib.errors import ValidationError
from pressluft_lib.jobs import backups, releases
from pressluft_lib.states import BackupState, JobState
from pressluft_lib.storage.models import AuditLog, Environment, Job, utcnow

# The archive path goes to Ansible's copy as data; a conservative alphabet keeps it a plain path.
ARCHIVE_RE = re.compile(r"/[A-Za-z0-9._/+@-]{1,1000}\.(tar|tar\.gz|tgz|zip)")
PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,32}")
MAX_URL = 2000
DEFAULT_MAX_BYTES = 10 * 1024**3


# Constants of an imported wp-config.php that --keep-constant may carry over: a PHP name, and none that
# Pressluft writes or that would undo its layout (the module's list: module_utils/_php_constants.py; a unit
# test keeps the two equal).
CONSTANT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
OWNED_CONSTANTS = frozenset((
    "ABSPATH", "WP_HOME", "WP_SITEURL", "WP_ENVIRONMENT_TYPE", "WP_CACHE", "WP_CACHE_KEY_SALT", "WP_DEBUG",
    "DISALLOW_FILE_EDIT", "FS_METHOD", "WP_TEMP_DIR", "WP_CONTENT_DIR", "WP_CONTENT_URL", "WP_PLUGIN_DIR",
    "WP_PLUGIN_URL", "WPMU_PLUGIN_DIR", "WPMU_PLUGIN_URL", "UPLOADS", "WP_LANG_DIR", "COOKIE_DOMAIN",
    "CUSTOM_USER_TABLE", "CUSTOM_USER_META_TABLE", "MULTISITE", "WP_ALLOW_MULTISITE", "SUBDOMAIN_INSTALL",
    "DOMAIN_CURRENT_SITE", "PATH_CURRENT_SITE", "SITE_ID_CURRENT_SITE", "BLOG_ID_CURRENT_SITE",
    "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT", "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT", "NONCE_SALT",
))
OWNED_CONSTANT_PREFIXES = ("DB_", "WP_REDIS_", "PRESSLUFT_")


def keep_constants_payload(names: list[str] | None) -> dict[str, Any]:
    """pressluft_import_keep_constants for --keep-constant NAME...; ValidationError for a bad or owned one."""
    kept: list[str] = []
    for name in names or []:
        if not isinstance(name, str) or not CONSTANT_RE.fullmatch(name):
            raise ValidationError(f"invalid --keep-constant {str(name)[:70]!r}: a PHP constant name "
                                  "(letters, digits, _)", details={"constant": str(name)[:70]})
        upper = name.upper()
        if upper in OWNED_CONSTANTS or upper.startswith(OWNED_CONSTANT_PREFIXES):
            raise ValidationError(
                f"--keep-constant {name}: Pressluft writes this one itself (DB_*, keys and salts, WP_HOME, "
                "WP_SITEURL, ABSPATH, WP_ENVIRONMENT_TYPE, WP_REDIS_*, paths, multisite), it cannot be "
                "carried over", details={"constant": name})
        if name not in kept:
            kept.append(name)
    return {"pressluft_import_keep_constants": kept} if kept else {}


SSH_USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
SSH_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
SSH_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]{0,500}")
KEY_RE = re.compile(r"/[A-Za-z0-9._/-]{1,500}")


def pull_payload(source: str, key: str | None = None, accept_new_host_key: bool = False) -> dict[str, Any]:
    """The site_import payload for --from ssh://user@host[:port]/path; ValidationError when it is bad."""
    bad = ValidationError(
        f"invalid --from {str(source)[:200]!r}: use ssh://USER@HOST[:PORT]/ABSOLUTE/PATH (letters, digits, "
        ". _ - in the user and host, . _ / - in the path)", details={"from": str(source)[:200]})
    try:
        url = urlsplit(source)
        port = url.port or 22
    except ValueError:
        raise bad from None
    path = url.path
    if (url.scheme != "ssh" or not url.username or url.password is not None or not url.hostname
            or not SSH_USER_RE.fullmatch(url.username) or not SSH_HOST_RE.fullmatch(url.hostname)
            or not SSH_PATH_RE.fullmatch(path) or ".." in path.split("/") or url.query or url.fragment):
        raise bad
    if key is not None and (not KEY_RE.fullmatch(key) or ".." in key.split("/")):
        raise ValidationError(f"invalid --ssh-key {key[:200]!r}: an absolute path on the node")
    payload: dict[str, Any] = {
        "pressluft_import_ssh_user": url.username, "pressluft_import_ssh_host": url.hostname,
        "pressluft_import_ssh_port": port, "pressluft_import_ssh_path": path,
        "pressluft_import_ssh_host_key": "accept-new" if accept_new_host_key else "strict",
    }
    if key is not None:
        payload["pressluft_import_ssh_key"] = key
    return payload


def import_payload(archive: str, allow_http: bool = False, max_bytes: int | None = None) -> dict[str, Any]:
    """The site_import payload for --archive FILE|URL; ValidationError when it is bad."""
    if not isinstance(archive, str) or not archive:
        raise ValidationError("give --archive FILE|URL or --from ssh://USER@HOST/PATH")
    if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool)
                                  or max_bytes < 1):
        raise ValidationError("max size must be a positive number of bytes")
    if "://" in archive:
        url = urlsplit(archive)
        schemes = ("https", "http") if allow_http else ("https",)
        if (url.scheme not in schemes or not url.hostname or len(archive) > MAX_URL
                or any(c.isspace() or ord(c) < 32 for c in archive)):
            raise ValidationError(
                f"invalid archive URL {archive[:200]!r}: https:// only"
                + (" or http://" if allow_http else " (--allow-http permits http://)"),
                details={"archive": archive[:200]},
            )
        payload: dict[str, Any] = {"pressluft_import_url": archive,
                                   "pressluft_import_max_bytes": max_bytes or DEFAULT_MAX_BYTES}
        if allow_http:
            payload["pressluft_import_allow_http"] = True
        return payload
    path = Path(archive).expanduser().absolute()
    if not ARCHIVE_RE.fullmatch(str(path)) or ".." in path.parts:
        raise ValidationError(
            f"invalid archive {archive[:200]!r}: a .tar, .tar.gz, .tgz or .zip file whose path holds only "
            "letters, digits, . _ / + @ -",
            details={"archive": archive[:200]},
        )
    if not path.is_file():
        raise ValidationError(f"archive {path} does not exist", details={"archive": str(path)})
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ValidationError(f"archive {path} is larger than the max size ({max_bytes} bytes)")
    return {"pressluft_import_archive": str(path)}


def after_import(session: Session, job: Job, artifacts: dict[str, Any]) -> None:
    payload = job.payload or {}
    result = artifacts.get("pressluft_import") if isinstance(artifacts.get("pressluft_import"), dict) else {}
    env = session.get(Environment, job.env_id) if job.env_id else None
    pre = backups._row_from_payload(session, job, "pressluft_pre_import_backup_id")
    if pre is not None:
        if result.get("backup"):
            backups.record(session, pre, job, artifacts.get("pressluft_backup"), trust_result=True)
        elif pre.state in (BackupState.PENDING, BackupState.RUNNING):
            session.delete(pre)  # never taken: the environment had no site, or staging failed first
            session.flush()
    if env is not None and payload.get("pressluft_release"):
        releases.after_deploy(session, job, artifacts)
    prefix = result.get("table_prefix")
    if env is not None and job.state == JobState.SUCCEEDED and isinstance(prefix, str) \
            and PREFIX_RE.fullmatch(prefix):
        env.table_prefix = None if prefix == "wp_" else prefix
    if job.state != JobState.SUCCEEDED and result.get("phase", "stage") in ("stage", "reverted"):
        why = f"import failed before it changed the site ({result.get('phase')})"
        releases._reactivate(session, job, why)
    target = f"env:{env.site.name}_{env.name}" if env else f"job:{job.id}"
    analysis = result.get("analysis") if isinstance(result.get("analysis"), dict) else {}
    session.execute(
        insert(AuditLog).values(
            actor=job.actor, action="site.import", target=target,
            result=str(result.get("state") or job.state)[:64],
            detail={"job_id": job.id, "reason": str(result.get("reason") or "")[:1000],
                    "phase": result.get("phase"), "table_prefix": prefix,
                    "wordpress_version": analysis.get("wordpress_version"),
                    "php_in_uploads_count": analysis.get("php_in_uploads_count"),
                    "backup_id": result.get("backup") or None},
            created_at=utcnow(),
        )
    )
