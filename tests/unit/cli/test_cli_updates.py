"""`pressluft update ...` through Click's CliRunner on a real SQLite control plane: `update SITE` is
`update apply SITE`, bad input exits 2 with nothing queued, `update list` shows the outcome."""

from __future__ import annotations

import zipfile

from tests.unit.cli import test_cli_backups as shared
from tests.unit.cli.test_cli_backups import finish_next, js, run

sites = shared.sites  # the fixture: sites shop and blog on an active node


def test_update_site_queues_env_update_and_list_shows_it(sites, tmp_path):
    zipped = tmp_path / "pgood.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("pgood/pgood.php", "<?php /* Plugin Name: pgood\nVersion: 2.0 */")
    text = run("update", "shop", "--plugins", "all", "--minor-only", "--exclude", "woo").stdout
    assert "env_update shop/production" in text and "pre-update backup" in text
    finish_next(sites, "succeeded", {"pressluft_update": {"state": "nothing", "phase": "plan"}})
    made = js("update", "apply", "shop", "--plugin-zip", str(zipped))
    assert made["site"] == "shop" and made["backup_id"]
    assert js("jobs", "show", str(made["job_id"]))["type"] == "env_update"
    finish_next(sites, "succeeded", {
        "pressluft_update": {"state": "live", "phase": "live", "backup": made["backup_id"], "updates": [
            {"type": "plugin", "name": "pgood", "from": "1.0", "to": "2.0", "source": "zip"}]},
        "pressluft_backup": {"id": made["backup_id"], "location": "/x", "manifest": {}},
        "pressluft_release": {"id": made["release"], "state": "live", "removed": []},
    })
    listed = js("update", "list", "shop")
    assert [(r["release"], r["state"], r["backup_id"]) for r in listed] == [
        (made["release"], "live", made["backup_id"])]
    assert "pgood 1.0->2.0" in run("update", "list", "shop").stdout


def test_update_refuses_bad_input_with_exit_2(sites, tmp_path):
    for args in (["shop"], ["shop", "--plugins", "../x"], ["shop", "--plugin-zip", str(tmp_path / "no.zip")]):
        result = run("update", *args, ok=False)
        assert result.exit_code == 2, (args, result.output)
    assert js("jobs", "list") and all(j["type"] != "env_update" for j in js("jobs", "list"))
