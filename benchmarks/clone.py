"""env_create (a staging clone) vs a shell floor doing the same copy on the node, in one run (issue 15;
target ratio <= 1.5).

On one node started from the provisioned image: a site whose uploads hold --uploads-mb MiB (1 MiB files of
random bytes, incompressible as photos are) and whose database has a --rows-row table (each row carries the
site's URL, so every pass has work). An environment `floor` is cloned once first (it also warms the caches).
Then per round, alternating:
  clone - the env_create playbook into a new environment c<N>: module env_clone's snapshot (wp db export
          --single-transaction, the live release and the uploads copied aside by a process of its own)
          while role site_env creates user, pool, database, server block, ...; then env_clone's fill (moved
          in, wp db import) and wp_search_replace (the passes the dump needs, then their dry runs);
  floor - on the node as root, into `floor`: mysqldump --single-transaction | mysql into the emptied database,
          rsync of the uploads and of the live release, then `wp search-replace` with the same 4 passes
          (--all-tables, guid skipped) as the environment's user.
Prints each round with its phases, the medians, their ratio and the load average before and during.

    .venv/bin/python -m benchmarks.clone [--uploads-mb 1024] [--rows 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.update import task_seconds  # noqa: E402
from tests.rig import nodes as rig  # noqa: E402
from tests.rig import provisioned  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE = "bench"
PROD, FLOOR = f"/var/www/sites/{SITE}/production", f"/var/www/sites/{SITE}/floor"
COPY_TASK = "Copy the database, the live release and the uploads"
REWRITE_TASK = "Rewrite the source's URLs to the environment's"


def play(node, tmp, playbook: str, **extra):
    r = run_playbook(playbook, rig.inventory([node]), tmp, env={"ANSIBLE_SHOW_CUSTOM_STATS": "True"},
                     extravars={"pressluft_target": "nodes", "pressluft_site": SITE, **extra})
    if r.rc != 0:
        raise SystemExit(f"{playbook} failed:\n{r.explain()}")
    return r


def clone(node, tmp, env: str) -> dict[str, float]:
    t0 = time.monotonic()
    r = play(node, tmp, "env_create.yml", pressluft_env=env, pressluft_source_env="production",
             pressluft_domains=[f"{env}.{SITE}.localhost"])
    wall = time.monotonic() - t0
    copy, rewrite = task_seconds(r.stdout, COPY_TASK), task_seconds(r.stdout, REWRITE_TASK)
    return {"total": wall, "copy": copy, "rewrite": rewrite, "rest": wall - copy - rewrite,
            "top": top_tasks(r.stdout)}


def top_tasks(stdout: str, n: int = 8) -> list[tuple[float, str]]:
    """The playbook's slowest tasks (summed per name): where the time beyond the floor goes."""
    names = {t["task"]["name"] for p in json.loads(stdout).get("plays", []) for t in p.get("tasks", [])}
    return sorted(((task_seconds(stdout, name), name) for name in names), reverse=True)[:n]


def fill(node, uploads_mb: int, rows: int) -> None:
    node.sh(f"cd {PROD}/shared/uploads && for i in $(seq 1 {uploads_mb}); do d=2024/$((i / 500)); "
            f"mkdir -p $d && head -c 1048576 /dev/urandom > $d/img$i.jpg; done && "
            f"chown -R {SITE}_production: {PROD}/shared/uploads")
    # Every row names the site's URL (as post content and meta do): the passes rewrite each one.
    node.sh(f"mysql {SITE}_production -e \"CREATE TABLE wp_bench_rows (id int NOT NULL PRIMARY KEY, "
            f"url varchar(255), body text) ENGINE=InnoDB; INSERT INTO wp_bench_rows SELECT seq, "
            f"CONCAT('http://{SITE}.localhost/p/', seq), REPEAT('lorem ipsum ', 20) FROM seq_1_to_{rows}\"")


def floor(node) -> dict[str, float]:
    """The same copy by hand: each phase timed on the node."""
    release = node.exec("readlink", f"{PROD}/current").stdout.strip().rsplit("/", 1)[1]
    user, src_url, dst_url = f"{SITE}_floor", f"{SITE}.localhost", f"floor.{SITE}.localhost"
    # wp_search_replace's passes: http, https, then both JSON-escaped, each to the new http:// URL.
    pairs = [(f"{scheme}://{src_url}", f"http://{dst_url}") for scheme in ("http", "https")]
    pairs += [(a.replace("/", "\\/"), b.replace("/", "\\/")) for a, b in pairs]
    passes = " ".join(f"'{a}' '{b}'" for a, b in pairs)
    steps = {
        "db": f"mysql -e 'DROP DATABASE {user}; CREATE DATABASE {user}' && "
              f"mysqldump --single-transaction {SITE}_production | mysql {user}",
        "uploads": f"rsync -a --delete --chown={user}:{user} {PROD}/shared/uploads/ {FLOOR}/shared/uploads/",
        "release": f"rsync -a --chown={user}:{user} {PROD}/releases/{release}/ {FLOOR}/releases/floor-copy/",
        "rewrite": f"set -- {passes}; while [ $# -gt 0 ]; do runuser -u {user} -- wp --path={FLOOR}/current "
                   f"--skip-plugins --skip-themes search-replace \"$1\" \"$2\" --all-tables "
                   f"--skip-columns=guid --quiet; shift 2; done",
    }
    # A fresh target, as env_create's is (untimed): rsync into last round's copy would transfer nothing.
    node.sh(f"rm -rf {FLOOR}/shared/uploads {FLOOR}/releases/floor-copy && install -d -o {user} -g {user} "
            f"{FLOOR}/shared/uploads")
    out = {}
    for name, cmd in steps.items():
        t0 = time.monotonic()
        node.sh(cmd)
        out[name] = time.monotonic() - t0
    out["total"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads-mb", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-clone-"))
    load_before = os.getloadavg()
    print(f"load before {load_before[0]:.2f}/{load_before[1]:.2f} (1/5 min), {os.cpu_count()} CPUs",
          flush=True)
    node = provisioned.start(tmp)
    try:
        play(node, tmp, "site_create.yml", pressluft_wordpress_src=str(wordpress_archive()))
        fill(node, args.uploads_mb, args.rows)
        print(f"site: {args.uploads_mb} MiB of uploads, wp_bench_rows {args.rows} rows", flush=True)
        play(node, tmp, "env_create.yml", pressluft_env="floor", pressluft_source_env="production",
             pressluft_domains=[f"floor.{SITE}.localhost"])
        clones, floors, loads = [], [], []
        for n in range(args.rounds):
            clones.append(clone(node, tmp, f"c{n}"))
            floors.append(floor(node))
            loads.append(os.getloadavg()[0])
            c, f = clones[-1], floors[-1]
            print(f"round {n + 1}: clone {c['total']:.1f} s (site_env and the rest {c['rest']:.1f}, copy "
                  f"{c['copy']:.1f}, search-replace {c['rewrite']:.1f}); floor {f['total']:.1f} s (db "
                  f"{f['db']:.1f}, uploads {f['uploads']:.1f}, release {f['release']:.1f}, search-replace "
                  f"{f['rewrite']:.1f}); ratio {c['total'] / f['total']:.2f}, load {loads[-1]:.2f}",
                  flush=True)
            slowest = "; ".join(f"{name} {s:.1f}" for s, name in c["top"])
            print(f"  slowest clone tasks: {slowest}", flush=True)
        c = statistics.median(x["total"] for x in clones)
        f = statistics.median(x["total"] for x in floors)
        copy = statistics.median(x["copy"] + x["rewrite"] for x in clones)
        print(f"{args.rounds} rounds: clone median {c:.1f} s, floor median {f:.1f} s: ratio {c / f:.2f} "
              f"(target <= 1.5); copy + search-replace alone {copy:.1f} s: ratio {copy / f:.2f}")
        print(f"load average before {load_before[0]:.2f}, during {min(loads):.2f}-{max(loads):.2f} (1 min)")
    finally:
        rig.stop_nodes([node])


if __name__ == "__main__":
    main()
