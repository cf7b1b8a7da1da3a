"""Failed requests while secrets_rotate runs (issue 12). Prints its figures.

One provisioned podman node with site `bench`; its live release holds `rotate-probe.php`, which boots
WordPress (MariaDB login with wp-config.php's DB_PASSWORD) and writes a key to Redis as the environment's
ACL user (WP_REDIS_PASSWORD): it answers 200 only when both logins work. Load: THREADS keep-alive HTTP
clients on 127.0.0.1 (the node's published nginx port) request it without pause while ROTATIONS
secrets_rotate runs follow each other (every other one with the admin password).

- requests, non_2xx: answers during the rotations, and those that are not 2xx (or connection errors,
  timeouts after 60 s); baseline_*: the same clients for as long again with no rotation running, so an
  overloaded host's timeouts are not taken for the rotation's.
- --drain 0 shows why the drain phase exists (the old passwords stop working right after wp-config.php
  changed, while opcache may still serve the old file for up to revalidate_freq seconds).

    .venv/bin/python -m benchmarks.secrets_rotate [--rotations 10] [--threads 4] [--drain 10]
        [--inventory FILE --http-port PORT]   # an already provisioned node instead of a new one
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load import Load  # noqa: E402
from tests.rig import nodes as rig  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE, HOST = "bench", "bench.localhost"
# The probe page boots WordPress and writes Redis; a loaded host may take long: 60 s is not a failure.
PROBE_LOAD = {"host": HOST, "path": "/rotate-probe.php", "timeout": 60, "body_chars": 200}

PROBE = r"""<?php
require __DIR__ . '/wp-load.php';
global $wpdb;
if ($wpdb->get_var('SELECT 1') !== '1') { http_response_code(500); exit('db'); }
try {
    $r = new Redis();
    $r->connect(WP_REDIS_PATH);
    $r->auth(WP_REDIS_PASSWORD);
    $r->set(WP_REDIS_PREFIX . 'probe', (string) time());
} catch (Exception $e) { http_response_code(500); exit('redis: ' . $e->getMessage()); }
echo 'ok';
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rotations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--drain", type=int, default=10, help="pressluft_rotate_drain_seconds (default 10)")
    ap.add_argument("--inventory", type=Path, help="static inventory (group nodes) of a provisioned node")
    ap.add_argument("--http-port", type=int, help="that node's published HTTP port")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pressluft-bench-rotate-"))
    node = None if args.inventory else rig.start_node(work)
    try:
        inv = args.inventory or rig.inventory([node])
        port = args.http_port if args.inventory else node.http_port
        standin = str(ROOT / "tests" / "wpcli" / "wp")
        archive = str(wordpress_archive())
        steps = [("site_create.yml", {"pressluft_site": SITE, "pressluft_wordpress_src": archive})]
        if node is not None:
            steps.insert(0, ("node_provision.yml", {"pressluft_hardening_enabled": False,
                                                    "node_wpcli_src": standin, "node_wpcli_sha512": ""}))
        for playbook, extra in steps:
            r = run_playbook(playbook, inv, work, extravars={"pressluft_target": "nodes", **extra})
            if r.rc != 0:
                raise SystemExit(f"{playbook} failed:\n{r.explain()}")
        # Copied in as root through Ansible (works for a new or a given node).
        r = run_playbook(ROOT / "benchmarks" / "secrets_rotate_probe.yml", inv, work,
                         extravars={"probe": PROBE, "dest": f"/var/www/sites/{SITE}/production/current/"
                                    "rotate-probe.php"})
        if r.rc != 0:
            raise SystemExit(f"copying the probe failed:\n{r.explain()}")
        times: list[float] = []
        started = time.monotonic()
        with Load(port, args.threads, **PROBE_LOAD) as load:
            time.sleep(2)
            for i in range(args.rotations):
                t0 = time.monotonic()
                r = run_playbook("secrets_rotate.yml", inv, work, extravars={
                    "pressluft_target": "nodes", "pressluft_site": SITE, "pressluft_rotate_admin": i % 2 == 1,
                    "pressluft_rotate_drain_seconds": args.drain})
                if r.rc != 0:
                    raise SystemExit(f"secrets_rotate failed:\n{r.explain()}")
                times.append(time.monotonic() - t0)
            time.sleep(2)
        took = time.monotonic() - started
        with Load(port, args.threads, **PROBE_LOAD) as baseline:
            time.sleep(took)
        samples = sorted(load.samples)
        non_2xx = [s for s in samples if not 200 <= s[2] < 300]
        base_bad = [s for s in baseline.samples if not 200 <= s[2] < 300]
        print(json.dumps({
            "rotations": args.rotations, "threads": args.threads, "drain_seconds": args.drain,
            "requests": len(samples),
            "requests_per_s": round(len(samples) / (samples[-1][1] - samples[0][0]), 1),
            "non_2xx": len(non_2xx),
            "baseline_requests": len(baseline.samples), "baseline_non_2xx": len(base_bad),
            "rotate_s_median": round(statistics.median(times), 2),
            "examples": {"non_2xx": [(s[2], s[3]) for s in non_2xx[:3]],
                         "baseline_non_2xx": [(s[2], s[3]) for s in base_bad[:3]]},
        }, indent=2))
        return 0 if not non_2xx else 1
    finally:
        if node is not None:
            rig.stop_nodes([node])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
