"""A safe update end to end (`pressluft update SITE --safe`, issue 18): its time and where it goes.

On one node started from the provisioned image: a site whose release carries one plugin, filled with
--db-mb of database rows (a table of random text in the site's database) and --uploads-mb of uploads
(random files, incompressible), then per round one plugin zip update (1.0 -> 2.0, 2.0 -> 3.0, ...):
  plain - the env_update playbook as `pressluft update` runs it;
  safe  - the same with pressluft_update_safe: clone, update the clone, compare, remove it, apply.
Prints each round (wall time, and the safe update's phases from its report), the medians, the ratio
safe/plain and the load average before and during.

    .venv/bin/python -m benchmarks.safe_update [--rounds 2] [--db-mb 200] [--uploads-mb 800]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pressluft_lib.jobs.updates import phase_seconds  # noqa: E402
from tests.rig import nodes as rig  # noqa: E402
from tests.rig import provisioned  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE, USER, SLUG = "bench", "bench_production", "benchsafe"
ENV_ROOT = f"/var/www/sites/{SITE}/production"
PHASES = ("clone", "update", "compare", "remove", "apply")


def make_zip(tmp: Path, version: str) -> Path:
    path = tmp / f"{SLUG}-{version}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{SLUG}/{SLUG}.php", f"<?php\n/*\n * Plugin Name: {SLUG}\n * Version: {version}\n */\n")
    return path


def play(node, tmp, playbook: str, **extra):
    r = run_playbook(playbook, rig.inventory([node]), tmp, env={"ANSIBLE_SHOW_CUSTOM_STATS": "True"},
                     extravars={"pressluft_target": "nodes", "pressluft_site": SITE, **extra}, timeout=3600)
    if r.rc != 0:
        raise SystemExit(f"{playbook} failed:\n{r.explain()}")
    return json.loads(r.stdout).get("global_custom_stats", {})


def fill(node, db_mb: int, uploads_mb: int) -> None:
    """Benchmark data only: rows of random text in the site's database, random files in its uploads."""
    if db_mb:
        sql = ("CREATE TABLE bench_fill (id INT AUTO_INCREMENT PRIMARY KEY, v LONGTEXT); "
               + "INSERT INTO bench_fill (v) VALUES (TO_BASE64(RANDOM_BYTES(1024))); " * db_mb
               + "UPDATE bench_fill SET v = REPEAT(v, 770);")  # ~1 MB a row
        node.exec("mariadb", USER, input=sql)
    if uploads_mb:
        node.sh(f"d={ENV_ROOT}/shared/uploads/2026/12 && mkdir -p $d && "
                f"for i in $(seq 1 {uploads_mb}); do head -c 1048576 /dev/urandom > $d/fill-$i.jpg; done && "
                f"chown -R {USER}: {ENV_ROOT}/shared/uploads")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--db-mb", type=int, default=200)
    ap.add_argument("--uploads-mb", type=int, default=800)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-safe-"))
    load_before = os.getloadavg()
    node = provisioned.start(tmp)
    try:
        play(node, tmp, "site_create.yml", pressluft_wordpress_src=str(wordpress_archive()))
        src = tmp / "src"
        with tarfile.open(wordpress_archive()) as tar:
            tar.extractall(tmp / "unpacked", filter="tar")
        (tmp / "unpacked" / "wordpress").rename(src)
        (src / "wp-content/plugins" / SLUG).mkdir(parents=True)
        (src / "wp-content/plugins" / SLUG / f"{SLUG}.php").write_text(
            f"<?php\n/*\n * Plugin Name: {SLUG}\n * Version: 1.0\n */\n")
        play(node, tmp, "env_deploy.yml", pressluft_release="r1", pressluft_release_src=str(src),
             pressluft_fencing_token=1)
        node.exec("runuser", "-u", USER, "--", "wp", f"--path={ENV_ROOT}/current", "plugin", "activate", SLUG)
        t0 = time.monotonic()
        fill(node, args.db_mb, args.uploads_mb)
        size = node.sh(f"du -sm {ENV_ROOT}/shared/uploads | cut -f1").strip()
        db = node.sh("mariadb -N -e \"SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM "
                     f"information_schema.tables WHERE table_schema = '{USER}'\"").strip()
        print(f"site filled in {time.monotonic() - t0:.0f} s: database {db} MB, uploads {size} MB",
              flush=True)
        plain, safe, parts = [], [], {p: [] for p in PHASES}
        version = 1
        for n in range(args.rounds):
            for mode in ("plain", "safe"):
                version += 1
                extra = {"pressluft_update_safe": True, "pressluft_update_clone_env": f"safe{n}"}
                t0 = time.monotonic()
                stats = play(node, tmp, "env_update.yml",
                             pressluft_update_plugin_zips=[str(make_zip(tmp, f"{version}.0"))],
                             pressluft_pre_update_backup_id=f"bench-{mode}-{n}",
                             pressluft_fencing_token=10 + version, **(extra if mode == "safe" else {}))
                took = time.monotonic() - t0
                (safe if mode == "safe" else plain).append(took)
                line = f"round {n + 1} {mode}: {took:.1f} s"
                if mode == "safe":
                    report = stats["pressluft_update_report"]
                    if not report["passed"]:
                        raise SystemExit(f"the comparison failed: {report['reason']}")
                    spent = phase_seconds(report["timings"])
                    for p in PHASES:
                        parts[p].append(spent[p])
                    line += " (" + ", ".join(f"{p} {spent[p]:.1f}" for p in PHASES) + ")"
                print(f"{line}, load {os.getloadavg()[0]:.2f}", flush=True)
        load_during = os.getloadavg()
        p, s = statistics.median(plain), statistics.median(safe)
        print(f"median plain update {p:.1f} s, safe update {s:.1f} s: ratio {s / p:.2f}; safe phases: "
              + ", ".join(f"{k} {statistics.median(v):.1f} s" for k, v in parts.items()))
        print(f"load average before {load_before[0]:.2f}/{load_before[1]:.2f}, "
              f"after {load_during[0]:.2f}/{load_during[1]:.2f} (1/5 min), {os.cpu_count()} CPUs")
    finally:
        rig.stop_nodes([node])


if __name__ == "__main__":
    main()
