"""env_promote (code only) vs env_deploy of the same tree, in one run (issue 15; target ratio <= 1.2).

On one node started from the provisioned image: a site, and a staging clone of it (env_create). Then per
round, alternating:
  deploy  - the env_deploy playbook with the WordPress tree staging serves, packed on the controller, copied
            and unpacked (build, pre-switch checks, switch, live check);
  promote - the env_promote playbook from staging: the live-release check, the production database backup
            the promotion takes first, the tree copied on the node, then the same checks, switch, live check.
Prints each round, the medians, their ratio and the load average before and during.

    .venv/bin/python -m benchmarks.promote [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import provisioned  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE = "bench"


def play(node, tmp, playbook: str, **extra) -> float:
    t0 = time.monotonic()
    r = run_playbook(playbook, rig.inventory([node]), tmp,
                     extravars={"pressluft_target": "nodes", "pressluft_site": SITE, **extra})
    if r.rc != 0:
        raise SystemExit(f"{playbook} failed:\n{r.explain()}")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-promote-"))
    load_before = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}/{load_before[1]:.2f} (1/5 min)", flush=True)
    node = provisioned.start(tmp)
    try:
        play(node, tmp, "site_create.yml", pressluft_wordpress_src=str(wordpress_archive()))
        play(node, tmp, "env_create.yml", pressluft_env="staging", pressluft_source_env="production",
             pressluft_domains=[f"staging.{SITE}.localhost"])
        with tarfile.open(wordpress_archive()) as tar:
            tar.extractall(tmp / "unpacked", filter="tar")
        src = tmp / "unpacked" / "wordpress"
        deploys, promotes, loads = [], [], []
        for n in range(args.rounds):
            deploys.append(play(node, tmp, "env_deploy.yml", pressluft_release=f"d{n}",
                                pressluft_release_src=str(src)))
            promotes.append(play(node, tmp, "env_promote.yml", pressluft_release=f"p{n}",
                                 pressluft_promote_from="staging",
                                 pressluft_pre_promote_backup_id=f"bench-{n}"))
            loads.append(os.getloadavg()[0])
            print(f"round {n + 1}: deploy {deploys[-1]:.2f} s, promote {promotes[-1]:.2f} s "
                  f"(ratio {promotes[-1] / deploys[-1]:.2f}), load {loads[-1]:.2f}", flush=True)
        d, p = statistics.median(deploys), statistics.median(promotes)
        print(f"{args.rounds} rounds: deploy median {d:.2f} s, promote median {p:.2f} s: ratio {p / d:.2f} "
              f"(target <= 1.2)")
        print(f"load average before {load_before[0]:.2f}, during {min(loads):.2f}-{max(loads):.2f} (1 min), "
              f"{os.cpu_count()} CPUs")
    finally:
        rig.stop_nodes([node])


if __name__ == "__main__":
    main()
