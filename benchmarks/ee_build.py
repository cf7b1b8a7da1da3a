"""scripts/build-ee: what building the AWX execution environment costs, in one run.

Three builds of the same tree: cold (the tag removed, podman's layer cache ignored: new dependencies or
a new base image), after a code change (a marker file added to the collection's docs for the run, so
the wheel/tarball hash changes and podman's cache holds every dependency layer), and warm (the tag of
this tree exists: nothing is built). Prints each time and the load before and during.

    .venv/bin/python -m benchmarks.ee_build [--no-cold]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = ROOT / "docs" / "ee-benchmark.tmp"


def build(**env: str) -> tuple[float, str]:
    t0 = time.monotonic()
    r = subprocess.run([str(ROOT / "scripts" / "build-ee")], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, **env}, check=True)
    return time.monotonic() - t0, r.stdout.split()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build (minutes)")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}")
    _, tag = build()  # the tree's image exists from here on
    rows = []
    if not args.no_cold:
        subprocess.run(["podman", "rmi", tag], check=True, capture_output=True)
        rows.append(("cold (no layer cache)", *build(PRESSLUFT_EE_NO_CACHE="1")))
        print(f"load after the cold build: {os.getloadavg()[0]:.2f}", flush=True)
    MARKER.write_text(f"{time.time()}\n")
    try:
        rows.append(("code change (layer cache)", *build()))
    finally:
        MARKER.unlink()
    print(f"load after the code-change build: {os.getloadavg()[0]:.2f}")
    rows.append(("warm (tag exists)", *build()))
    for what, seconds, built in rows:
        print(f"{what:28} {seconds:7.1f} s  {built}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
