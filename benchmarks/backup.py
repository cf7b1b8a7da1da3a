"""Backup benchmark on one provisioned podman node, restic to moto's S3 server (issue 6). Prints figures.

Site with --uploads-mb of incompressible uploads (--files files) and a table of --rows rows, then:
1. full backup (local + restic to S3), 2. incremental backup of the unchanged site (target <= 5 s),
3. env_restore (pre-restore backup + verified restore), 4. restore from S3 with no local copy.
Each figure is the playbook's wall time and the backup module's own time (from the task's duration).

    .venv/bin/python -m benchmarks.backup [--uploads-mb 1024] [--files 100] [--rows 100000]
        [--node NAME --key FILE]   # a running rig node that is already provisioned (kept afterwards)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import s3  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE, USER = "bench", "bench_production"
ROOT_DIR = f"/var/www/sites/{SITE}/production"
BUCKET = "pressluft-bench"


def module_seconds(stdout: str) -> float:
    """Sum of the durations of the backup module's tasks in an ansible.posix.json output."""
    total = 0.0
    for play in json.loads(stdout).get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"] not in ("Back up the environment", "Restore the backup"):
                continue
            span = task["task"]["duration"]
            total += (datetime.fromisoformat(span["end"].rstrip("Z")) -
                      datetime.fromisoformat(span["start"].rstrip("Z"))).total_seconds()
    return total


def play(node, tmp, playbook: str, **extra) -> tuple[float, float, dict]:
    t0 = time.monotonic()
    r = run_playbook(playbook, rig.inventory([node]), tmp, env={"ANSIBLE_SHOW_CUSTOM_STATS": "True"},
                     extravars={"pressluft_target": "nodes", "pressluft_site": SITE, **extra})
    wall = time.monotonic() - t0
    if r.rc != 0:
        raise SystemExit(f"{playbook} failed:\n{r.explain()}")
    return wall, module_seconds(r.stdout), json.loads(r.stdout).get("global_custom_stats", {})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--node", help="name of a running, provisioned rig node to use (kept afterwards)")
    ap.add_argument("--key", help="its SSH key file (with --node)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-backup-"))
    server = s3.start(tmp)
    node = None
    try:
        server.create_bucket(BUCKET)
        if args.node:
            kept = rig.Node(args.node, rig._published_port(args.node, 22), rig._published_port(args.node, 80),
                            Path(args.key))
        else:
            node = kept = rig.start_node(tmp)
        setup = (("node_provision.yml", {"pressluft_hardening_enabled": False, "node_wpcli_sha512": "",
                                         "node_wpcli_src": str(ROOT / "tests" / "wpcli" / "wp")}),
                 ("site_create.yml", {"pressluft_site": SITE,
                                      "pressluft_wordpress_src": str(wordpress_archive())}))
        for playbook, extra in setup[1:] if args.node else setup:
            r = run_playbook(playbook, rig.inventory([kept]), tmp,
                             extravars={"pressluft_target": "nodes", **extra})
            if r.rc != 0:
                raise SystemExit(f"{playbook} failed:\n{r.explain()}")
        size = args.uploads_mb // args.files
        kept.sh(f"runuser -u {USER} -- sh -c 'mkdir -p {ROOT_DIR}/shared/uploads/bench && "
                f"for i in $(seq 1 {args.files}); do head -c {size}M /dev/urandom > "
                f"{ROOT_DIR}/shared/uploads/bench/$i.jpg; done'")
        # A WordPress-prefixed table, so it is in the dump (MariaDB's sequence engine makes the rows).
        kept.exec("mysql", "-D", USER, "-e", f"CREATE TABLE {USER}.wp_bench_rows (id INT PRIMARY KEY, "
                  f"name CHAR(32), body VARCHAR(200)) ENGINE=InnoDB; INSERT INTO {USER}.wp_bench_rows "
                  f"SELECT seq, MD5(seq), REPEAT(CHAR(65 + seq % 26), 100) FROM seq_1_to_{args.rows}")
        repo = {"pressluft_restic_repository": server.node_repository(BUCKET, "bench"),
                "pressluft_restic_password": "bench-restic-password",
                "pressluft_s3_access_key_id": server.access_key_id,
                "pressluft_s3_secret_access_key": server.secret_access_key}
        print(f"site: {args.files} files, {size * args.files} MB of uploads, "
              f"{args.rows} rows in wp_bench_rows")

        wall, mod, stats = play(kept, tmp, "backup_create.yml", pressluft_backup_id="full-1", **repo)
        b = stats["pressluft_backup"]
        print(f"full backup:        {wall:6.1f} s playbook, {mod:6.1f} s module, "
              f"restic data_added {b['restic_data_added'] / 1e6:8.1f} MB, rows counted "
              f"{b['manifest']['tables'].get('wp_bench_rows')}")
        for n in (2, 3):
            wall, mod, stats = play(kept, tmp, "backup_create.yml", pressluft_backup_id=f"inc-{n}", **repo)
            print(f"incremental backup: {wall:6.1f} s playbook, {mod:6.1f} s module, "
                  f"restic data_added {stats['pressluft_backup']['restic_data_added'] / 1e6:8.3f} MB")
        wall, mod, _stats = play(kept, tmp, "env_restore.yml", pressluft_backup_id="full-1",
                                 pressluft_pre_restore_backup_id="pre-1", **repo)
        print(f"env_restore:        {wall:6.1f} s playbook, {mod:6.1f} s in the module "
              "(pre-restore backup + restore)")
        kept.exec("rm", "-rf", f"/var/backups/pressluft/{USER}/full-1")
        wall, mod, _stats = play(kept, tmp, "env_restore.yml", pressluft_backup_id="full-1",
                                 pressluft_pre_restore_backup_id="pre-2", **repo)
        print(f"restore from S3:    {wall:6.1f} s playbook, {mod:6.1f} s in the module "
              "(pre-restore backup + restic restore + restore)")
    finally:
        if node is not None:
            rig.stop_nodes([node])
        server.stop()


if __name__ == "__main__":
    main()
