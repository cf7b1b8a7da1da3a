"""`pressluft backup ...` and `pressluft restore` through Click's CliRunner on a real SQLite control plane."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli
from sqlalchemy import select

from pressluft_lib import jobtypes, queue
from pressluft_lib.execution import runner
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Node
from pressluft_lib.storage.transitions import transition

PASSWORD = "cli-restic-Pw-4411-never-shown"
S3_SECRET = "cli-s3-Secret-0912-never-shown"
BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-\d+")


def run(*args: str, ok: bool = True, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, (result.output, result.stderr)
    return result


def js(*args: str, input: str | None = None):
    return json.loads(run(*args, "--json", input=input).stdout)


def finish_next(url: str, state: str = "succeeded", artifacts: dict | None = None) -> None:
    """Claim the next job and end it as the runner would (finish + after hook)."""
    sf = db.session_factory(url)
    job = queue.claim(sf, "w1")
    with sf.begin() as s:
        done = queue.finish(
            s, job, state, None if state == "succeeded" else "playbook_failed", None, worker_id="w1"
        )
        jobtypes.get(done.type).run_after(s, done, artifacts or {})


@pytest.fixture
def sites(tmp_path, monkeypatch):
    """Sites shop and blog, active, on an active node (their site_create jobs finished)."""
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PRESSLUFT_SECRET_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    monkeypatch.setenv("PRESSLUFT_DB", url)
    run("db", "upgrade")
    js("node", "add", "web1", "--host", "192.0.2.10")
    with db.session_factory(url).begin() as s:
        node = s.scalar(select(Node).where(Node.name == "web1"))
        transition(s, node, "provisioning")
        transition(s, node, "active")
    for name in ("shop", "blog"):
        js("site", "create", name, "--node", "web1")
        finish_next(url)
    return url


def test_create_list_show_json_shapes(sites):
    made = js("backup", "create", "shop", "--scope", "db")
    assert set(made) == {"job_id", "backup_id", "site", "env", "scope", "include_core"}
    assert (made["site"], made["env"], made["scope"], made["include_core"]) == (
        "shop",
        "production",
        "db",
        False,
    )
    assert BACKUP_ID.fullmatch(made["backup_id"])
    assert js("jobs", "show", str(made["job_id"]))["type"] == "backup_create"
    listed = js("backup", "list")
    assert [b["id"] for b in listed] == [made["backup_id"]]
    assert set(listed[0]) == {
        "id",
        "site",
        "env",
        "scope",
        "state",
        "trigger",
        "include_core",
        "job_id",
        "location",
        "repository",
        "restic_snapshot",
        "size_bytes",
        "error",
        "created_at",
        "completed_at",
    }
    assert js("backup", "list", "shop/production") == listed and js("backup", "list", "blog") == []
    result = {
        "id": made["backup_id"],
        "location": "/var/backups/x",
        "manifest": {"artifacts": {"db.sql.gz": {"size": 7}}},
        "restic_snapshot": None,
        "restic_data_added": None,
    }
    finish_next(sites, artifacts={"pressluft_backup": result})
    shown = js("backup", "show", made["backup_id"])
    assert (shown["state"], shown["size_bytes"], shown["manifest"]) == ("completed", 7, result["manifest"])
    human = run("backup", "list", "shop").stdout
    assert made["backup_id"] in human and "completed" in human
    assert "queued: backup_create blog/production (full)" in run("backup", "create", "blog").stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["backup", "create", "shop/"], 2),
        (["backup", "create", "shop/production/x"], 2),
        (["backup", "create", "Shop"], 2),
        (["backup", "create", "nope"], 3),
        (["backup", "create", "shop/staging"], 3),
        (["backup", "show", "20260101T000000Z"], 2),
        (["backup", "show", "20260101T000000Z-77"], 3),
        (["backup", "retention", "shop", "--daily", "-1"], 2),
        (["backup", "retention", "nope"], 3),
        (["restore", "shop", "x1", "--yes"], 2),
        (["restore", "shop", "77", "--yes"], 3),
        (["restore", "shop", "--yes"], 2),
        (["restore", "shop", "--to", "n2", "--yes"], 2),
        (["restore", "shop", "77", "--to", "n2", "--from-offsite", "77", "--yes"], 2),
        (["restore", "shop", "--to", "nosuch", "--from-offsite", "x1", "--yes"], 2),
        (["restore", "shop", "--to", "nosuch", "--from-offsite", "77", "--yes"], 3),
        (["site", "move", "shop"], 2),
        (["site", "move", "shop", "--to", "web1", "--confirm"], 2),
        (["site", "move", "Shop", "--to", "web1"], 2),
        (["site", "move", "shop", "--to", "nosuch"], 3),
        (["site", "move", "shop", "--to", "web1"], 4),
        (["site", "move", "shop", "--confirm"], 4),
        (["backup", "repo", "set", "--url", "bucket", "--password-stdin"], 2),
        (["backup", "schedule", "--site", "nope"], 3),
    ],
)
def test_errors_have_stable_exit_codes_and_json(sites, args, code):
    result = run(*args, "--json", ok=False, input="pw\n")
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["error"]["code"]
    assert js("jobs", "list") and all(j["type"] == "site_create" for j in js("jobs", "list")), (
        "nothing queued"
    )


def test_restore_refusals_and_success(sites):
    made = js("backup", "create", "shop")
    busy = run("backup", "create", "shop", "--json", ok=False)
    assert busy.exit_code == 4 and str(made["job_id"]) in json.loads(busy.stdout)["error"]["message"]
    finish_next(sites, "failed")
    refused = run("restore", "shop", made["backup_id"], "--yes", "--json", ok=False)
    assert refused.exit_code == 4 and "is failed" in json.loads(refused.stdout)["error"]["message"]
    theirs = js("backup", "create", "blog")
    finish_next(sites, artifacts={"pressluft_backup": {"id": theirs["backup_id"], "location": "/x"}})
    foreign = run("restore", "shop", theirs["backup_id"], "--yes", "--json", ok=False)
    assert foreign.exit_code == 2 and "belongs to blog/production" in foreign.stdout
    assert run("restore", "blog", theirs["backup_id"], "--json", ok=False).exit_code == 2, (
        "--json needs --yes"
    )
    assert run("restore", "blog", theirs["backup_id"], ok=False, input="n\n").exit_code == 1
    jobs_before = len(js("jobs", "list"))
    done = js("restore", "blog/production", theirs["backup_id"], "--yes")
    assert set(done) == {"job_id", "site", "env", "backup_id", "pre_restore_backup_id"}
    assert len(js("jobs", "list")) == jobs_before + 1
    assert js("backup", "show", done["pre_restore_backup_id"])["trigger"] == "pre_restore"
    assert js("site", "show", "blog")["environments"][0]["state"] == "restoring"


def test_retention_cleanup_and_schedule(sites):
    assert js("backup", "retention", "shop") == {"site": "shop", "daily": 7, "weekly": 4, "monthly": 3}
    assert js("backup", "retention", "shop", "--weekly", "2")["weekly"] == 2
    assert "keeps 7 daily, 2 weekly, 3 monthly" in run("backup", "retention", "shop").stdout
    assert js("backup", "cleanup", "shop", "--dry-run") == {
        "job_id": None,
        "site": "shop",
        "env": "production",
        "expired": [],
        "remove": [],
    }
    first = js("backup", "schedule")
    assert set(first) == {"enqueued", "skipped", "reconciled", "dry_run"}
    assert sorted((e["site"], e["type"]) for e in first["enqueued"]) == [
        ("blog", "backup_create"),
        ("shop", "backup_create"),
    ]
    again = js("backup", "schedule")
    assert again["enqueued"] == [] and sorted(s["skipped"] for s in again["skipped"]) == ["busy", "busy"]
    assert "skipped shop: job" in run("backup", "schedule").stdout


def test_repository_secrets_never_shown_and_only_backup_jobs_get_them(sites):
    shown = js(
        "backup",
        "repo",
        "set",
        "--url",
        "s3:http://127.0.0.1:9000/bucket/pl",
        "--password-stdin",
        "--s3-access-key-id",
        "AKIATEST",
        "--s3-secret-access-key-stdin",
        input=f"{PASSWORD}\n{S3_SECRET}\n",
    )
    assert shown == {
        "repository": "s3:http://127.0.0.1:9000/bucket/pl",
        "restic_password_set": True,
        "s3_access_key_id_set": True,
        "s3_secret_access_key_set": True,
    }
    short = run(
        "backup",
        "repo",
        "set",
        "--url",
        "/srv/r",
        "--password-stdin",
        "--s3-secret-access-key-stdin",
        "--json",
        ok=False,
        input="only-one\n",
    )
    assert short.exit_code == 2
    made = js("backup", "create", "shop")
    outputs = [
        run("backup", "repo", "show").stdout,
        run("backup", "repo", "show", "--json").stdout,
        run("jobs", "show", str(made["job_id"]), "--json").stdout,
        run("backup", "list").stdout,
        run("backup", "show", made["backup_id"], "--json").stdout,
        run("audit", "list", "--json").stdout,
    ]
    for text in outputs:
        assert PASSWORD not in text and S3_SECRET not in text
    sf = db.session_factory(sites)
    with sf() as s:
        for type_, expect in (("backup_create", True), ("env_restore", True), ("site_create", False)):
            got = runner.load_secrets(s, sites, "shop", "production", jobtypes.get(type_).secret_scopes)
            assert (got.get("pressluft_restic_password") == PASSWORD) is expect, type_
            assert (got.get("pressluft_s3_secret_access_key") == S3_SECRET) is expect, type_
            assert "pressluft_db_password" in got, "the environment's own secrets still come along"
