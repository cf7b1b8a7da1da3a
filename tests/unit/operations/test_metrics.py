"""`pressluft metrics`: the gauges read from a real control plane, in JSON and in a Prometheus text
file that prometheus_client's parser (the format node_exporter's textfile collector reads) accepts."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from pressluft_lib import queue
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job, utcnow
from tests.unit.cli.test_cli_backups import finish_next, sites  # noqa: F401


def run(*args: str, ok: bool = True):
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
    return r


@pytest.fixture
def busy(sites):  # noqa: F811
    """shop: one completed backup 2 h old; blog: none; a failed backup_create job and a queued one."""
    url = sites
    run("backup", "create", "shop")
    made = json.loads(run("backup", "list", "shop", "--json").stdout)[0]
    finish_next(url, artifacts={"pressluft_backup": {"id": made["id"], "manifest": {}, "location": "/x"}})
    from pressluft_lib.storage.models import Backup

    sf = db.session_factory(url)
    with sf.begin() as s:
        s.execute(update(Backup).values(updated_at=utcnow() - timedelta(hours=2)))
    run("backup", "create", "blog")
    finish_next(url, state="failed")
    run("backup", "create", "blog")  # stays queued
    with sf.begin() as s:
        s.execute(update(Job).where(Job.state == "queued").values(created_at=utcnow() - timedelta(minutes=5)))
    return url


def test_json_gauges(busy):
    data = json.loads(run("metrics", "--format", "json").stdout)
    assert data["queue"]["depth"] == 1
    assert 290 < data["queue"]["oldest_age_seconds"] < 400
    assert {"type": "backup_create", "count": 1} in data["failed_24h"]
    jobs = {(j["type"], j["state"]): j["count"] for j in data["jobs"]}
    assert jobs[("site_create", "succeeded")] == 2 and jobs[("backup_create", "queued")] == 1
    ages = {(b["site"], b["env"]): b["age_seconds"] for b in data["backups"]}
    assert 7100 < ages[("shop", "production")] < 7400
    assert ages[("blog", "production")] is None


def test_prometheus_text_parses_and_matches_the_json(busy, tmp_path):
    (tmp_path / "textfile").mkdir()
    target = tmp_path / "textfile" / "pressluft.prom"
    run("metrics", "--output", str(target))
    run("metrics", "--output", str(target))  # replaces it
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["pressluft.prom"], "no temporary file left"
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("pressluft_queue_depth", ())] == 1
    assert samples[("pressluft_jobs_failed_24h", (("type", "backup_create"),))] == 1
    assert samples[("pressluft_jobs", (("state", "queued"), ("type", "backup_create")))] == 1
    age = samples[("pressluft_backup_last_success_age_seconds", (("env", "production"), ("site", "shop")))]
    assert 7100 < age < 7400
    assert samples[("pressluft_environments_without_backup", ())] == 1
    assert all(f.type == "gauge" for f in families.values())


def test_empty_control_plane_is_valid_too(sites):  # noqa: F811
    text = run("metrics").stdout
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "pressluft_queue_depth" in names and "pressluft_jobs_failed_24h" not in names


@pytest.mark.parametrize("bad", ["/etc/passwd", "/tmp", "metrics.txt", "/nonexistent/dir/x.prom", ".prom"])
def test_output_must_be_a_prom_file_in_an_existing_directory(sites, bad):  # noqa: F811
    r = run("metrics", "--output", bad, ok=False)
    assert r.exit_code == 2, r.output


def test_label_values_are_escaped():
    from pressluft_lib.operations.metrics import _line

    line = _line("m", 1, site='a"b\\c\nd')
    fam = next(text_string_to_metric_families(f"# TYPE m gauge\n{line}\n"))
    assert fam.samples[0].labels == {"site": 'a"b\\c\nd'}


def test_failures_older_than_24h_do_not_count(busy):
    sf = db.session_factory(busy)
    with sf.begin() as s:
        s.execute(update(Job).where(Job.state == "failed").values(finished_at=utcnow() - timedelta(hours=25)))
        assert s.scalar(select(Job.id).where(Job.state == "failed"))
    data = json.loads(run("metrics", "--format", "json").stdout)
    assert data["failed_24h"] == []
    assert queue  # the queue module is what finish_next drives


def test_certificate_expiry_per_domain(sites):  # noqa: F811
    import calendar
    from datetime import datetime

    from pressluft_lib.storage.models import Domain

    with db.session_factory(sites).begin() as s:
        s.add(Domain(env_id=1, name="www.shop.example", state="active",
                     tls_expires_at=datetime(2027, 3, 1, 12, 0, 0)))
        s.add(Domain(env_id=1, name="plain.shop.example", state="active"))  # no certificate wanted
    fams = {f.name: f for f in text_string_to_metric_families(run("metrics").stdout)}
    expiry = fams["pressluft_certificate_expiry_timestamp_seconds"]
    samples = {s.labels["domain"]: s.value for s in expiry.samples}
    assert samples == {"www.shop.example": calendar.timegm((2027, 3, 1, 12, 0, 0))}
