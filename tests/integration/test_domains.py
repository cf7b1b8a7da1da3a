"""Domains and certificates end to end: pressluft domain ... -> queue -> worker -> a real node's nginx,
certificates from Pebble (the ACME test server), DNS from its challenge test server.

In order, on one node: bad input is refused before anything is queued; an AAAA record pointing
elsewhere is a DNS mismatch (no order, the site untouched); a failed order (an alias without DNS,
forced past the check) leaves the site serving HTTP; the same command after fixing DNS issues a
certificate whose chain verifies against Pebble's root, HTTP redirects to HTTPS and the alias to the
canonical name (ACME challenges still answered first); adding a name re-issues; removing one
re-issues without it; a renewal the scheduler queues for an expiring certificate installs a new one.
Before those, DNS-01: with a preview domain and a DNS provider (the fake Hetzner API, whose TXT records
the challenge test server serves), production's preview host gets the site's wildcard certificate, its
TXT records removed afterwards; a DNS provider refusing the record fails the renewal with the API's
reason while the old certificate keeps serving; removing the name removes the certificate.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from datetime import timedelta

import pytest

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Domain, utcnow
from tests.rig import pebble
from tests.rig.control_plane import add_node, http_get, js, run, work
from tests.rig.hcloud_api import FakeHcloud
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE = "shop"
NAME, ALIAS, WWW = "shop.pressluft.test", "old.pressluft.test", "www.shop.pressluft.test"
TLS_DIR = f"/etc/pressluft/tls/{SITE}_production"


class Stack:
    def __init__(self, node, acme):
        self.node, self.acme = node, acme
        self.root = acme.root_pem()

    def https(self, host: str, path: str = "/", timeout: float = 20) -> tuple[int, dict, dict]:
        """GET over TLS with SNI `host`, verifying the chain against Pebble's root and the name:
        (status, headers, the peer certificate)."""
        ctx = ssl.create_default_context(cadata=self.root)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.node.https_port), timeout=10) as raw, \
                        ctx.wrap_socket(raw, server_hostname=host) as s:
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                    cert = s.getpeercert()
                break
            except (ConnectionError, ssl.SSLEOFError):  # nginx reloading
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, cert

    def raw_http(self, host: str, path: str = "/") -> tuple[int, dict]:
        """(status, headers) of one plain-HTTP request, redirects not followed."""
        with socket.create_connection(("127.0.0.1", self.node.http_port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        if not data:
            raise ConnectionError("closed without an answer")
        lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers

    def sans(self, cert: dict) -> list[str]:
        return sorted(v for k, v in cert["subjectAltName"] if k == "DNS")

    def rows(self) -> dict[str, dict]:
        return {d["name"]: d for d in js("domain", "list", SITE)}


@pytest.fixture(scope="module")
def stack(control_plane, provisioned_node, tmp_path_factory):
    acme = pebble.start(tmp_path_factory.mktemp("pebble"), provisioned_node.http_port)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PRESSLUFT_ACME_DIRECTORY", acme.directory)
            mp.setenv("PRESSLUFT_ACME_VALIDATE_CERTS", "false")  # Pebble's own listener, not the chain
            mp.setenv("PRESSLUFT_DNS_RESOLVER", acme.resolver)
            add_node(provisioned_node)
            archive = str(wordpress_archive())
            js("site", "create", SITE, "--node", provisioned_node.name, "--wordpress", archive)
            work()
            yield Stack(provisioned_node, acme)
    finally:
        acme.stop()


def test_bad_input_is_refused_before_anything_is_queued(stack):
    for args in (
        ("domain", "add", SITE, "bad name.test"),
        ("domain", "add", SITE, "*.pressluft.test"),
        ("domain", "add", SITE, NAME, "--redirect-from", "a..b"),
        ("domain", "add", SITE, "localhost"),
        ("domain", "add", SITE, NAME, "--www", "sometimes"),
        ("domain", "add", "Shop/production", NAME),
        ("domain", "remove", SITE, "-bad.test"),
    ):
        assert run(*args, ok=False).exit_code == 2, args
    assert js("jobs", "list") == [] or all(j["type"] == "site_create" for j in js("jobs", "list"))
    assert run("domain", "remove", SITE, "nothere.pressluft.test", ok=False).exit_code == 3


PREVIEW = "preview.pressluft.test"
PREVIEW_HOST = f"production.{SITE}.{PREVIEW}"  # the preview host of production
WILDCARD = f"*.{SITE}.{PREVIEW}"
CHALLENGE = f"_acme-challenge.{SITE}.{PREVIEW}"


@pytest.fixture(scope="module")
def dns(stack):
    """The fake Hetzner API with the preview zone; its TXT records served by Pebble's DNS server."""
    with FakeHcloud() as fake:
        fake.add_zone(PREVIEW)
        fake.txt_seen = {}

        def on_txt(fqdn: str, values: list[str]) -> None:
            fake.txt_seen.setdefault(fqdn, []).append(values)
            stack.acme.set_txt(fqdn, values)

        fake.on_txt = on_txt
        run("provider", "add", "hetzner", "hz", "--admin-cidr", "127.0.0.1/32", "--endpoint", fake.endpoint,
            input=fake.token + "\n")
        js("settings", "set", "preview_domain", PREVIEW)
        js("settings", "set", "dns_provider", "hz")
        yield fake


def test_a_preview_host_gets_the_site_wildcard_over_dns01(stack, dns):
    # (env create names a new environment <env>.<site>.<preview domain>: tests/unit/cli/test_cli_settings.py;
    # production's preview host here saves a clone, ~50 s.)
    stack.acme.set_a(PREVIEW_HOST, "127.0.0.1")
    job = js("domain", "add", SITE, PREVIEW_HOST)
    work()
    status, _headers, cert = stack.https(PREVIEW_HOST)  # the chain verifies against Pebble's root
    assert status == 200 and stack.sans(cert) == [WILDCARD]
    issued = {d["name"]: d["tls_state"] for d in js("domain", "list", SITE) if d["tls_state"]}
    assert issued == {PREVIEW_HOST: "issued"}
    # The record was set through the provider's API, then removed there (and so from DNS).
    assert dns.txt_seen[CHALLENGE][0] and dns.txt_seen[CHALLENGE][-1] == []
    assert dns.rrsets(PREVIEW) == {}
    assert ("POST", f"/zones/{PREVIEW}/rrsets") in dns.requests
    shown = run("jobs", "show", str(job["job_id"]), "--json").stdout
    assert dns.token not in shown and "Set or remove the TXT records" in shown


def test_a_dns_provider_failure_fails_the_order_and_keeps_the_certificate(stack, dns):
    before = stack.https(PREVIEW_HOST)[2]["serialNumber"]
    dns.fail_next("POST", f"/zones/{PREVIEW}/rrsets", 403, "forbidden", "insufficient permissions for zone")
    js("domain", "renew", SITE)
    job = work(expect="failed")[0]
    message = job["error_message"]
    assert "insufficient permissions for zone" in message and "its previous certificate" in message, message
    assert dns.token not in message
    assert stack.https(PREVIEW_HOST)[2]["serialNumber"] == before
    assert dns.rrsets(PREVIEW) == {}
    assert stack.rows()[PREVIEW_HOST]["tls_state"] == "failed"
    # Back to no certificate for the HTTP-01 tests that follow (the name goes, the certificate with it).
    js("domain", "remove", SITE, PREVIEW_HOST)
    work()
    assert stack.node.exec("test", "-e", TLS_DIR, check=False).returncode != 0
    js("settings", "unset", "dns_provider")


def test_an_aaaa_record_pointing_elsewhere_is_a_dns_mismatch(stack):
    stack.acme.set_a(NAME, "127.0.0.1")
    stack.acme.set_aaaa(NAME, "2001:db8::7")
    made = js("domain", "add", SITE, NAME)
    job = work(expect="failed")[0]
    assert job["id"] == made["job_id"]
    shown = js("jobs", "show", str(job["id"]))
    assert shown["error_code"] == "domain_dns_mismatch", shown["error_message"]
    assert "DOMAIN_DNS_MISMATCH" in shown["error_message"]
    assert f"{NAME} resolves to A 127.0.0.1, AAAA 2001:db8::7 (elsewhere)" in shown["error_message"]
    assert stack.rows()[NAME]["tls_state"] == "failed"
    assert stack.node.exec("test", "-e", TLS_DIR, check=False).returncode != 0
    assert http_get(stack.node, f"{SITE}.localhost")[0] == 200
    stack.acme.set_aaaa(NAME)


def test_a_failed_order_leaves_the_site_serving_http_and_a_rerun_succeeds(stack):
    # The alias has no DNS record: --force skips the check, Pebble's validation fails.
    js("domain", "add", SITE, NAME, "--redirect-from", ALIAS, "--force")
    job = work(expect="failed")[0]
    assert "keeps serving plain HTTP" in job["error_message"], job["error_message"]
    assert {stack.rows()[n]["tls_state"] for n in (NAME, ALIAS)} == {"failed"}
    status, body = http_get(stack.node, NAME)
    assert status == 200 and "<html" in body.lower()
    status, headers = stack.raw_http(ALIAS, "/x?y=1")
    assert (status, headers["location"]) == (301, f"http://{NAME}/x?y=1")
    assert stack.node.exec("nginx", "-t", check=False).returncode == 0

    stack.acme.set_a(ALIAS, "127.0.0.1")
    js("domain", "add", SITE, NAME, "--redirect-from", ALIAS)
    work()
    rows = stack.rows()
    assert rows[NAME]["role"] == "canonical" and rows[ALIAS]["role"] == "alias"
    assert {rows[n]["tls_state"] for n in (NAME, ALIAS)} == {"issued"}
    assert rows[NAME]["tls_expires_at"] > utcnow().isoformat()
    status, headers, cert = stack.https(NAME)  # the chain verifies against Pebble's root, or this raises
    assert status == 200 and stack.sans(cert) == sorted([NAME, ALIAS])
    assert "strict-transport-security" not in headers  # HSTS is opt-in
    status, headers = stack.raw_http(NAME, "/wp-login.php")
    assert (status, headers["location"]) == (301, f"https://{NAME}/wp-login.php")
    status, headers, _cert = stack.https(ALIAS, "/a?b=c")
    assert (status, headers["location"]) == (301, f"https://{NAME}/a?b=c")
    # ACME challenges are answered (here: not found) on every name before any redirect.
    for host in (NAME, ALIAS):
        assert stack.raw_http(host, "/.well-known/acme-challenge/nothing")[0] == 404
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(
            socket.create_connection(("127.0.0.1", stack.node.https_port)), server_hostname=NAME)
    assert stack.node.stat(f"{TLS_DIR}/live/privkey.pem") == ("root", "root", "600")


def test_adding_a_name_reissues_the_certificate(stack):
    before = stack.https(NAME)[2]["serialNumber"]
    stack.acme.set_a(WWW, "127.0.0.1")
    js("domain", "add", SITE, NAME, "--redirect-from", ALIAS, "--www", "redirect", "--hsts")
    work()
    status, headers, cert = stack.https(NAME)
    assert stack.sans(cert) == sorted([NAME, ALIAS, WWW]) and cert["serialNumber"] != before
    assert headers["strict-transport-security"] == "max-age=31536000"
    status, headers, _cert = stack.https(WWW)
    assert (status, headers["location"]) == (301, f"https://{NAME}/")
    assert len(stack.node.sh(f"ls {TLS_DIR}").split()) == 2  # live + the current serial only


def test_removing_a_name_reissues_without_it(stack):
    js("domain", "remove", SITE, WWW)
    work()
    assert WWW not in stack.rows()
    cert = stack.https(NAME)[2]
    assert stack.sans(cert) == sorted([NAME, ALIAS])
    with pytest.raises(ConnectionError):  # an unknown host: nginx closes the connection (444)
        stack.raw_http(WWW)
    assert run("domain", "remove", SITE, NAME, ok=False).exit_code == 2  # its alias still redirects to it


def test_the_scheduler_renews_an_expiring_certificate(stack):
    assert js("domain", "schedule")["enqueued"] == []
    before = stack.https(NAME)[2]["serialNumber"]
    sf = db.session_factory(os.environ["PRESSLUFT_DB"])
    try:
        with sf.begin() as s:
            for d in s.query(Domain).filter(Domain.name.in_([NAME, ALIAS])):
                d.tls_expires_at = utcnow() + timedelta(days=10)
    finally:
        sf.kw["bind"].dispose()
    queued = js("domain", "schedule")["enqueued"]
    assert [(q["site"], q["env"]) for q in queued] == [(SITE, "production")]
    assert {r["tls_state"] for r in stack.rows().values() if r["tls_state"]} == {"renewing"}
    assert [j["type"] for j in work()] == ["domain_renew"]
    cert = stack.https(NAME)[2]
    assert cert["serialNumber"] != before and stack.sans(cert) == sorted([NAME, ALIAS])
    rows = stack.rows()
    assert rows[NAME]["tls_state"] == "issued"
    assert rows[NAME]["tls_expires_at"] > (utcnow() + timedelta(days=30)).isoformat()
    assert js("domain", "schedule")["enqueued"] == []

