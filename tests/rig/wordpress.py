"""A plain WordPress core archive built from Debian's `wordpress` package (wordpress.org is unreachable).

Debian ships core as a dispatcher install whose tree links into other packages. We download the
packages (never install them on the host), extract them into one temporary root, resolve the
links there and pack `wordpress/` like a wordpress.org archive. The result is cached under
build/wordpress/, keyed by the Debian package version, and is byte-for-byte reproducible.

`python -m tests.rig.wordpress` prints the archive path (`--json` prints path, sha256, version).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "wordpress"
# The core package, its default theme, and every package its /usr/share/wordpress links point into.
PACKAGES = ("wordpress", "wordpress-theme-twentytwentythree", "php-getid3", "libjs-underscore",
            "libjs-cropper", "ca-certificates")
SILENCE = "<?php\n// Silence is golden.\n"


class ArchiveError(RuntimeError):
    """The archive could not be built."""


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    version: str  # WordPress version, e.g. 6.1.9
    package_version: str  # Debian package version it was built from

    def as_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def _run(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=300)
    if proc.returncode != 0:
        raise ArchiveError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def candidate_version() -> str:
    out = _run("apt-cache", "policy", "wordpress")
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise ArchiveError("apt knows no `wordpress` package: run apt-get update")
    return m.group(1)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wp_version(core: Path) -> str:
    m = re.search(r"\$wp_version\s*=\s*'([^']+)'", (core / "wp-includes" / "version.php").read_text())
    if not m:
        raise ArchiveError("no $wp_version in wp-includes/version.php")
    return m.group(1)


def _assemble(work: Path) -> Path:
    """Download and extract the packages into work/root; return a plain core tree work/wordpress."""
    debs, root = work / "debs", work / "root"
    debs.mkdir()
    root.mkdir()
    # Run as root into a dir _apt cannot read: disable the sandbox user instead of warning about it.
    _run("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *PACKAGES, cwd=debs)
    for deb in sorted(debs.glob("*.deb")):
        _run("dpkg-deb", "-x", str(deb), str(root))
    src = root / "usr" / "share" / "wordpress"
    # Debian's per-host config dispatcher and Apache file are not part of core.
    for name in ("wp-config.php", ".htaccess"):
        (src / name).unlink(missing_ok=True)
    # The CA bundle links to a file update-ca-certificates generates at install time; build it here.
    bundle = src / "wp-includes" / "certificates" / "ca-bundle.crt"
    bundle.unlink(missing_ok=True)
    certs = sorted((root / "usr" / "share" / "ca-certificates" / "mozilla").glob("*.crt"))
    if not certs:
        raise ArchiveError("ca-certificates holds no certificates")
    bundle.write_text("".join(c.read_text() for c in certs))
    for link in src.rglob("*"):
        if link.is_symlink() and Path(link.readlink()).is_absolute():
            raise ArchiveError(f"unexpected absolute link {link} -> {link.readlink()}")
    core = work / "wordpress"
    _run("cp", "-rL", str(src), str(core))  # fails loudly on any dangling link
    content = core / "wp-content"
    for sub in ("", "themes", "plugins"):
        index = content / sub / "index.php"
        if not index.exists():
            index.write_text(SILENCE)
    if not (content / "themes" / "twentytwentythree" / "theme.json").exists():
        raise ArchiveError("the twentytwentythree theme is missing")
    return core


def _pack(core: Path, dest: Path) -> None:
    """A reproducible tar.gz with the single top-level directory `wordpress/`."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    paths = [core, *sorted(core.rglob("*"))]
    with dest.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in paths:
            arcname = str(Path("wordpress") / p.relative_to(core))
            tar.add(p, arcname=arcname, recursive=False, filter=normalise)


def build(package_version: str | None = None) -> Archive:
    """The cached archive for the candidate `wordpress` package version, built when missing."""
    package_version = package_version or candidate_version()
    CACHE.mkdir(parents=True, exist_ok=True)
    dest = CACHE / f"wordpress-{package_version}.tar.gz"
    meta = dest.with_name(dest.name + ".json")
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test sessions build it once
        if not (dest.exists() and meta.exists()):
            with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
                work = Path(tmp)
                core = _assemble(work)
                version = _wp_version(core)
                part = work / "archive.tar.gz"
                _pack(core, part)
                part.replace(dest)
                meta.write_text(json.dumps({"version": version, "package_version": package_version}))
        info = json.loads(meta.read_text())
    return Archive(dest, sha256_of(dest), info["version"], info["package_version"])


def skeleton_archive(dest: Path, version: str = "6.1.9") -> Path:
    """A tar.gz laid out like a core archive (wordpress/wp-load.php, wp-includes/version.php) and nothing
    else: enough for the controller's checks at enqueue, not for an install."""
    with tarfile.open(dest, "w:gz") as tar:
        for name, text in (("wp-load.php", "<?php\n"),
                           ("wp-includes/version.php", f"<?php\n$wp_version = '{version}';\n")):
            data = text.encode()
            info = tarfile.TarInfo(f"wordpress/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


def wordpress_archive() -> Path:
    return build().path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rig.wordpress", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print path, sha256 and versions as JSON")
    args = parser.parse_args(argv)
    try:
        archive = build()
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(archive.as_dict()) if args.json else archive.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
