"""Pebble (Let's Encrypt's ACME test server) and its challenge test server as DNS, on loopback only.

One pair per test module: Pebble validates HTTP-01 on `http_port` (the node's published port 80) at the
address the challenge test server answers for a name, and the DNS check before an order asks that same
server (PRESSLUFT_DNS_RESOLVER). Every name resolves to nothing until the test adds an A record.
Debian package `pebble` (scripts/setup --tests installs it).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    """The certificate Pebble's own HTTPS listener presents (the ACME client does not verify it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = workdir / "pebble.pem", workdir / "pebble.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.args[0]} does not listen on port {port} after {timeout:.0f} s")


@dataclass
class Pebble:
    acme_port: int
    management_port: int
    dns_port: int
    challtest_port: int
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    def _dns(self, path: str, body: dict) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.challtest_port}/{path}",
                                     data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200, resp.status

    def set_a(self, host: str, *addresses: str) -> None:
        """The A records of `host` (none: remove them)."""
        self._dns("clear-a", {"host": host + "."})
        if addresses:
            self._dns("add-a", {"host": host + ".", "addresses": list(addresses)})

    def set_aaaa(self, host: str, *addresses: str) -> None:
        self._dns("clear-aaaa", {"host": host + "."})
        if addresses:
            self._dns("add-aaaa", {"host": host + ".", "addresses": list(addresses)})

    def set_txt(self, host: str, values: list[str]) -> None:
        """The TXT records of `host` (none: remove them); DNS-01 validation reads them."""
        self._dns("clear-txt", {"host": host + "."})
        for value in values:
            self._dns("set-txt", {"host": host + ".", "value": value})

    def root_pem(self) -> str:
        """Pebble's root CA (it makes a new one at each start)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def start(workdir: Path, http_port: int) -> Pebble:
    """Start the challenge test server (DNS only) and Pebble, validating HTTP-01 on `http_port`."""
    for binary in ("pebble", "pebble-challtestsrv"):
        if shutil.which(binary) is None:
            import pytest

            pytest.fail(f"{binary} is missing: run scripts/setup --tests (Debian package pebble)")
    p = Pebble(_free_port(), _free_port(), _free_port(), _free_port())
    cert, key = _self_signed(workdir)
    config = workdir / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{p.acme_port}",
        "managementListenAddress": f"127.0.0.1:{p.management_port}",
        "certificate": str(cert), "privateKey": str(key),
        "httpPort": http_port, "tlsPort": _free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))
    log = (workdir / "pebble.log").open("ab")
    # No default answers: a name resolves only after set_a/set_aaaa.
    p.procs.append(subprocess.Popen(
        ["pebble-challtestsrv", "-dns01", p.resolver, "-http01", "", "-https01", "", "-tlsalpn01", "",
         "-management", f"127.0.0.1:{p.challtest_port}", "-defaultIPv4", "", "-defaultIPv6", ""],
        stdout=log, stderr=subprocess.STDOUT))
    # No sleeps in validation, no refused nonces (the client would retry, but the tests' times should
    # not depend on chance); no reused authorizations, so each order validates again.
    env = {"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
           "PEBBLE_AUTHZREUSE": "0"}
    p.procs.append(subprocess.Popen(["pebble", "-config", str(config), "-dnsserver", p.resolver],
                                    stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        _wait_port(p.challtest_port, p.procs[0])
        _wait_port(p.acme_port, p.procs[1])
        _wait_port(p.management_port, p.procs[1])
    except Exception:
        p.stop()
        raise
    return p
