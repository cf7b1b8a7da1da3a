"""Which WordPress a new site gets (`site create --wordpress`), settled when its job is queued.

Everything the controller can check is checked here, so a bad source is refused (exit 2) before a
site row or a job exists: a FILE must be a readable WordPress core archive (its version is read from
it), a VERSION or URL must have a published checksum. The default is the latest official release,
asked from the wordpress.org API. The result is the job's payload: the node downloads the archive
and verifies the checksum (module wp_site), or the archive is copied from the controller.
"""

from __future__ import annotations

import json
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pressluft_lib.errors import ValidationError

LATEST_API = "https://api.wordpress.org/core/version-check/1.7/"
RELEASE_URL = "https://wordpress.org/wordpress-{version}.tar.gz"
TIMEOUT = 15  # seconds per request; with no network, name resolution fails at once
VERSION_RE = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}(\.[0-9]{1,3})?(-(alpha|beta|RC)[0-9]{0,3})?$")
_SHA1_RE = re.compile(r"^\s*([0-9a-fA-F]{40})(\s|$)")
_URL_NAME_RE = re.compile(r"^wordpress-([0-9][0-9A-Za-z.-]{0,40})\.tar\.gz$")
_ARCHIVE_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")
_WP_VERSION_RE = re.compile(r"\$wp_version\s*=\s*'([^']+)'")
_MEMBER_RE = re.compile(r"^(\./)?([^/]+/)?(wp-includes/version\.php|wp-load\.php)$")
# Payload keys this module sets; front ends must not set them another way.
PAYLOAD_KEYS = frozenset({"pressluft_wordpress_src", "pressluft_wordpress_url",
                          "pressluft_wordpress_checksum", "pressluft_wordpress_version"})
OFFLINE_HINT = ("without access to wordpress.org, give an archive: --wordpress FILE "
                "(scripts/wordpress-archive builds one from Debian's wordpress package)")


class WordPressUnavailable(ValidationError):
    """The WordPress source cannot be settled from here (no network, no published checksum)."""

    code = "wordpress_unavailable"


def _get(url: str, limit: int = 1 << 20) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "pressluft"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.read(limit)


def _fetch(url: str, what: str) -> bytes:
    try:
        return _get(url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WordPressUnavailable(f"cannot fetch {what} ({url}): {reason}; {OFFLINE_HINT}",
                                   details={"url": url}) from None


def latest_version() -> str:
    """The current official release, from the API WordPress itself asks for updates."""
    body = _fetch(LATEST_API, "the latest WordPress release")
    try:
        version = json.loads(body)["offers"][0]["current"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise WordPressUnavailable(f"{LATEST_API} answered without a version; {OFFLINE_HINT}") from None
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise WordPressUnavailable(f"{LATEST_API} named an unexpected version {version!r}")
    return version


def published_sha1(url: str) -> str:
    """The SHA-1 published beside an archive (`<url>.sha1`, as wordpress.org does for every release)."""
    body = _fetch(url + ".sha1", "the published checksum").decode("ascii", "replace")
    found = _SHA1_RE.match(body)
    if not found:
        raise WordPressUnavailable(f"{url}.sha1 holds no SHA-1", details={"url": url})
    return found.group(1).lower()


def _from_url(url: str, version: str) -> dict[str, str]:
    return {"pressluft_wordpress_url": url, "pressluft_wordpress_checksum": f"sha1:{published_sha1(url)}",
            "pressluft_wordpress_version": version}


def archive_version(path: Path) -> str:
    """The WordPress version of a core archive (wordpress/ at the top, like wordpress.org's), or ''."""
    version, has_loader = "", False
    try:
        with tarfile.open(path, "r|*") as archive:  # streaming: one pass over the file
            for member in archive:
                found = _MEMBER_RE.match(member.name)
                if not (found and member.isfile()):
                    continue
                if found.group(3) == "wp-load.php":
                    has_loader = True
                    continue
                text = archive.extractfile(member).read(65536).decode("utf-8", "replace")
                match = _WP_VERSION_RE.search(text)
                version = match.group(1) if match else ""
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ValidationError(f"{path} is not a readable WordPress archive (.tar.gz): {exc}",
                              details={"wordpress": str(path)}) from None
    return version if has_loader else ""


def _from_file(raw: str) -> dict[str, str]:
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise ValidationError(f"--wordpress {raw}: no such file (give a VERSION, a FILE or an https URL)",
                              details={"wordpress": raw})
    version = archive_version(path)
    if not version:
        raise ValidationError(f"{path} is not a WordPress core archive: it lacks wordpress/wp-load.php or "
                              "wordpress/wp-includes/version.php", details={"wordpress": str(path)})
    if not _ARCHIVE_VERSION_RE.match(version):  # it names the release directory on the node
        raise ValidationError(f"{path} reports an invalid WordPress version {version!r}")
    return {"pressluft_wordpress_src": str(path), "pressluft_wordpress_version": version}


def resolve(source: str | None) -> dict[str, str]:
    """Payload variables for `--wordpress SOURCE`: None (latest release), VERSION, URL or FILE."""
    if source is None or source == "latest":
        version = latest_version()
        return _from_url(RELEASE_URL.format(version=version), version)
    if not isinstance(source, str) or not source.strip() or len(source) > 4096 or "\x00" in source:
        raise ValidationError("--wordpress needs a VERSION, a FILE or an https URL")
    if VERSION_RE.match(source):
        return _from_url(RELEASE_URL.format(version=source), source)
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme in ("http", "https"):
        name = parsed.path.rsplit("/", 1)[-1]
        found = _URL_NAME_RE.match(name)
        if not parsed.netloc or re.search(r"\s", source) or parsed.query or parsed.fragment or not found:
            msg = "a URL must name a wordpress-<version>.tar.gz archive with a published <URL>.sha1 beside it"
            raise ValidationError(f"--wordpress {source}: {msg}", details={"wordpress": source})
        return _from_url(source, found.group(1))
    if "://" in source:
        raise ValidationError(f"--wordpress {source}: only http(s) URLs are downloaded",
                              details={"wordpress": source})
    return _from_file(source)
