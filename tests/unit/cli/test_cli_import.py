"""`pressluft import SITE[/ENV] --archive FILE|URL` through Click's CliRunner on a real SQLite control
plane: the job, its release and pre-import backup rows, the after hook storing the imported table prefix
(passed to later jobs as pressluft_table_prefix), bad input refused with exit 2 and nothing queued."""

from __future__ import annotations

from sqlalchemy import select

from pressluft_lib.execution.runner import job_vars
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Environment, Job
from tests.unit.cli import test_cli_backups as shared
from tests.unit.cli.test_cli_backups import finish_next, js, run

sites = shared.sites  # the fixture: sites shop and blog on an active node


def test_import_queues_site_import_and_keeps_the_imported_prefix(sites, tmp_path):
    archive = tmp_path / "shop.tar.gz"
    archive.write_bytes(b"x")
    text = run("import", "shop", "--archive", str(archive)).stdout
    assert "site_import shop/production" in text and "pre-import backup" in text
    made = js("import", "blog", "--archive", "https://example.com/blog.zip", "--max-size", "1000")
    assert js("jobs", "show", str(made["job_id"]))["type"] == "site_import"
    finish_next(sites, "succeeded", {
        "pressluft_import": {"state": "live", "phase": "live", "table_prefix": "shop7_", "backup": "b"},
        "pressluft_release": {"state": "live"},
    })
    with db.session_factory(sites)() as s:
        envs = {e.site.name: e for e in s.scalars(select(Environment))}
        assert envs["shop"].table_prefix == "shop7_" and envs["shop"].state == "active"
        later = Job(type="site_create", site_id=envs["shop"].site_id, env_id=envs["shop"].id, payload={})
        s.add(later)
        s.flush()
        assert job_vars(s, later)[0]["pressluft_table_prefix"] == "shop7_"
    # The blog import fails while staging: nothing changed, the environment is active again.
    finish_next(sites, "failed", {"pressluft_import": {"state": "failed", "phase": "stage",
                                                       "reason": "the archive is corrupt"}})
    with db.session_factory(sites)() as s:
        blog = next(e for e in s.scalars(select(Environment)) if e.site.name == "blog")
        assert blog.state == "active" and blog.table_prefix is None
    assert js("jobs", "show", str(made["job_id"]))["state"] == "failed"


def test_import_refuses_bad_input_with_exit_2(sites, tmp_path):
    big = tmp_path / "big.zip"
    big.write_bytes(b"x" * 100)
    for args in (
        ["shop"],
        ["shop", "--archive", str(tmp_path / "missing.tar.gz")],
        ["shop", "--archive", str(tmp_path / "site.rar")],
        ["shop", "--archive", "http://example.com/a.zip"],
        ["shop", "--archive", "ftp://example.com/a.zip"],
        ["shop", "--archive", "/tmp/a b.zip"],
        ["shop", "--archive", str(big), "--max-size", "10"],
        ["../shop", "--archive", str(big)],
        ["shop", "--archive", str(big), "--from", "ssh://u@h/srv/wp"],
        ["shop", "--from", "ssh://u@h/srv/../etc"],
        ["shop", "--from", "ssh://u@h/srv/wp;rm -rf /"],
        ["shop", "--from", "ssh://u:pw@h/srv/wp"],
        ["shop", "--from", "ssh://-oProxyCommand=x@h/srv/wp"],
        ["shop", "--from", "ssh://u@-oProxyCommand=x/srv/wp"],
        ["shop", "--from", "https://h/srv/wp"],
        ["shop", "--from", "ssh://u@h/srv/wp", "--ssh-key", "id_rsa"],
    ):
        result = run("import", *args, ok=False)
        assert result.exit_code == 2, (args, result.output)
    assert all(j["type"] != "site_import" for j in js("jobs", "list"))
    assert js("import", "shop", "--archive", "http://example.com/a.zip", "--allow-http")["job_id"]


def test_import_from_ssh_queues_the_pull(sites):
    made = js("import", "shop", "--from", "ssh://deploy@old.example.com:2222/srv/www/shop",
              "--accept-new-host-key", "--ssh-key", "/root/.ssh/pull_key")
    payload = js("jobs", "show", str(made["job_id"]))["payload"]
    assert {k: v for k, v in payload.items() if k.startswith("pressluft_import_")} == {
        "pressluft_import_ssh_user": "deploy", "pressluft_import_ssh_host": "old.example.com",
        "pressluft_import_ssh_port": 2222, "pressluft_import_ssh_path": "/srv/www/shop",
        "pressluft_import_ssh_host_key": "accept-new", "pressluft_import_ssh_key": "/root/.ssh/pull_key"}


def test_keep_constant_names_checked_and_queued(sites, tmp_path):
    archive = tmp_path / "shop.tar.gz"
    archive.write_bytes(b"x")
    for bad in ("DB_PASSWORD", "auth_key", "WP_HOME", "WP_REDIS_PREFIX", "ABSPATH", "1X", "A-B", "X'"):
        res = run("import", "shop", "--archive", str(archive), "--keep-constant", bad, ok=False)
        assert res.exit_code == 2 and "keep-constant" in res.output, res.output
    made = js("import", "shop", "--archive", str(archive), "--keep-constant", "SHOP_MODE",
              "--keep-constant", "FORCE_SSL_ADMIN", "--keep-constant", "SHOP_MODE")
    with db.session_factory(sites)() as s:
        payload = s.get(Job, made["job_id"]).payload
    assert payload["pressluft_import_keep_constants"] == ["SHOP_MODE", "FORCE_SSL_ADMIN"]


def test_import_into_a_missing_target_names_the_command_that_creates_it(sites, tmp_path):
    archive = tmp_path / "shop.tar.gz"
    archive.write_bytes(b"x")
    res = run("import", "newshop", "--archive", str(archive), ok=False)
    assert res.exit_code == 3 and "pressluft site create newshop --node NODE" in res.output, res.output
    res = run("import", "newshop/staging", "--archive", str(archive), ok=False)
    assert res.exit_code == 3 and "pressluft site create newshop --node NODE --env staging" in res.output
    res = run("import", "shop/staging", "--archive", str(archive), ok=False)
    assert res.exit_code == 3 and "pressluft env create shop/staging" in res.output, res.output
    with db.session_factory(sites)() as s:
        assert s.scalar(select(Job).where(Job.type == "site_import")) is None
