"""site move of a site with --size-mb of uploads between two nodes, through the control plane, vs the floor
of rsync + mysqldump | mysql between the same two nodes, and what a client polling the site through its
floating IP every --interval s saw during the move (issue 19).

Two nodes from the provisioned image (podman, NET_ADMIN for the floating IP on their interface), a control
plane in a temporary directory (CLI and `worker --once` in-process, as the integration tests drive it),
moto's S3 as the restic repository, both nodes servers of an account at the fake Hetzner API
(tests/rig/hcloud_api.py, which routes the floating IP's connections to the server it is assigned to).
  site    - a WordPress site on a, --size-mb of uploads (1 MiB files of random bytes: incompressible, as
            photos are), `site ip` (its floating IP, routed to a);
  floor   - from a to b over SSH: `rsync -a` of the uploads tree, then `mysqldump --single-transaction |
            ssh b mysql` of the site's database (what any move costs at least, with nothing checked);
  move    - `site move SITE --to b` run by the worker: wall time, and its phases from the job's events
            (source read-only + final backup to restic, rebuild on b + health check, floating IP switch);
  client  - two clients through the floating IP, from just before the move is queued until it ended, each
            a GET every --interval s (or when the previous answered): the home page (PHP) and a static
            file of core (nginx alone); requests, failures (any non-200 or connection error), longest
            run of failures. Target: 0 failures.
Prints the figures, the ratio move/floor and the load average before and during.

    .venv/bin/python -m benchmarks.site_move [--size-mb 1024] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SITE, USER = "bench", "bench_production"
ENV_ROOT = f"/var/www/sites/{SITE}/production"
BUCKET = "pressluft-bench"
# A static file of WordPress core that nginx serves without PHP: under load a page takes ~1 s, this one
# keeps the 100 ms cadence, so a switch's gap would show.
STATIC = "/wp-includes/images/blank.gif"


class Poller(threading.Thread):
    """GET the site through its floating IP every `interval` s; records (monotonic time, status or 0)."""

    def __init__(self, port: int, interval: float, path: str = "/"):
        super().__init__(daemon=True)
        self.port, self.interval, self.path = port, interval, path
        self.results: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.monotonic()
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}{self.path}",
                                         headers={"Host": f"{SITE}.localhost"})
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    resp.read()
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError):
                status = 0
            self.results.append((t, status))
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def summary(self) -> tuple[int, int, int]:
        failed = [s != 200 for _t, s in self.results]
        longest = run = 0
        for f in failed:
            run = run + 1 if f else 0
            longest = max(longest, run)
        return len(failed), sum(failed), longest


def phases(job_id: int, source: str, target: str) -> dict[str, float]:
    """Seconds per phase of the site_move job, from its task events (their time is when a task ended)."""
    from sqlalchemy import select

    from pressluft_lib.storage import db
    from pressluft_lib.storage.models import Job, JobEvent

    sf = db.session_factory(os.environ["PRESSLUFT_DB"])
    try:
        with sf() as s:
            job = s.get(Job, job_id)
            events = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)).all()
            marks = [(e.created_at, (e.data or {}).get("host"), (e.data or {}).get("task")) for e in events]
            start, end = job.started_at, job.finished_at
    finally:
        sf.kw["bind"].dispose()
    source_end = max(t for t, host, _task in marks if host == source)
    switch = [t for t, host, task in marks
              if host == target and task == "Route the floating IP to the target's server"]
    rebuild_end = max(t for t, host, task in marks if host == target and (not switch or t < switch[0]))
    out = {
        "source read-only + final backup": (source_end - start).total_seconds(),
        "rebuild on the target + health check": (rebuild_end - source_end).total_seconds(),
    }
    if switch:
        out["floating IP switch (interface + API)"] = (switch[0] - rebuild_end).total_seconds()
        out["rest (bookkeeping)"] = (end - switch[0]).total_seconds()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pressluft-bench-move-"))
    os.environ["PRESSLUFT_HOME"] = str(tmp / "cp")
    os.environ["PRESSLUFT_DB"] = f"sqlite:///{tmp / 'cp' / 'pressluft.db'}"
    os.environ.pop("PRESSLUFT_SECRET_KEY", None)
    (tmp / "cp").mkdir()

    from tests.rig import nodes as rig
    from tests.rig import provisioned, s3
    from tests.rig.control_plane import add_node, js, link_to_provider, run, work
    from tests.rig.hcloud_api import FakeHcloud
    from tests.rig.wordpress import wordpress_archive

    run("db", "upgrade")
    load_before = os.getloadavg()
    print(f"load before {load_before[0]:.2f}/{load_before[1]:.2f} (1/5 min), {os.cpu_count()} CPUs",
          flush=True)
    server = s3.start(tmp)
    fake = FakeHcloud().__enter__()
    nodes = []
    try:
        a = provisioned.start(tmp, caps=("NET_ADMIN",))
        nodes.append(a)
        b = provisioned.start(tmp, caps=("NET_ADMIN",))
        nodes.append(b)
        server.create_bucket(BUCKET)
        js("provider", "add", "hetzner", "hz", "--admin-cidr", "127.0.0.0/8", "--endpoint", fake.endpoint,
           input=fake.token + "\n")
        for node in (a, b):
            add_node(node)
            link_to_provider(node.name, "hz", fake.add_server(node.name, ("127.0.0.1", node.http_port))["id"])
        js("backup", "repo", "set", "--url", server.node_repository(BUCKET, "move"), "--password-stdin",
           "--s3-access-key-id", server.access_key_id, "--s3-secret-access-key-stdin",
           input=f"bench-restic-Pw-0c1d\n{server.secret_access_key}\n")
        js("site", "create", SITE, "--node", a.name, "--wordpress", str(wordpress_archive()))
        work()
        uploads = f"{ENV_ROOT}/shared/uploads/bench"
        a.sh(f"runuser -u {USER} -- sh -c 'mkdir -p {uploads} && cd {uploads} && "
             f"for i in $(seq {args.size_mb}); do head -c 1048576 /dev/urandom > img$i.jpg; done'")
        js("site", "ip", SITE)
        work()
        print(f"site {SITE} on {a.name}: {args.size_mb} MiB of uploads, floating IP "
              f"{js('site', 'show', SITE)['floating_ip']['address']}", flush=True)

        # Floor: a pushes to b over SSH (b's sshd at the host's loopback, 10.0.2.2 from inside a).
        a.sh("rm -f /root/.ssh/bench && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/bench")
        b.exec("sh", "-c", "mkdir -p /root/.ssh && cat >> /root/.ssh/authorized_keys",
               input=a.exec("cat", "/root/.ssh/bench.pub").stdout)
        ssh = (f"ssh -p {b.ssh_port} -i /root/.ssh/bench -o StrictHostKeyChecking=no "
               "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        b.sh("mysql -e 'DROP DATABASE IF EXISTS floor; CREATE DATABASE floor' && rm -rf /root/floor-uploads")
        t0 = time.monotonic()
        a.sh(f"rsync -a -e '{ssh}' {ENV_ROOT}/shared/uploads/ root@10.0.2.2:/root/floor-uploads/")
        t_rsync = time.monotonic() - t0
        a.sh(f"mysqldump --single-transaction {USER} | {ssh} root@10.0.2.2 mysql floor")
        floor = time.monotonic() - t0
        load_floor = os.getloadavg()
        b.sh("rm -rf /root/floor-uploads && mysql -e 'DROP DATABASE floor'")
        print(f"floor: {floor:.1f} s (rsync {t_rsync:.1f} s, mysqldump | mysql {floor - t_rsync:.1f} s), "
              f"load {load_floor[0]:.2f}", flush=True)

        port = fake.floating_ip_port(f"{SITE}-ip")
        pollers = {path: Poller(port, args.interval, path) for path in ("/", STATIC)}
        for poller in pollers.values():
            poller.start()
        time.sleep(1)  # a few requests before the move starts
        t0 = time.monotonic()
        moved = js("site", "move", SITE, "--to", b.name)
        work()
        wall = time.monotonic() - t0
        load_during = os.getloadavg()
        time.sleep(1)
        for poller in pollers.values():
            poller.stop.set()
            poller.join()
        assert js("site", "show", SITE)["node"] == b.name
        print(f"site move: {wall:.1f} s wall (queue to end of the worker pass)", flush=True)
        for name, seconds in phases(moved["job_id"], a.name, b.name).items():
            print(f"  {name}: {seconds:.1f} s")
        print(f"ratio move / floor = {wall / floor:.2f}")
        for path, poller in pollers.items():
            total, failed, longest = poller.summary()
            print(f"client GET {path} through the floating IP, every {args.interval * 1000:.0f} ms or "
                  f"when the previous answered: {total} requests, {failed} failed, "
                  f"longest failure run {longest} (target 0 failed)")
        print(f"load average before {load_before[0]:.2f}/{load_before[1]:.2f}, after the floor "
              f"{load_floor[0]:.2f}, after the move {load_during[0]:.2f}/{load_during[1]:.2f} (1/5 min)")
    finally:
        rig.stop_nodes(nodes)
        server.stop()
        fake.__exit__(None, None, None)


if __name__ == "__main__":
    main()
