"""The node's default TLS server and an environment's HTTPS block with HSTS and the page cache, served by a
real nginx started on this host: its own prefix in a temporary directory, loopback ports picked free, run as
this test's child and stopped after it. PHP is a small FastCGI responder in a thread (a fresh random body
per request, so a cached answer shows). The same templates run on nodes (tests/integration/test_domains.py);
here no node is needed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

import jinja2
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

# Imported first: it puts the collection on sys.path.
from tests.unit.roles.test_site_env_server_block import NAME, cert, render  # isort: skip
from ansible_collections.pressluft.wordpress.plugins.module_utils import _page_cache  # isort: skip

ROOT = Path(__file__).resolve().parents[3]


class FastCGI(socketserver.StreamRequestHandler):
    """One request per connection: read records up to the empty STDIN, answer 200 with a random body."""

    def handle(self):
        while True:
            head = self.rfile.read(8)
            if len(head) < 8:
                return
            _, kind, rid, length, padding = struct.unpack("!BBHHBx", head)
            self.rfile.read(length + padding)
            if kind == 5 and length == 0:  # the end of FCGI_STDIN
                break
        out = b"Status: 200 OK\r\nContent-Type: text/html\r\n\r\n" + secrets.token_hex(8).encode()
        for kind, body in ((6, out), (6, b""), (3, b"\0" * 8)):
            self.wfile.write(struct.pack("!BBHHBx", 1, kind, rid, len(body), 0) + body)


class UnixFastCGI(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def template(path: str, **variables) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / Path(path).parent)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True)
    return env.get_template(Path(path).name).render(ansible_managed="test", **variables)


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed on this host: run scripts/setup --tests")
    tmp = tmp_path_factory.mktemp("tls")
    http_port, tls_port = free_port(), free_port()
    cert(tmp)
    (tmp / "current").mkdir()
    (tmp / "current/stamp.php").write_text("<?php\n")
    fcgi = UnixFastCGI(str(tmp / "php.sock"), FastCGI)
    threading.Thread(target=fcgi.serve_forever, daemon=True).start()
    cache = {"name": "shop_production", "cache_zone": "pressluft_shop_production",
             "cache_dir": str(tmp / "cache")}
    (tmp / "cache.conf").write_text(_page_cache.render_switch(cache, True, "10m"))
    (tmp / "snippets").mkdir()
    (tmp / "snippets/pressluft-php.conf").write_text(
        template("roles/node_nginx/templates/pressluft-php.conf.j2", node_nginx_fastcgi_read_timeout=30))
    shutil.copy("/etc/nginx/fastcgi_params", tmp / "fastcgi_params")
    default = template("roles/node_nginx/templates/pressluft-default.conf.j2", node_nginx__ipv6=False)
    site = render(tmp, tls=True, redirects=[], hsts=True).replace("/var/log/nginx/", f"{tmp}/")
    ports = {"listen 80": f"listen 127.0.0.1:{http_port}", "listen 443": f"listen 127.0.0.1:{tls_port}"}
    for conf, name in ((default, "default.conf"), (site, "site.conf")):
        for old, new in ports.items():
            conf = conf.replace(old, new)
        (tmp / name).write_text(conf)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the 0700 temporary directory
    (tmp / "nginx.conf").write_text(
        f"{user}pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nworker_processes 1;\nevents {{}}\n"
        f"http {{\n access_log off;\n {_page_cache.render_zone(cache, '1m', '10m', '1h').splitlines()[1]}\n"
        f" include {tmp}/default.conf;\n include {tmp}/site.conf;\n}}\n")
    proc = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"nginx did not start: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.05)
    yield tls_port
    proc.terminate()
    proc.wait(timeout=30)
    fcgi.shutdown()


def handshake(port: int, server_name: str | None) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def get(port: int, path: str) -> dict[str, str]:
    """The status line's code, the headers (lower-case names) and the body of one HTTPS GET."""
    with handshake(port, NAME) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return {"status": lines[0].split()[1], "body": body, **headers}


@pytest.mark.parametrize("server_name", ["unknown.example.org", None])
def test_an_unknown_name_gets_no_certificate(nginx, server_name):
    with pytest.raises(ssl.SSLError, match=r"UNRECOGNIZED_NAME|unrecognized name"):
        handshake(nginx, server_name).close()


def test_a_known_name_gets_its_certificate(nginx):
    with handshake(nginx, NAME) as s:
        got = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
    assert got.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NAME


def test_hsts_is_sent_on_cached_answers_too(nginx):
    first = get(nginx, "/stamp.php")
    assert first["status"] == "200" and first["x-cache"] == "MISS", first
    deadline = time.monotonic() + 20
    while (hit := get(nginx, "/stamp.php"))["x-cache"] != "HIT":
        assert time.monotonic() < deadline, hit
        time.sleep(0.1)
    assert hit["body"] == first["body"]
    for answer in (first, hit):
        assert answer["strict-transport-security"] == "max-age=31536000", answer
