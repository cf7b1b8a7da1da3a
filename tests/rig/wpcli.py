"""The real WP-CLI for tests, Molecule and the offline demo: the official 2.10.0 phar, never in the repo.

Machines without internet keep it beside the clone (`<clone>/../shared/vendor/wp-cli/`, see the README
there: signature verified against the WP-CLI release key); a git worktree deeper down finds it in the
nearest ancestor directory that has `shared/vendor/`. PRESSLUFT_WPCLI_PHAR names another file,
with PRESSLUFT_WPCLI_SHA512 its digest. Role node_wpcli installs it (node_wpcli_src + node_wpcli_sha512),
which checks the digest before copying; production nodes download the pinned release instead.

`python -m tests.rig.wpcli` prints the path and the SHA-512 (one per line) after checking the file.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENDORED = Path("shared") / "vendor" / "wp-cli" / "wp-cli-2.10.0.phar"
# SHA-512 of the official wp-cli 2.10.0 phar (equal to the published phar/wp-cli.phar.sha512).
OFFICIAL_SHA512 = ("c243265be520cd906f6dac767b56bb4e7dae9b6308db32b7e45ed8adbacad97b"
                   "ce987fd69b019d25478f394f0082404a0f44a93416f5e4d943cb32fd08f1feac")
VERSION = "2.10.0"


class WpCliMissing(RuntimeError):
    """The phar is not where it should be, or is not the expected file."""


def phar() -> Path:
    explicit = os.environ.get("PRESSLUFT_WPCLI_PHAR")
    if explicit:
        return Path(explicit).resolve()
    found = [base / VENDORED for base in ROOT.parents if (base / VENDORED).is_file()]
    return found[0] if found else ROOT.parent / VENDORED


def sha512() -> str:
    return os.environ.get("PRESSLUFT_WPCLI_SHA512") or OFFICIAL_SHA512


def checked() -> tuple[Path, str]:
    """(path, sha512) of the phar after checking that it exists and has that digest."""
    path, want = phar(), sha512()
    if not path.is_file():
        raise WpCliMissing(
            f"WP-CLI phar not found at {path}: tests, Molecule and the offline demo install the official "
            f"wp-cli-{VERSION}.phar from <clone>/../shared/vendor/wp-cli/ (or set PRESSLUFT_WPCLI_PHAR "
            "and PRESSLUFT_WPCLI_SHA512)")
    got = hashlib.sha512(path.read_bytes()).hexdigest()
    if got != want:
        raise WpCliMissing(f"{path} has SHA-512 {got}, expected {want}")
    return path, want


def extravars() -> dict[str, str]:
    """The node_wpcli variables that install this phar."""
    path, digest = checked()
    return {"node_wpcli_src": str(path), "node_wpcli_sha512": digest}


def main() -> int:
    try:
        path, digest = checked()
    except WpCliMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
