"""`site create --wordpress VERSION|FILE|URL` and its default, settled when the job is queued.

wordpress.org is unreachable here: the API and the published checksums are served by a real HTTP server
on 127.0.0.1 with wordpress.org's layout, and "no network" is a port nobody listens on.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import socket
import tarfile
import threading

import pytest

from pressluft_lib.services import wordpress as wordpress_source
from tests.rig.wordpress import skeleton_archive
from tests.unit.cli.test_cli import js, run, snapshot


@pytest.fixture
def no_default(monkeypatch):
    monkeypatch.delenv("PRESSLUFT_WORDPRESS")


@pytest.fixture
def wordpress_org(tmp_path, monkeypatch, wordpress_file):
    """An HTTP server with the version-check API (latest: 6.1.9), wordpress-6.1.9.tar.gz and its .sha1."""
    root = tmp_path / "wordpress.org"
    api = root / "core" / "version-check" / "1.7"
    api.mkdir(parents=True)
    (api / "index.html").write_text(json.dumps({"offers": [{"response": "upgrade", "current": "6.1.9"}]}))
    archive = root / "wordpress-6.1.9.tar.gz"
    archive.write_bytes(wordpress_file.read_bytes())
    sha1 = hashlib.sha1(archive.read_bytes()).hexdigest()
    (root / "wordpress-6.1.9.tar.gz.sha1").write_text(sha1)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(wordpress_source, "LATEST_API", f"{base}/core/version-check/1.7/")
    monkeypatch.setattr(wordpress_source, "RELEASE_URL", base + "/wordpress-{version}.tar.gz")
    yield base, sha1
    server.shutdown()
    server.server_close()


@pytest.fixture
def offline(monkeypatch):
    """wordpress.org unreachable: its addresses point at a port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(wordpress_source, "LATEST_API", f"http://127.0.0.1:{port}/core/version-check/1.7/")
    monkeypatch.setattr(wordpress_source, "RELEASE_URL", f"http://127.0.0.1:{port}/wordpress-{{version}}.tar.gz")


def payload(job_id: int) -> dict:
    return js("jobs", "show", str(job_id))["payload"]


def refused(url: str, *args: str) -> str:
    """Run `site create` expecting exit 2 with no site and no job: returns the error message."""
    before = snapshot(url)
    before.pop("audit_log")
    result = run("site", "create", "plain9", "--node", "web1", *args, "--json", ok=False)
    assert result.exit_code == 2, result.output
    after = snapshot(url)
    after.pop("audit_log")
    assert after == before, "a refused site create leaves no site, job or secret behind"
    return json.loads(result.stdout)["error"]["message"]


def test_default_is_the_latest_release_with_its_published_sha1(active_node, no_default, wordpress_org):
    base, sha1 = wordpress_org
    created = js("site", "create", "plain1", "--node", "web1")
    assert created["wordpress"] == "6.1.9"
    assert payload(created["job_id"]) == {
        "pressluft_wordpress_url": f"{base}/wordpress-6.1.9.tar.gz",
        "pressluft_wordpress_checksum": f"sha1:{sha1}",
        "pressluft_wordpress_version": "6.1.9",
    }
    assert "WordPress 6.1.9" in run("site", "create", "plain2", "--node", "web1").stdout


def test_a_version_or_url_gets_its_published_sha1(active_node, no_default, wordpress_org):
    base, sha1 = wordpress_org
    by_version = js("site", "create", "plain1", "--node", "web1", "--wordpress", "6.1.9")
    url = f"{base}/wordpress-6.1.9.tar.gz"
    by_url = js("site", "create", "plain2", "--node", "web1", "--wordpress", url)
    for job in (by_version, by_url):
        assert payload(job["job_id"])["pressluft_wordpress_checksum"] == f"sha1:{sha1}"
        assert payload(job["job_id"])["pressluft_wordpress_url"] == url
    assert "cannot fetch the published checksum" in refused(active_node, "--wordpress", "6.0.1")


def test_offline_the_default_fails_at_once_naming_wordpress_file(active_node, no_default, offline):
    message = refused(active_node)
    assert "cannot fetch the latest WordPress release" in message and "--wordpress FILE" in message
    assert "--wordpress FILE" in refused(active_node, "--wordpress", "6.1.9")


def test_a_file_is_checked_and_made_absolute(active_node, no_default, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    skeleton_archive(tmp_path / "wp.tar.gz", version="6.1.9")
    created = js("site", "create", "plain1", "--node", "web1", "--wordpress", "wp.tar.gz")
    assert payload(created["job_id"]) == {"pressluft_wordpress_src": str(tmp_path / "wp.tar.gz"),
                                          "pressluft_wordpress_version": "6.1.9"}
    (tmp_path / "notes.txt").write_text("not an archive\n")
    (tmp_path / "empty.tar.gz").write_bytes(b"")
    assert "no such file" in refused(active_node, "--wordpress", "missing.tar.gz")
    assert "not a readable WordPress archive" in refused(active_node, "--wordpress", "notes.txt")
    assert "not a readable WordPress archive" in refused(active_node, "--wordpress", "empty.tar.gz")
    assert "no such file" in refused(active_node, "--wordpress", str(tmp_path))
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(tmp_path / "notes.txt", arcname="wordpress/readme.txt")
    assert "is not a WordPress core archive" in refused(active_node, "--wordpress", "other.tar.gz")


def test_bad_sources_and_wordpress_vars_are_refused(active_node, no_default):
    for bad in ("ftp://example.com/wordpress-6.1.9.tar.gz", "https://example.com/latest.tar.gz",
                "https://example.com/wordpress-6.1.9.tar.gz?x=1", ""):
        assert "--wordpress" in refused(active_node, "--wordpress", bad), bad
    assert "pressluft_wordpress_src" in refused(active_node, "--var", "pressluft_wordpress_src=/tmp/x.tar.gz")
