"""env_update of 10 plugins vs the floor of updating them in place with WP-CLI, in one run (issue 18).

On one node started from the provisioned image: a site whose release carries 10 plugins, then per round
(1.0 -> 2.0, 2.0 -> 3.0, ...):
  floor  - `wp plugin install z1 ... z10 --force` as the site user in a writable copy of the release
           (what updating in place costs at least; wordpress.org is unreachable here, so the zips stand
           for `wp plugin update`, which downloads them first);
  update - the env_update playbook with the same 10 zips: plan, pre-update database backup, build a
           new release, checks, switch, live check (wall time, and the build task's own time).
Prints each round, the medians, their ratio and the load average before and during.

    .venv/bin/python -m benchmarks.update [--rounds 3] [--plugins 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import provisioned  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE, USER = "bench", "bench_production"
ENV_ROOT = f"/var/www/sites/{SITE}/production"


def plugin_php(slug: str, version: str) -> str:
    return f"<?php\n/*\n * Plugin Name: {slug}\n * Version: {version}\n */\n" + "// filler\n" * 2000


def make_zip(tmp: Path, slug: str, version: str) -> Path:
    path = tmp / f"{slug}-{version}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{slug}/{slug}.php", plugin_php(slug, version))
        for i in range(20):  # a plugin is more than one file
            zf.writestr(f"{slug}/includes/part{i}.php", "<?php\n" + f"// {slug} {version} part {i}\n" * 50)
    return path


def task_seconds(stdout: str, name: str) -> float:
    total = 0.0
    for play in json.loads(stdout).get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"] == name:
                span = task["task"]["duration"]
                total += (datetime.fromisoformat(span["end"].rstrip("Z"))
                          - datetime.fromisoformat(span["start"].rstrip("Z"))).total_seconds()
    return total


def play(node, tmp, playbook: str, **extra):
    r = run_playbook(playbook, rig.inventory([node]), tmp, env={"ANSIBLE_SHOW_CUSTOM_STATS": "True"},
                     extravars={"pressluft_target": "nodes", "pressluft_site": SITE, **extra})
    if r.rc != 0:
        raise SystemExit(f"{playbook} failed:\n{r.explain()}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plugins", type=int, default=10)
    args = ap.parse_args()
    slugs = [f"bench{i:02d}" for i in range(1, args.plugins + 1)]
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-update-"))
    load_before = os.getloadavg()
    node = provisioned.start(tmp)
    try:
        play(node, tmp, "site_create.yml", pressluft_wordpress_src=str(wordpress_archive()))
        src = tmp / "src"
        with tarfile.open(wordpress_archive()) as tar:
            tar.extractall(tmp / "unpacked", filter="tar")
        (tmp / "unpacked" / "wordpress").rename(src)
        for slug in slugs:
            (src / "wp-content/plugins" / slug).mkdir(parents=True)
            (src / "wp-content/plugins" / slug / f"{slug}.php").write_text(plugin_php(slug, "1.0"))
        play(node, tmp, "env_deploy.yml", pressluft_release="r1", pressluft_release_src=str(src),
             pressluft_fencing_token=1)
        wp = ("runuser", "-u", USER, "--", "wp", "--skip-plugins", "--skip-themes")
        node.exec(*wp, f"--path={ENV_ROOT}/current", "plugin", "activate", *slugs)
        floors, updates, builds = [], [], []
        for n in range(args.rounds):
            version = f"{n + 2}.0"
            zips = [make_zip(tmp, s, version) for s in slugs]
            # floor: a writable copy of the live release, the zips on the node, one WP-CLI run
            node.sh(f"rm -rf /tmp/floor /tmp/zips && cp -a $(readlink -f {ENV_ROOT}/current) /tmp/floor && "
                    f"mkdir /tmp/zips && chown -R {USER}: /tmp/floor /tmp/zips")
            for z in zips:
                rig._run("podman", "cp", str(z), f"{node.name}:/tmp/zips/{z.name}")
            node.sh(f"chown -R {USER}: /tmp/zips")
            t0 = time.monotonic()
            node.exec(*wp, "--path=/tmp/floor", "plugin", "install", *[f"/tmp/zips/{z.name}" for z in zips],
                      "--force", timeout=600)
            floors.append(time.monotonic() - t0)
            t0 = time.monotonic()
            r = play(node, tmp, "env_update.yml", pressluft_update_plugin_zips=[str(z) for z in zips],
                     pressluft_pre_update_backup_id=f"bench-{n}", pressluft_fencing_token=10 + n)
            updates.append(time.monotonic() - t0)
            builds.append(task_seconds(r.stdout, "Build the release with exactly the planned versions"))
            print(f"round {n + 1}: floor {floors[-1]:.2f} s, env_update {updates[-1]:.2f} s "
                  f"(build task {builds[-1]:.2f} s), load {os.getloadavg()[0]:.2f}", flush=True)
        load_during = os.getloadavg()
        f, u, b = statistics.median(floors), statistics.median(updates), statistics.median(builds)
        print(f"{args.plugins} plugins, {args.rounds} rounds: floor median {f:.2f} s, env_update median "
              f"{u:.2f} s (build {b:.2f} s): ratio {u / f:.1f} (build alone {b / f:.1f})")
        print(f"load average before {load_before[0]:.2f}/{load_before[1]:.2f}, "
              f"after {load_during[0]:.2f}/{load_during[1]:.2f} (1/5 min), {os.cpu_count()} CPUs")
    finally:
        rig.stop_nodes([node])


if __name__ == "__main__":
    main()
