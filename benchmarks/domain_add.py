"""domain add with a certificate from Pebble: time from enqueue to a verified HTTPS 200. Prints its figures.

One provisioned podman node, a control plane of its own (temporary PRESSLUFT_HOME), Pebble and its DNS
on loopback (tests/rig/pebble.py). Per sample: `pressluft domain add` (enqueue) -> `pressluft worker
--once` (DNS check, ACME order, nginx) -> the first HTTPS GET of the canonical name whose chain verifies
against Pebble's root and whose certificate lists the new name, answering 200. Sample 1 is the first
issuance, the others add one alias each (a re-issue); then the same command again with nothing to order
(the job's fixed cost: DNS check, server block, certificate read), for the ratio measured in the same run.

    .venv/bin/python -m benchmarks.domain_add [--samples 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import pebble, provisioned  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

NAME = "bench.pressluft.test"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def https_ok(node, root: str, want: str, deadline: float) -> None:
    """Poll until GET https://NAME/ verifies against Pebble's root, lists `want` and answers 200."""
    ctx = ssl.create_default_context(cadata=root)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", node.https_port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname=NAME) as s:
                names = {v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS"}
                s.sendall(f"GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
                status = s.recv(64).split(b" ")[1]
            if want in names and status == b"200":
                return
        except (OSError, ssl.SSLError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no verified HTTPS 200 listing {want}")
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ.update(PRESSLUFT_HOME=str(home), PRESSLUFT_DB=f"sqlite:///{home / 'cp.db'}")
        os.environ.pop("PRESSLUFT_SECRET_KEY", None)
        from tests.rig.control_plane import add_node, js, run, work

        node = provisioned.start(home)
        acme = pebble.start(home, node.http_port)
        try:
            os.environ.update(PRESSLUFT_ACME_DIRECTORY=acme.directory, PRESSLUFT_ACME_VALIDATE_CERTS="false",
                              PRESSLUFT_DNS_RESOLVER=acme.resolver)
            run("db", "upgrade")
            add_node(node)
            js("site", "create", "bench", "--node", node.name, "--wordpress", str(wordpress_archive()))
            work()
            root = acme.root_pem()
            print(f"load before: {load()}")
            aliases, times = [], []
            for i in range(args.samples):
                new = NAME if i == 0 else f"a{i}.pressluft.test"
                acme.set_a(new, "127.0.0.1")
                aliases += [new] if i else []
                t0 = time.monotonic()
                js("domain", "add", "bench", NAME, *[x for a in aliases for x in ("--redirect-from", a)])
                work()
                https_ok(node, root, new, time.monotonic() + 60)
                times.append(time.monotonic() - t0)
                kind = "first issuance" if i == 0 else f"re-issue with {len(aliases) + 1} names"
                took = times[-1]
                print(f"sample {i + 1} ({kind}): {took:.1f} s enqueue -> verified HTTPS 200 (load {load()})")
            t0 = time.monotonic()
            js("domain", "add", "bench", NAME, *[x for a in aliases for x in ("--redirect-from", a)])
            work()
            https_ok(node, root, NAME, time.monotonic() + 60)
            noop = time.monotonic() - t0
            med = statistics.median(times)
            print(f"nothing to order (same names again): {noop:.1f} s (load {load()})")
            print(f"median with an order: {med:.1f} s; ratio to the job's fixed cost: {med / noop:.2f}")
            print(f"load after: {load()}")
        finally:
            acme.stop()
            rig.stop_nodes([node])


if __name__ == "__main__":
    main()
