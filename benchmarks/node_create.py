"""node create to first site serving, through the control plane against the fake Hetzner API, and where
the time goes (issue 19).

A control plane in a temporary directory (CLI and `worker --once` in-process, as the integration tests
drive it), a provider account at the fake API (tests/rig/hcloud_api.py) whose servers are podman nodes
booted from the base image (--provisioned: from the provisioned image, so node_provision only converges).
Measured from `node create` to the first 200 of the new site through the node's nginx:
  node_create    - the job: SSH key, firewall, private network, primary IP, server (its boot: the podman node
                   starting, shown apart), protection, wait for SSH;
  node_provision - the job its after hook queues (the stack, without hardening: no firewall in podman);
  site_create    - `site create` of a WordPress site on the node;
  first request  - from site_create's end to the first 200;
  queue          - the rest (between jobs: the CLI, the worker's claims, the after hooks).
Prints the phases, the total and the load average before and during.

    .venv/bin/python -m benchmarks.node_create [--provisioned]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SITE = "bench"


def job_seconds(job_id: int) -> tuple[float, object]:
    """(run time of the job from its claim to its end, its end) from the control plane's database."""
    from pressluft_lib.storage import db
    from pressluft_lib.storage.models import Job

    sf = db.session_factory(os.environ["PRESSLUFT_DB"])
    try:
        with sf() as s:
            job = s.get(Job, job_id)
            return (job.finished_at - job.started_at).total_seconds(), job.finished_at
    finally:
        sf.kw["bind"].dispose()


def first_get(node, host: str, timeout: float = 60) -> int:
    """Status of the first answer of the node's nginx (published on the server's address) for `host`."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        req = urllib.request.Request(f"http://{node.host}:{node.http_port}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                return 0
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--provisioned", action="store_true",
                    help="boot servers from the provisioned image (node_provision converges only)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-node-"))
    os.environ["PRESSLUFT_HOME"] = str(tmp / "cp")
    os.environ["PRESSLUFT_DB"] = f"sqlite:///{tmp / 'cp' / 'pressluft.db'}"
    os.environ.pop("PRESSLUFT_SECRET_KEY", None)
    (tmp / "cp").mkdir()

    from tests.rig import nodes as rig
    from tests.rig import provisioned, wpcli
    from tests.rig.control_plane import js, run, work
    from tests.rig.hcloud_api import FakeHcloud, serve_podman_nodes
    from tests.rig.wordpress import wordpress_archive

    run("db", "upgrade")
    if args.provisioned:
        provisioned.image()  # built before the clock starts, as a real image is
    phar, sha = wpcli.checked()
    archive = wordpress_archive()
    load_before = os.getloadavg()
    print(f"load before {load_before[0]:.2f}/{load_before[1]:.2f} (1/5 min), {os.cpu_count()} CPUs",
          flush=True)
    with FakeHcloud() as fake:
        (tmp / "servers").mkdir()
        booted = serve_podman_nodes(fake, tmp / "servers", provisioned=args.provisioned)
        boot: list[float] = []
        create = fake.on_server_create

        def timed_create(server: dict, keys: list[str]) -> None:
            t = time.monotonic()
            create(server, keys)
            boot.append(time.monotonic() - t)

        fake.on_server_create = timed_create
        js("provider", "add", "hetzner", "hz", "--admin-cidr", "127.0.0.0/8", "--admin-cidr", "10.0.2.2/32",
           "--endpoint", fake.endpoint, input=fake.token + "\n")
        try:
            t0 = time.monotonic()
            made = js("node", "create", "web1", "--provider", "hz", "--type", "cx22", "--location", "fsn1",
                      "--network", "pressluft", "--no-hardening", "--wpcli-src", str(phar),
                      "--wpcli-sha512", sha)
            done = work()
            assert [j["type"] for j in done] == ["node_create", "node_provision"], done
            site = js("site", "create", SITE, "--node", "web1", "--wordpress", str(archive))
            work()
            status = first_get(booted["web1"], f"{SITE}.localhost")
            total = time.monotonic() - t0
            load_during = os.getloadavg()
            create_s, _ = job_seconds(made["job_id"])
            provision_s, _ = job_seconds(done[1]["id"])
            site_s, _ = job_seconds(site["job_id"])
            print(f"node create -> first site serving: {total:.1f} s "
                  f"({'provisioned' if args.provisioned else 'base'} image)")
            print(f"  node_create: {create_s:.1f} s (of it the server's boot, the podman node starting: "
                  f"{sum(boot):.1f} s)")
            print(f"  node_provision: {provision_s:.1f} s")
            print(f"  site_create: {site_s:.1f} s")
            print(f"  queue, CLI and first request: {total - create_s - provision_s - site_s:.1f} s")
            print(f"first request: HTTP {status}")
            print(f"load average before {load_before[0]:.2f}/{load_before[1]:.2f}, after "
                  f"{load_during[0]:.2f}/{load_during[1]:.2f} (1/5 min)")
        finally:
            rig.stop_nodes(list(booted.values()))


if __name__ == "__main__":
    main()
