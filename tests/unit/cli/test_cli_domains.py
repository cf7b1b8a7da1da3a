"""`pressluft domain add|remove|list|renew|schedule` through Click's CliRunner on a real SQLite control
plane: the rows each call writes, what the runner hands the playbook, the after hook, refusals."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from pressluft_lib.execution.runner import job_vars
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Domain, Job, utcnow
from tests.unit.cli.test_cli_backups import finish_next, js, run, sites  # noqa: F401  (fixture)

NAME, ALIAS = "shop.example.com", "shop.example.net"
NOT_AFTER = (utcnow() + timedelta(days=90)).strftime("%Y%m%d%H%M%SZ")


def _vars(url: str, job_id: int) -> dict:
    with db.session_factory(url)() as s:
        return job_vars(s, s.get(Job, job_id))[0]


def _issue(url: str, names: list[str], not_after: str = NOT_AFTER) -> None:
    finish_next(url, artifacts={"pressluft_domain_cert": {"names": names, "not_after": not_after}})


def _rows() -> dict[str, dict]:
    return {d["name"]: d for d in js("domain", "list", "shop")}


def test_add_makes_the_canonical_name_and_aliases_and_the_runner_passes_them(sites):  # noqa: F811
    made = js("domain", "add", "shop", "Shop.Example.com.", "--redirect-from", ALIAS, "--www", "redirect")
    assert (made["canonical"], made["aliases"]) == (NAME, sorted([ALIAS, f"www.{NAME}"]))
    v = _vars(sites, made["job_id"])
    assert v["pressluft_domains"] == [NAME, "shop.localhost"]  # canonical first, site_create's name served
    assert v["pressluft_domain_redirects"] == [ALIAS, f"www.{NAME}"]
    assert v["pressluft_domain_tls"] == [NAME, ALIAS, f"www.{NAME}"]
    assert v["pressluft_domain_hsts"] is False and "pressluft_domain_force" not in v
    rows = _rows()
    assert {n: (r["role"], r["tls_state"]) for n, r in rows.items()} == {
        NAME: ("canonical", "pending"), ALIAS: ("alias", "pending"), f"www.{NAME}": ("alias", "pending"),
        "shop.localhost": ("serve", None),
    }
    _issue(sites, [NAME, ALIAS])  # the node's certificate lacks www: never claim it
    rows = _rows()
    assert rows[NAME]["tls_state"] == "issued" and rows[NAME]["tls_expires_at"].startswith(NOT_AFTER[:4])
    assert rows[f"www.{NAME}"]["tls_state"] == "failed" and rows["shop.localhost"]["tls_state"] is None


def test_idna_names_are_stored_as_a_labels(sites):  # noqa: F811
    made = js("domain", "add", "shop", "Bücher.example", "--force", "--hsts")
    assert made["canonical"] == "xn--bcher-kva.example"
    v = _vars(sites, made["job_id"])
    assert v["pressluft_domain_force"] is True and v["pressluft_domain_hsts"] is True


def test_a_second_canonical_name_and_a_taken_name_are_refused(sites):  # noqa: F811
    js("domain", "add", "shop", NAME)
    _issue(sites, [NAME])
    out = run("domain", "add", "shop", "other.example.com", ok=False)
    assert out.exit_code == 2 and "--redirect-from other.example.com" in out.stderr
    assert run("domain", "add", "blog", "blog.example.com", "--redirect-from", NAME, ok=False).exit_code == 4
    assert run("domain", "add", "blog", "shop.localhost", ok=False).exit_code == 4
    assert run("domain", "add", "shop", NAME, "--redirect-from", NAME, ok=False).exit_code == 2


def test_bad_input_exits_2_and_queues_nothing(sites):  # noqa: F811
    before = len(js("jobs", "list"))
    for args in (
        ("add", "shop", "bad name.example"), ("add", "shop", "*.example.com"), ("add", "shop", "localhost"),
        ("add", "shop", "a..example"), ("add", "shop", "-a.example"), ("add", "shop", "x" * 64 + ".example"),
        ("add", "shop", NAME, "--redirect-from", "a_b.example"), ("add", "shop", NAME, "--www", "always"),
        ("add", "Shop", NAME), ("add", "shop/", NAME), ("remove", "shop", "bad name"), ("renew", "shop/Prod"),
        ("add", "shop", "a@b.example"), ("add", "shop", "a/b.example"),
    ):
        assert run("domain", *args, ok=False).exit_code == 2, args
    assert len(js("jobs", "list")) == before
    assert run("domain", "add", "nosuch", NAME, ok=False).exit_code == 3
    assert run("domain", "renew", "shop", ok=False).exit_code == 3  # no certificate to renew


def test_remove_reissues_without_the_name_and_deletes_its_row(sites):  # noqa: F811
    js("domain", "add", "shop", NAME, "--redirect-from", ALIAS)
    _issue(sites, [NAME, ALIAS])
    assert run("domain", "remove", "shop", NAME, ok=False).exit_code == 2  # its alias redirects to it
    made = js("domain", "remove", "shop", ALIAS)
    rows = _rows()
    assert rows[ALIAS]["state"] == "removed" and rows[NAME]["tls_state"] == "renewing"
    v = _vars(sites, made["job_id"])
    assert v["pressluft_domain_redirects"] == [] and v["pressluft_domain_tls"] == [NAME]
    _issue(sites, [NAME])
    assert ALIAS not in _rows() and _rows()[NAME]["tls_state"] == "issued"
    assert run("domain", "remove", "shop", NAME, "shop.localhost", ok=False).exit_code == 2  # the last ones
    js("domain", "add", "blog", "blog.example.com", "--redirect-from", ALIAS)  # the name is free again


def test_a_dns_mismatch_fails_with_its_code_and_marks_the_names_failed(sites):  # noqa: F811
    made = js("domain", "add", "shop", NAME)
    url = sites
    sf = db.session_factory(url)
    from pressluft_lib import jobtypes, queue

    job = queue.claim(sf, "w1")
    with sf.begin() as s:
        done = queue.finish(s, job, "failed", "playbook_failed",
                            "task 'Check' failed: DOMAIN_DNS_MISMATCH: shop.example.com resolves to "
                            "A 1.2.3.4 (elsewhere)", worker_id="w1")
        jobtypes.get(done.type).run_after(s, done, {})
    shown = js("jobs", "show", str(made["job_id"]))
    assert shown["error_code"] == "domain_dns_mismatch"
    assert _rows()[NAME]["tls_state"] == "failed" and "DOMAIN_DNS_MISMATCH" in _rows()[NAME]["tls_error"]
    js("domain", "add", "shop", NAME)  # the rerun after fixing DNS
    assert _rows()[NAME]["tls_state"] == "pending"


def test_schedule_renews_certificates_expiring_within_30_days(sites):  # noqa: F811
    js("domain", "add", "shop", NAME)
    _issue(sites, [NAME], (utcnow() + timedelta(days=45)).strftime("%Y%m%d%H%M%SZ"))
    js("domain", "add", "blog", "blog.example.com")
    _issue(sites, ["blog.example.com"], (utcnow() + timedelta(days=29)).strftime("%Y%m%d%H%M%SZ"))
    dry = js("domain", "schedule", "--dry-run")["enqueued"]
    assert [(e["site"], e["job_id"]) for e in dry] == [("blog", None)]
    out = js("domain", "schedule")
    assert [e["site"] for e in out["enqueued"]] == ["blog"] and out["enqueued"][0]["job_id"]
    again = js("domain", "schedule")  # its names are renewing now: not queued twice
    assert again["enqueued"] == [] and again["skipped"] == []
    v = _vars(sites, out["enqueued"][0]["job_id"])
    assert v["pressluft_domain_renew"] is True
    with db.session_factory(sites)() as s:
        assert s.scalar(select(Domain.tls_state).where(Domain.name == "blog.example.com")) == "renewing"
