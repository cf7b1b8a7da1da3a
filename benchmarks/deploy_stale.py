"""Stale and failed responses while deploys and rollbacks run (issue 5). Prints its figures.

One provisioned podman node with site `bench`; every release holds `release.php` printing its own id.
Load: THREADS keep-alive HTTP clients on 127.0.0.1 (the node's published nginx port) request
/release.php without pause while DEPLOYS env_deploy runs and as many release_rollback runs alternate
(deploy r1, roll back, deploy r2, roll back, ...).

- non-2xx: answers that are not 2xx (or connection errors) during the whole run.
- stale: answers to requests SENT after the switch task returned (its end time in the JSON callback)
  that carry an id other than the one switched to, until the next switch starts. Target 0 and 0.

    .venv/bin/python -m benchmarks.deploy_stale [--deploys 20] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import Load  # noqa: E402
from tests.rig import nodes as rig  # noqa: E402
from tests.rig import wpcli  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE, HOST = "bench", "bench.localhost"
SWITCH_TASKS = ("Switch current to the release", "Roll back")


def switch_window(stdout: str) -> tuple[float, float]:
    """(start, end) epoch seconds of the run's switch task, from the JSON callback."""
    for play in json.loads(stdout)["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] in SWITCH_TASKS:
                d = task["task"]["duration"]
                start, end = (datetime.fromisoformat(d[k].replace("Z", "+00:00")) for k in ("start", "end"))
                return start.timestamp(), end.timestamp()
    raise SystemExit("no switch task in the run's output")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deploys", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pressluft-bench-deploy-"))
    node = rig.start_node(work)
    try:
        inv = rig.inventory([node])
        archive = wordpress_archive()
        for playbook, extra in (
            ("node_provision.yml", {"pressluft_hardening_enabled": False, **wpcli.extravars()}),
            ("site_create.yml", {"pressluft_site": SITE, "pressluft_wordpress_src": str(archive)}),
        ):
            r = run_playbook(playbook, inv, work, extravars={"pressluft_target": "nodes", **extra})
            if r.rc != 0:
                raise SystemExit(f"{playbook} failed:\n{r.explain()}")
        with tarfile.open(wordpress_archive()) as tar:
            tar.extractall(work / "unpacked", filter="tar")
        core = work / "unpacked" / "wordpress"

        def run(playbook: str, extra: dict) -> tuple[str, float, float, float]:
            t0 = time.monotonic()
            extravars = {"pressluft_target": "nodes", "pressluft_site": SITE,
                         "pressluft_health_urls": ["/release.php"], **extra}
            r = run_playbook(playbook, inv, work, extravars=extravars)
            if r.rc != 0:
                raise SystemExit(f"{playbook} failed:\n{r.explain()}")
            start, end = switch_window(r.stdout)
            link = node.exec("readlink", f"/var/www/sites/{SITE}/production/current").stdout
            now = link.strip().rsplit("/", 1)[-1]
            return now, start, end, time.monotonic() - t0

        def deploy(rid: str) -> tuple[str, float, float, float]:
            src = work / f"src-{rid}"
            subprocess.run(["cp", "-al", str(core), str(src)], check=True)
            (src / "release.php").write_text(f"<?php echo '{rid}';\n")
            try:
                return run("env_deploy.yml", {"pressluft_release": rid, "pressluft_release_src": str(src),
                                              "pressluft_release_keep": 3})
            finally:
                shutil.rmtree(src)

        # r0 first, outside the measurement: the site's first release has no release.php.
        deploy("r0")
        switches: list[tuple[str, float, float]] = []  # (id switched to, start, end)
        times = {"env_deploy": [], "release_rollback": []}
        with Load(node.http_port, args.threads, host=HOST, path="/release.php", timeout=10) as load:
            time.sleep(1)
            for i in range(1, args.deploys + 1):
                now, start, end, took = deploy(f"r{i}")
                switches.append((now, start, end))
                times["env_deploy"].append(took)
                now, start, end, took = run("release_rollback.yml", {})
                switches.append((now, start, end))
                times["release_rollback"].append(took)
            time.sleep(1)
        samples = sorted(load.samples)
        non_2xx = [s for s in samples if not 200 <= s[2] < 300]
        stale = []
        for k, (rid, _start, end) in enumerate(switches):
            until = switches[k + 1][1] if k + 1 < len(switches) else float("inf")
            stale += [s for s in samples if end < s[0] < until and s[3] != rid]
        in_switch = [s for s in samples if any(st <= s[0] <= en for _, st, en in switches)]
        print(json.dumps({
            "deploys": args.deploys, "rollbacks": args.deploys, "threads": args.threads,
            "requests": len(samples),
            "requests_per_s": round(len(samples) / (samples[-1][1] - samples[0][0]), 1),
            "non_2xx": len(non_2xx), "stale": len(stale),
            "requests_during_switch_tasks": len(in_switch),
            "deploy_s_median": round(statistics.median(times["env_deploy"]), 2),
            "rollback_s_median": round(statistics.median(times["release_rollback"]), 2),
            "examples": {"non_2xx": non_2xx[:3], "stale": stale[:3]},
        }, indent=2))
        return 0 if not non_2xx and not stale else 1
    finally:
        rig.stop_nodes([node])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
