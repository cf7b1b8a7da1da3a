"""`pressluft login` end to end vs the floor of `ssh node true`, in one run on one provisioned podman node
(issue 17). Prints its figures and the host's load before and during.

Samples alternate: `ssh node true` with the node query's own SSH options (benchmarks/README.md), the
library call (NodeQueries.login: SSH + sudo + WP-CLI boot + the plugin), and `pressluft login` as a user
runs it (a new process: Python and the CLI's imports included). Target: p95 <= 1 s on an idle node.

    .venv/bin/python -m benchmarks.login [--samples 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import provisioned  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def line(name: str, values: list[float]) -> str:
    return (f"{name:<28} p50 {statistics.median(values) * 1000:7.0f} ms"
            f"   p95 {pct(values, 95) * 1000:7.0f} ms"
            f"   min {min(values) * 1000:6.0f} ms   n={len(values)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-login-"))
    home = tmp / "home"
    os.environ["PRESSLUFT_HOME"] = str(home)
    os.environ["PRESSLUFT_DB"] = f"sqlite:///{home / 'pressluft.db'}"
    os.environ.pop("PRESSLUFT_SECRET_KEY", None)
    from pressluft_lib.nodequery import ssh
    from pressluft_lib.nodequery.queries import NodeQueries
    from pressluft_lib.storage import db
    from tests.rig.control_plane import add_node, js, run, work

    node = provisioned.start(tmp)
    try:
        run("db", "upgrade")
        add_node(node)
        js("site", "create", "shop", "--node", node.name, "--domain", "shop.example.test",
           "--wordpress", str(wordpress_archive()))
        work()
        q = NodeQueries(db.session_factory(os.environ["PRESSLUFT_DB"]), "bench", db.data_dir())
        target = q.node(node.name)
        ssh_true = ssh.ssh_argv(target, ["true"], db.data_dir(), ssh.DEADLINE_SECONDS)
        cli = [str(Path(sys.executable).parent / "pressluft"), "login", "shop"]
        subprocess.run(ssh_true, check=True, capture_output=True)  # host key learnt, caches warm
        q.login("shop", "production")
        load_before = os.getloadavg()
        floor, lib, end_to_end = [], [], []
        for _ in range(args.samples):
            t0 = time.monotonic()
            subprocess.run(ssh_true, check=True, capture_output=True)
            floor.append(time.monotonic() - t0)
            t0 = time.monotonic()
            q.login("shop", "production")
            lib.append(time.monotonic() - t0)
            t0 = time.monotonic()
            out = subprocess.run(cli, check=True, capture_output=True, text=True).stdout
            end_to_end.append(time.monotonic() - t0)
            assert "action=pressluft_login&token=" in out, out
        load_during = os.getloadavg()
    finally:
        rig.stop_nodes([node])
    print(f"load before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"during (after the samples) {load_during[0]:.2f} {load_during[1]:.2f} {load_during[2]:.2f}; "
          f"{os.cpu_count()} CPUs")
    print(line("ssh node true (floor)", floor))
    print(line("NodeQueries.login (library)", lib))
    print(line("pressluft login (CLI)", end_to_end))
    print(f"ratio p50 CLI / ssh floor: {statistics.median(end_to_end) / statistics.median(floor):.1f}; "
          f"library / ssh floor: {statistics.median(lib) / statistics.median(floor):.1f}")


if __name__ == "__main__":
    main()
