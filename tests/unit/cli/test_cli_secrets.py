"""`pressluft secrets rotate|schedule` through Click's CliRunner on a real SQLite control plane."""

from __future__ import annotations

import json

from ansible_collections.pressluft.wordpress.plugins.filter.seal import seal

from pressluft_lib.storage.secret_store import SecretStore
from tests.unit.cli.test_cli_backups import finish_next, js, run, sites  # noqa: F401  (fixture)

NEW_DB = "cli-rotated-Db-Pw-5521-never-shown"


def test_rotate_queues_stores_on_success_and_never_prints_a_secret(sites):  # noqa: F811
    made = js("secrets", "rotate", "shop", "--admin-password")
    assert made["admin"] is True and made["site"] == "shop" and made["env"] == "production"
    assert "queued: secrets_rotate blog/production\n" in run("secrets", "rotate", "blog").stdout
    key = SecretStore(url=sites).sealing_public_key()
    finish_next(sites, artifacts={"pressluft_secrets_sealed": seal({"db_password": NEW_DB}, key)})
    job = js("jobs", "show", str(made["job_id"]))
    assert {"stored": ["db_password"]} in [e["data"] for e in job["events"]]
    shown = run("jobs", "show", str(made["job_id"])).stdout + run("audit", "list", "--json").stdout
    assert NEW_DB not in shown + json.dumps(job)


def test_bad_targets_exit_2_and_queue_nothing(sites):  # noqa: F811
    for target in ("Shop", "shop/", "shop/Prod", "a/b/c"):
        assert run("secrets", "rotate", target, ok=False).exit_code == 2, target
    assert run("secrets", "rotate", "nosuch", ok=False).exit_code == 3
    assert run("secrets", "schedule", "--max-age", "0", ok=False).exit_code == 2
    assert all(j["type"] != "secrets_rotate" for j in js("jobs", "list"))


def test_schedule_dry_run_lists_nothing_fresh(sites):  # noqa: F811
    out = js("secrets", "schedule", "--max-age", "30", "--dry-run")
    assert out["enqueued"] == [] and out["dry_run"] is True
    assert "nothing queued" in run("secrets", "schedule").stdout
