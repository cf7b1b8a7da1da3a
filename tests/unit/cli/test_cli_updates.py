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


def test_safe_update_keeps_its_report_and_update_report_prints_it(sites, tmp_path):
    zipped = tmp_path / "pmarkup.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("pmarkup/pmarkup.php", "<?php /* Plugin Name: pmarkup\nVersion: 2.0 */")
    made = js("update", "shop", "--plugin-zip", str(zipped), "--safe", "--max-diff", "home=0.05")
    assert made["safe"] is True and made["clone"] == f"safe{made['job_id']}"
    job = js("jobs", "show", str(made["job_id"]))
    assert job["payload"]["pressluft_update_clone_env"] == made["clone"]
    assert job["payload"]["pressluft_update_safe_max_diff"] == {"home": 0.05}
    pending = js("update", "report", str(made["report_id"]))
    assert (pending["state"], pending["clone"], pending["site"]) == ("pending", made["clone"], "shop")
    marks = {"start": 100.0, "cloned": 130.5, "updated": 150.0, "compared": 154.0, "removed": 160.0,
             "end": 161.0}
    item = {"type": "plugin", "name": "pmarkup", "from": "1.0", "to": "2.0", "source": "zip"}
    finish_next(sites, "failed", {
        "pressluft_update": {"state": "discarded", "phase": "safe", "reason": "safe update: ...",
                             "updates": [item]},
        "pressluft_update_report": {
            "clone": made["clone"], "passed": False, "reason": "/: 6.0% of the page changed (at most 5.0%)",
            "urls": [{"path": "/", "kind": "home", "status": 200, "clone_status": 200, "changed": 0.06,
                      "max_diff": 0.05, "ok": False, "reason": "/: 6.0% of the page changed",
                      "diff": ["@@ -1 +1,2 @@", '+<aside class="pmarkup-banner">']}],
            "php_errors": {"lines": [], "counts": {}}, "timings": marks},
    })
    report = js("update", "report", str(made["report_id"]))
    assert report["state"] == "failed" and report["update"]["state"] == "discarded"
    assert report["timings"] == {"clone": 30.5, "update": 19.5, "compare": 4.0, "remove": 6.0, "apply": 1.0}
    text = run("update", "report", str(made["report_id"])).stdout
    assert "FAIL / [home] HTTP 200 -> 200, changed 6.00% (max 5.00%)" in text
    assert '+<aside class="pmarkup-banner">' in text and "plugin pmarkup 1.0 -> 2.0" in text
    assert js("update", "list", "shop")[0]["state"] == "discarded"
    assert run("update", "report", "999", ok=False).exit_code != 0
    for bad in (["--max-diff", "home=0.05"], ["--safe", "--max-diff", "home=2"],
                ["--safe", "--max-diff", "x=0.1"]):
        assert run("update", "shop", "--plugin-zip", str(zipped), *bad, ok=False).exit_code == 2, bad
    # The environment is active again (production was never touched): the next update queues.
    assert js("update", "shop", "--plugin-zip", str(zipped), "--safe")["report_id"] > made["report_id"]
