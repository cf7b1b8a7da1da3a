"""`pressluft settings show|set|unset` on a real SQLite control plane: values checked before they are
stored, the preview domain env create uses, and the DNS-01 variables (and token) a domain job gets."""

from __future__ import annotations

import json

import pytest

from pressluft_lib.execution.runner import dns_token, job_vars
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job
from tests.rig.hcloud_api import FakeHcloud
from tests.unit.cli.test_cli import snapshot
from tests.unit.cli.test_cli_backups import finish_next, js, run, sites  # noqa: F401  (fixture)


def _settings() -> dict:
    return {r["name"]: r["value"] for r in js("settings", "show")}


def _vars(url: str, job_id: int) -> tuple[dict, dict]:
    with db.session_factory(url)() as s:
        extravars = job_vars(s, s.get(Job, job_id))[0]
        return extravars, dns_token(s, url, extravars)


@pytest.fixture
def fake():
    with FakeHcloud() as f:
        yield f


def test_unset_keeps_the_localhost_preview_host_and_http01(sites):  # noqa: F811
    assert _settings() == {"preview_domain": None, "dns_provider": None, "dns_zone": None}
    made = js("env", "create", "shop/staging")
    assert made["domains"] == ["staging.shop.localhost"]


@pytest.mark.parametrize(("name", "value"), [
    ("preview_domain", "*.preview.example"), ("preview_domain", "bad name.example"),
    ("preview_domain", "example"), ("preview_domain", "a" * 250 + ".example"),
    ("dns_provider", "Bad_Name"), ("dns_provider", "nosuch"), ("dns_zone", "x/y"),
])
def test_bad_values_exit_2_and_change_nothing(sites, name, value):  # noqa: F811
    before = snapshot(sites)["settings"]
    res = run("settings", "set", name, value, "--json", ok=False)
    assert res.exit_code == (3 if value == "nosuch" else 2), res.output
    assert json.loads(res.stdout)["error"]["code"] in ("invalid_input", "not_found")
    assert snapshot(sites)["settings"] == before == []
    assert run("settings", "set", "nosuch", "x", ok=False).exit_code == 2


def test_zone_must_hold_the_preview_domain(sites):  # noqa: F811
    js("settings", "set", "preview_domain", "Preview.Example.org.")
    assert _settings()["preview_domain"] == "preview.example.org"  # normalised like every domain
    assert run("settings", "set", "dns_zone", "other.example", ok=False).exit_code == 2
    js("settings", "set", "dns_zone", "example.org")
    assert run("settings", "set", "preview_domain", "shop.other.example", ok=False).exit_code == 2
    js("settings", "unset", "dns_zone")
    assert _settings()["dns_zone"] is None


def test_preview_domain_and_dns_provider_give_a_wildcard_over_dns01(sites, fake):  # noqa: F811
    run("provider", "add", "hetzner", "hz", "--admin-cidr", "203.0.113.7/32", "--endpoint", fake.endpoint,
        input=fake.token + "\n")
    js("settings", "set", "preview_domain", "preview.example")
    made = js("env", "create", "shop/staging")
    assert made["domains"] == ["staging.shop.preview.example"]
    finish_next(sites)
    # Without a DNS provider: HTTP-01 for the name, as before the settings existed.
    job = js("domain", "add", "shop/staging", "staging.shop.preview.example", "--force")
    extravars, token = _vars(sites, job["job_id"])
    assert "pressluft_domain_dns01" not in extravars and token == {}
    finish_next(sites, state="failed")
    js("settings", "set", "dns_provider", "hz")
    job = js("domain", "renew", "shop/staging")
    extravars, token = _vars(sites, job["job_id"])
    assert extravars["pressluft_domain_dns01"] == {
        "provider": "hetzner", "zone": "preview.example", "api_endpoint": fake.endpoint,
        "wildcard": "*.shop.preview.example", "account": "hz"}
    assert token == {"pressluft_dns_api_token": fake.token}  # a secret var (0600 file), not an extravar
    assert fake.token not in json.dumps(extravars)
    # The wildcard covers the name: the after hook records it issued.
    finish_next(sites, artifacts={"pressluft_domain_cert": {"names": ["*.shop.preview.example"],
                                                            "not_after": "20370101000000Z"}})
    row = next(d for d in js("domain", "list", "shop/staging"))
    assert (row["name"], row["tls_state"]) == ("staging.shop.preview.example", "issued")
    # A name outside the preview domain on the same environment: HTTP-01 for all of them.
    job = js("domain", "add", "shop/staging", "staging.shop.preview.example", "--redirect-from",
             "stage.example.com", "--force")
    assert "pressluft_domain_dns01" not in _vars(sites, job["job_id"])[0]


def test_other_jobs_never_get_the_dns_token(sites, fake):  # noqa: F811
    run("provider", "add", "hetzner", "hz", "--admin-cidr", "203.0.113.7/32", "--endpoint", fake.endpoint,
        input=fake.token + "\n")
    js("settings", "set", "preview_domain", "preview.example")
    js("settings", "set", "dns_provider", "hz")
    made = js("env", "create", "shop/staging")
    extravars, token = _vars(sites, made["job_id"])
    assert "pressluft_domain_dns01" not in extravars and token == {}
    # The account answering DNS-01 is not removed behind the setting's back.
    assert run("provider", "remove", "hz", ok=False).exit_code == 4
    js("settings", "unset", "dns_provider")
    js("provider", "remove", "hz")
