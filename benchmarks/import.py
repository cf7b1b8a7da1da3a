"""site_import of a large archive vs the floor of untar + mysql import on the node, in one run (issue 17).

On one node started from the provisioned image, with a site created there:
  archive - WordPress core, --size-mb of uploads (1 MiB files of random bytes: incompressible, as photos
            are) and a plain dump of the site's own database plus a filler table (--db-share of the size),
            packed as .tar.gz here;
  floor   - on the node, the archive already there: `tar -xzf` into a directory, then `mysql` < dump into
            an empty database (what any import costs at least);
  import  - the site_import playbook with that archive: its wall time, and without the task that copies
            the archive from the controller to the node (the floor starts with the archive on the node).
Prints both, their ratio and the load average before and during.

    .venv/bin/python -m benchmarks.import [--size-mb 1024] [--db-share 0.2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
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

SITE, USER = "bench", "bench_production"
ENV_ROOT = f"/var/www/sites/{SITE}/production"
MIB = 1024 * 1024


def play(node, tmp, playbook: str, **extra):
    r = run_playbook(playbook, rig.inventory([node]), tmp, env={"ANSIBLE_SHOW_CUSTOM_STATS": "True"},
                     extravars={"pressluft_target": "nodes", "pressluft_site": SITE, **extra})
    if r.rc != 0:
        raise SystemExit(f"{playbook} failed:\n{r.explain()}")
    return r


def filler_sql(mib: int) -> bytes:
    """A table of mib MiB of text rows (extended INSERTs of ~1 MiB, as mysqldump writes them)."""
    out = [b"CREATE TABLE `wp_bench_filler` (`id` int NOT NULL, `body` longtext, PRIMARY KEY (`id`))"
           b" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;\n"]
    row = 0
    for _ in range(mib):
        values = []
        for _ in range(16):
            row += 1
            values.append(b"(%d,'%s')" % (row, os.urandom(32 * 1024).hex().encode()[: 64 * 1024 - 32]))
        out.append(b"INSERT INTO `wp_bench_filler` VALUES " + b",".join(values) + b";\n")
    return b"".join(out)


def old_home(home: str) -> str:
    """Another host of the same length as home's (serialized lengths stay right), so the import rewrites
    URLs as a real one from another server does."""
    scheme, host = home.split("://", 1)
    return f"{scheme}://" + ("old" + "x" * len(host))[: len(host) - 5] + ".test"


def task_results(stdout: str, name: str) -> list[dict]:
    return [result for play in json.loads(stdout).get("plays", []) for task in play.get("tasks", [])
            if task["task"]["name"] == name for result in task["hosts"].values()]


def make_archive(node, tmp: Path, size_mb: int, db_share: float) -> tuple[Path, Path]:
    wp = ("runuser", "-u", USER, "--", "wp", f"--path={ENV_ROOT}/current", "--skip-plugins", "--skip-themes")
    home = node.exec(*wp, "option", "get", "home").stdout.strip()
    dump = node.exec(*wp, "db", "export", "-").stdout.encode().replace(home.encode(), old_home(home).encode())
    db_mib = int(size_mb * db_share)
    dump_path = tmp / "dump.sql"
    dump_path.write_bytes(dump + filler_sql(db_mib))
    archive = tmp / "site.tar.gz"
    with tarfile.open(wordpress_archive()) as core, tarfile.open(archive, "w:gz", compresslevel=1) as out:
        for m in core.getmembers():
            out.addfile(m, core.extractfile(m) if m.isreg() else None)
        for i in range(size_mb - db_mib):
            info = tarfile.TarInfo(f"wordpress/wp-content/uploads/2024/{i // 500:02d}/img{i}.jpg")
            info.size = MIB
            out.addfile(info, io.BytesIO(os.urandom(MIB)))
        out.add(dump_path, "wordpress/dump.sql")
    return archive, dump_path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--db-share", type=float, default=0.2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-import-"))
    load_before = os.getloadavg()
    print(f"load before {load_before[0]:.2f}/{load_before[1]:.2f} (1/5 min), {os.cpu_count()} CPUs",
          flush=True)
    node = provisioned.start(tmp)
    try:
        play(node, tmp, "site_create.yml", pressluft_wordpress_src=str(wordpress_archive()),
             pressluft_fencing_token=1)
        archive, _dump = make_archive(node, tmp, args.size_mb, args.db_share)
        size = archive.stat().st_size
        print(f"archive {size / MIB:.0f} MiB ({args.size_mb} MiB of content, {args.db_share:.0%} database)",
              flush=True)
        rig._run("podman", "cp", str(archive), f"{node.name}:/root/site.tar.gz", timeout=1800)
        t0 = time.monotonic()
        node.sh("rm -rf /root/floor && mkdir /root/floor && tar -xzf /root/site.tar.gz -C /root/floor && "
                "mysql -e 'DROP DATABASE IF EXISTS floor; CREATE DATABASE floor' && "
                "sed 's/utf8mb4_0900_ai_ci/utf8mb4_unicode_520_ci/' /root/floor/wordpress/dump.sql "
                "| mysql floor")
        floor = time.monotonic() - t0
        load_floor = os.getloadavg()
        node.sh("rm -rf /root/floor /root/site.tar.gz && mysql -e 'DROP DATABASE floor'")
        print(f"floor (untar + mysql import on the node): {floor:.1f} s, load {load_floor[0]:.2f}",
              flush=True)
        t0 = time.monotonic()
        r = play(node, tmp, "site_import.yml", pressluft_import_archive=str(archive),
                 pressluft_release="imp1", pressluft_pre_import_backup_id="bench-pre",
                 pressluft_fencing_token=2)
        wall = time.monotonic() - t0
        load_during = os.getloadavg()
        copy = task_seconds(r.stdout, "Copy the archive to the node")
        stage = task_seconds(r.stdout, "Analyse the archive and stage the release and the database "
                                       "(nothing live changes)")
        backup = task_seconds(r.stdout, "Back up the environment")
        net = wall - copy
        print(f"site_import: {wall:.1f} s wall, {copy:.1f} s of it copying the archive to the node, "
              f"stage {stage:.1f} s, pre-import backup {backup:.1f} s", flush=True)
        for result in task_results(r.stdout, "Analyse the archive and stage the release and the database "
                                             "(nothing live changes)"):
            print(f"  stage steps: {result.get('timings')}, in the analysis: "
                  f"{result.get('analysis', {}).get('seconds')}; URL tables {result.get('url_tables')}, "
                  f"forms {result.get('url_forms')}")
        for play_ in json.loads(r.stdout).get("plays", []):
            for task in play_.get("tasks", []):
                took = task_seconds(json.dumps({"plays": [{"tasks": [task]}]}), task["task"]["name"])
                if took >= 0.3:
                    print(f"  {took:6.2f} s  {task['task']['name']}")
        print(f"ratio (import without the copy) / floor = {net / floor:.2f} (target <= 1.5); "
              f"with the copy {wall / floor:.2f}; "
              f"without the copy and the backup {(net - backup) / floor:.2f}")
        print(f"load average before {load_before[0]:.2f}/{load_before[1]:.2f}, during the floor "
              f"{load_floor[0]:.2f}, after the import {load_during[0]:.2f}/{load_during[1]:.2f} (1/5 min)")
    finally:
        rig.stop_nodes([node])


if __name__ == "__main__":
    main()
