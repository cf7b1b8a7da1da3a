"""The page cache under load (issue 16): a cached WordPress front page against the same page through PHP.

One node from the provisioned image (tests/rig/provisioned.py) with site `bench` (real WordPress, default
theme) and its page cache enabled (playbook env_cache_toggle.yml). wrk runs in the node's network namespace
(`nsenter -n`, the host's wrk binary) against the node's own nginx on 127.0.0.1:80, so podman's user-mode
port forwarding is not what is measured. Rounds alternate, each `--seconds` long:
- cached: GET / (X-Cache HIT, checked before the run);
- uncached: GET /?nocache=<n> (a query string: BYPASS, WordPress renders the page every time).
Prints requests/s and p99 latency of each round, the median of each, their ratio (target >= 20) and the
load average before and during the run.

    .venv/bin/python -m benchmarks.page_cache [--rounds 3] [--seconds 10] [--connections 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import provisioned  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SITE, HOST = "bench", "bench.localhost"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def node_pid(node: rig.Node) -> str:
    return subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", node.name], check=True,
                          capture_output=True, text=True).stdout.strip()


def wrk(pid: str, path: str, seconds: int, connections: int, threads: int) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-2xx/3xx or timed out) of one wrk run inside the node's network namespace.

    wrk's default 2 s timeout drops slow answers from the latency figures: 60 s keeps them in."""
    out = subprocess.run(
        ["nsenter", "-t", pid, "-n", "wrk", "--latency", "-t", str(threads), "-c", str(connections),
         "-d", f"{seconds}s", "--timeout", "60s", "-H", f"Host: {HOST}", f"http://127.0.0.1:80{path}"],
        check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([0-9.]+)(us|ms|s|m)\s*$", out, re.M).groups()
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return rps, float(value) * _UNITS[unit], sum(int(m.group(1)) for m in (bad, timeouts) if m)


def x_cache(node: rig.Node, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": HOST})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("X-Cache") or ""
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    # As many as the pool has PHP workers (site_env_php_max_children): more only queue in front of PHP.
    ap.add_argument("--connections", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pressluft-bench-cache-"))
    node = provisioned.start(work)
    try:
        inv = rig.inventory([node])
        base = {"pressluft_target": "nodes", "pressluft_site": SITE}
        made = run_playbook("site_create.yml", inv, work, extravars={
            **base, "pressluft_wordpress_src": str(wordpress_archive())})
        if made.rc != 0:
            raise SystemExit(made.explain())
        on = run_playbook("env_cache_toggle.yml", inv, work,
                          extravars={**base, "pressluft_cache_state": "enabled"})
        if on.rc != 0:
            raise SystemExit(on.explain())
        x_cache(node, "/")
        seen = (x_cache(node, "/"), x_cache(node, "/?nocache=1"))
        if seen != ("HIT", "BYPASS"):
            raise SystemExit(f"expected HIT and BYPASS before the run, got {seen}")
        pid = node_pid(node)
        load_before = os.getloadavg()
        rows: dict[str, list[tuple[float, float, int]]] = {"cached": [], "uncached": []}
        for n in range(args.rounds):
            for kind, path in (("cached", "/"), ("uncached", f"/?nocache={n}")):
                rows[kind].append(wrk(pid, path, args.seconds, args.connections, args.threads))
                rps, p99, bad = rows[kind][-1]
                print(f"round {n + 1} {kind:8} {rps:10.1f} req/s  p99 {p99:8.2f} ms  failed {bad}",
                      flush=True)
        load_during = os.getloadavg()
        med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
               for k, v in rows.items()}
        print(f"load average before {load_before[0]:.2f}, at the end {load_during[0]:.2f} (1 min)")
        print(f"wrk -t {args.threads} -c {args.connections}, {args.rounds} rounds of {args.seconds} s each")
        for kind in ("cached", "uncached"):
            print(f"{kind:8} median {med[kind][0]:10.1f} req/s  p99 {med[kind][1]:8.2f} ms")
        print(f"ratio cached/uncached {med['cached'][0] / med['uncached'][0]:.1f}x (target >= 20)")
        return 0
    finally:
        rig.stop_nodes([node])


if __name__ == "__main__":
    raise SystemExit(main())
