"""pressluft.wordpress.site_probe: through a real HTTP server (main() in process) and its FastCGI client
against a real PHP-FPM master started in the test's temporary directory.

The whole probe through nginx and the environment's pool runs on a node in tests/integration/test_deploy.py
(pre- and post-switch checks); here the verdicts, the error log offset and the FastCGI exchange.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import site_probe

from tests.rig.ansible import run_module

PAGES = {"/": (200, b"<html>shop home</html>"), "/broken": (500, b"oops"), "/plain": (200, b"no marker here")}


class Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_GET(self):
        Handler.seen.append((self.path, self.headers.get("Host")))
        status, body = PAGES.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Handler.seen = []
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def probe(capsys, tmp_path, port, **args):
    return run_module(site_probe, capsys, tmp_path, {
        "site": "shop", "host": "shop.example", "port": port, "error_log": str(tmp_path / "php-error.log"),
        **args})


def test_healthy_through_http_with_the_host_header(capsys, tmp_path, web):
    out = probe(capsys, tmp_path, web, urls=["/"], marker="shop home")
    assert out["healthy"] is True and out["reason"] == "" and out["changed"] is False
    assert out["checks"] == [{"url": "/", "status": 200, "bytes": 22, "ok": True, "reason": ""}]
    assert Handler.seen == [("/", "shop.example")]
    assert out["log_size"] == 0 and out["fatals"] == []


@pytest.mark.parametrize(("urls", "marker", "reason"), [
    (["/", "/broken"], None, "/broken: HTTP 500"),
    (["/missing"], None, "/missing: HTTP 404"),
    (["/plain"], "shop home", "/plain: marker 'shop home' not in the body"),
])
def test_unhealthy_answers_fail_and_say_why(capsys, tmp_path, web, urls, marker, reason):
    extra = {"marker": marker} if marker else {}
    out = probe(capsys, tmp_path, web, urls=urls, **extra)
    assert out.get("failed") is True and out["healthy"] is False and out["reason"] == reason, out
    assert out["msg"] == "unhealthy: " + reason
    report = probe(capsys, tmp_path, web, urls=urls, fail_unhealthy=False, **extra)
    assert not report.get("failed") and report["healthy"] is False and report["reason"] == reason


def test_no_answer_is_unhealthy(capsys, tmp_path):
    with socket_closed_port() as port:
        out = probe(capsys, tmp_path, port, timeout=2, fail_unhealthy=False)
    assert out["healthy"] is False and out["reason"].startswith("/: no answer"), out


def test_only_fatals_after_the_offset_count(capsys, tmp_path, web):
    log = tmp_path / "php-error.log"
    log.write_text("[01-Jan-2026] PHP Fatal error: old one\n")
    offset = log.stat().st_size
    before = probe(capsys, tmp_path, web, log_offset=offset)
    assert before["healthy"] is True and before["log_size"] == offset
    with log.open("a") as f:
        f.write("[02-Jan-2026] PHP Warning: harmless\n[02-Jan-2026] PHP Parse error: syntax error in x.php\n")
    after = probe(capsys, tmp_path, web, log_offset=offset, fail_unhealthy=False)
    assert after["healthy"] is False
    assert after["fatals"] == ["[02-Jan-2026] PHP Parse error: syntax error in x.php"]
    assert after["reason"].startswith("new PHP fatal in the error log:")
    # A rotated (now shorter) log counts from its start; without an offset the log is not read.
    log.write_text("PHP Fatal error: after rotation\n")
    assert probe(capsys, tmp_path, web, log_offset=offset, fail_unhealthy=False)["fatals"] == [
        "PHP Fatal error: after rotation"]
    assert probe(capsys, tmp_path, web)["healthy"] is True


@pytest.mark.parametrize(("args", "message"), [
    ({"urls": ["http://elsewhere/"]}, "invalid health URL"),
    ({"urls": ["/a b"]}, "invalid health URL"),
    ({"urls": []}, "urls must not be empty"),
    ({"log_offset": -1}, "log_offset must not be negative"),
    ({"site": "Shop"}, "invalid site name"),
    ({"via": "fastcgi", "root": "/etc"}, "is not a release directory of shop/production"),
])
def test_bad_input_is_refused_before_any_request(capsys, tmp_path, web, args, message):
    out = probe(capsys, tmp_path, web, **args)
    assert out.get("failed") is True and message in out["msg"], out
    assert Handler.seen == []


@contextmanager
def socket_closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    yield port


PHP_FPM = shutil.which("php-fpm8.2") or shutil.which("php-fpm")


@pytest.fixture
def fpm(tmp_path):
    if not PHP_FPM:
        pytest.skip("needs PHP-FPM (Debian package php8.2-fpm)")
    root = tmp_path / "release"
    root.mkdir()
    (root / "index.php").write_text(
        "<?php echo 'index ', $_SERVER['SCRIPT_FILENAME'], ' ', $_SERVER['HTTP_HOST'];\n")
    (root / "status.php").write_text("<?php http_response_code(503); echo 'down';\n")
    sock = tmp_path / "fpm.sock"
    conf = tmp_path / "fpm.conf"
    conf.write_text(f"""[global]
pid = {tmp_path}/fpm.pid
error_log = {tmp_path}/fpm.log
daemonize = no
[probe]
listen = {sock}
pm = static
pm.max_children = 1
""")
    proc = subprocess.Popen([PHP_FPM, "--nodaemonize", "--allow-to-run-as-root", "--fpm-config", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail(f"php-fpm did not create its socket: {(tmp_path / 'fpm.log').read_text()[-500:]}")
        time.sleep(0.02)
    yield str(sock), str(root)
    proc.terminate()
    proc.wait(timeout=30)


def test_fastcgi_request_runs_the_release_as_nginx_would(fpm):
    sock, root = fpm
    status, body = site_probe.fastcgi_get(sock, root, "shop.example", "/shop/?p=1", 10)
    assert (status, body) == (200, f"index {root}/index.php shop.example".encode())
    status, body = site_probe.fastcgi_get(sock, root, "shop.example", "/status.php", 10)
    assert (status, body) == (503, b"down")
