"""The pressluft CLI through Click's CliRunner on a real SQLite control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli
from sqlalchemy import MetaData, select

from pressluft_lib import errors
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Node, Secret, Site
from pressluft_lib.storage.transitions import transition

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PRESSLUFT_SECRET_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    monkeypatch.setenv("PRESSLUFT_DB", url)
    return url


def run(*args: str, ok: bool = True, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, (result.output, result.stderr)
    return result


def js(*args: str):
    return json.loads(run(*args, "--json").stdout)


def snapshot(url: str) -> dict:
    engine = db.make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        data = {t: sorted(map(repr, conn.execute(meta.tables[t].select()).all())) for t in meta.tables}
    engine.dispose()
    return data


@pytest.fixture
def upgraded(env):
    run("db", "upgrade")
    return env


@pytest.fixture
def active_node(upgraded, tmp_path):
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    js("node", "add", "web1", "--host", "192.0.2.10", "--user", "pressluft", "--ssh-key", str(key))
    with db.session_factory(upgraded).begin() as s:
        node = s.scalar(select(Node).where(Node.name == "web1"))
        transition(s, node, "provisioning", actor="test")
        transition(s, node, "active", actor="test")
    return upgraded


def test_db_upgrade_json_and_db_option(tmp_path, monkeypatch):
    monkeypatch.delenv("PRESSLUFT_DB", raising=False)
    monkeypatch.setenv("PRESSLUFT_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'other.db'}"
    out = json.loads(run("--db", url, "db", "upgrade", "--json").stdout)
    assert out == {"database": url, "status": "up to date"}
    assert (tmp_path / "other.db").exists()
    assert not (tmp_path / "home" / "pressluft.db").exists(), "--db wins over the default"


def test_node_commands(upgraded, tmp_path):
    added = js("node", "add", "web1", "--host", "192.0.2.10", "--port", "2222", "--user", "pressluft")
    assert (added["name"], added["port"], added["state"], added["local"]) == ("web1", 2222, "pending", False)
    local = js("node", "add", "me", "--local")
    assert (local["local"], local["host"], local["provider"]) == (True, "localhost", "local")
    assert [n["name"] for n in js("node", "list")] == ["me", "web1"]
    table = run("node", "list").stdout
    assert "web1" in table and "192.0.2.10" in table and "pending" in table
    assert js("node", "show", "web1")["sites"] == []
    assert "2222" in run("node", "show", "web1").stdout
    assert js("node", "remove", "me") == {"name": "me", "state": "removed"}
    assert [n["name"] for n in js("node", "list")] == ["web1"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["node", "add", "Web_1", "--host", "192.0.2.1"], 2),
        (["node", "add", "web2"], 2),  # no --host and not --local
        (["node", "add", "all", "--host", "192.0.2.1"], 2),  # an inventory group: every playbook broke
        (["node", "add", "web2", "--host", "192.0.2.1", "--ssh-key", "\x00"], 2),  # found by the fuzz run
        (["node", "show", "\udcff"], 2),  # an undecodable argv byte (found by the fuzz run)
        (["node", "add", "ungrouped", "--host", "192.0.2.1"], 2),
        (["node", "add", "localhost", "--local"], 2),
        (["node", "add", "pressluft", "--host", "192.0.2.1"], 2),  # the inventory plugin's group
        (["node", "add", "web2", "--host", "a b;rm -rf /"], 2),
        (["node", "add", "web2", "--host", "192.0.2.1", "--port", "70000"], 2),
        (["node", "add", "web2", "--host", "192.0.2.1", "--user", "Robert'); DROP"], 2),
        (["node", "add", "web2", "--host", "192.0.2.1", "--ssh-key", "/nonexistent/key"], 2),
        (["node", "add", "web1", "--host", "192.0.2.1"], 4),  # exists
        (["node", "show", "nope"], 3),
        (["node", "remove", "nope"], 3),
        (["node", "provision", "nope"], 3),
        (["node", "provision", "web1", "--var", "Bad-Key=1"], 2),
        (["node", "provision", "web1", "--var", "db_password=x"], 2),  # secrets never go into payloads
        (["site", "create", "shop", "--node", "web1"], 4),  # node not provisioned yet
    ],
)
def test_node_bad_input_changes_nothing(upgraded, args, code):
    js("node", "add", "web1", "--host", "192.0.2.10")
    before = snapshot(upgraded)
    result = run(*args, "--json", ok=False)
    assert result.exit_code == code, result.output
    err = json.loads(result.stdout)["error"]
    assert err["code"] and err["message"]
    after = snapshot(upgraded)
    audit_before, audit_after = before.pop("audit_log"), after.pop("audit_log")
    assert after == before
    assert len(audit_after) - len(audit_before) in (0, 1), "at most the refusal itself is audited"
    human = run(*args, ok=False)
    assert human.exit_code == code
    assert human.stderr.startswith("Error: ")


def test_provision_prints_job_and_conflicts(upgraded):
    js("node", "add", "web1", "--host", "192.0.2.10")
    job = js("node", "provision", "web1", "--var", "node_wpcli_src=/tmp/wp")
    assert job["node"] == "web1" and isinstance(job["job_id"], int)
    shown = js("jobs", "show", str(job["job_id"]))
    assert (shown["type"], shown["state"], shown["node"]) == ("node_provision", "queued", "web1")
    assert shown["payload"] == {"node_wpcli_src": "/tmp/wp"}
    again = run("node", "provision", "web1", ok=False)
    assert again.exit_code == errors.ConflictError.exit_code
    assert f"job {job['job_id']}" in again.stderr
    assert "job" in run("node", "provision", "web1", "--json", ok=False).stdout
    assert js("node", "show", "web1")["state"] == "provisioning"


def test_site_create_show_list_delete(active_node):
    created = js("site", "create", "shop", "--node", "web1", "--php", "8.2", "--domain", "shop.example.com")
    assert created["domains"] == ["shop.example.com"] and isinstance(created["job_id"], int)
    default = js("site", "create", "blog", "--node", "web1")
    assert default["domains"] == ["blog.localhost"]
    assert "queued: site_create" in run("site", "create", "press", "--node", "web1").stdout
    shown = js("site", "show", "shop")
    assert (shown["state"], shown["node"], shown["php_version"]) == ("creating", "web1", "8.2")
    assert shown["environments"] == [
        {"name": "production", "state": "creating", "php_version": "8.2", "domains": ["shop.example.com"]}
    ]
    assert "shop.example.com" in run("site", "show", "shop").stdout
    assert [s["name"] for s in js("site", "list")] == ["blog", "press", "shop"]
    with db.session_factory(active_node)() as s:  # passwords were generated, encrypted
        names = sorted(s.scalars(select(Secret.name).where(Secret.scope == "env:shop_production")))
        assert names == ["db_password", "wordpress_admin_password"]
    busy = run("site", "delete", "shop", "--yes", ok=False)
    assert busy.exit_code == 4, "site_create still holds the site"
    assert run("site", "delete", "shop", "--json", ok=False).exit_code == 2, "--json needs --yes"
    # The create job fails; the failed site can then be deleted.
    js("jobs", "cancel", str(created["job_id"]))
    assert js("site", "show", "shop")["state"] == "failed"
    deleted = js("site", "delete", "shop", "--yes")
    assert js("jobs", "show", str(deleted["job_id"]))["type"] == "site_delete"
    assert js("site", "show", "shop")["state"] == "deleting"
    aborted = run("site", "delete", "blog", ok=False, input="n\n")
    assert aborted.exit_code == 1 and js("site", "show", "blog")["state"] == "creating"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["site", "create", "Shop", "--node", "web1"], 2),
        (["site", "create", "root", "--node", "web1"], 2),
        (["site", "create", "mysql", "--node", "web1"], 2),
        (["site", "create", "a.b", "--node", "web1"], 2),
        (["site", "create", "x", "--node", "web1"], 2),
        (["site", "create", "shop;id", "--node", "web1"], 2),
        (["site", "create", "a" * 21, "--node", "web1"], 2),
        (["site", "create", "blog", "--node", "web1", "--domain", "Bad_Domain"], 2),
        (["site", "create", "blog", "--node", "web1", "--domain", "localhost"], 2),
        (["site", "create", "blog", "--node", "web1", "--php", "8"], 2),
        (["site", "create", "blog", "--node", "web1", "--env", "Prod"], 2),
        (["site", "create", "information", "--node", "web1", "--env", "schema"], 2),  # information_schema
        (["site", "create", "performance", "--node", "web1", "--env", "schema"], 2),
        (["site", "create", "blog", "--node", "nope"], 3),
        (["site", "create", "shop", "--node", "web1"], 4),  # exists
        (["site", "create", "blog", "--node", "web1", "--domain", "shop.example.com"], 4),  # domain taken
        (["site", "show", "nope"], 3),
        (["site", "delete", "nope", "--yes"], 3),
        (["jobs", "show", "999"], 3),
        (["jobs", "cancel", "999"], 3),
        (["jobs", "list", "--state", "bogus"], 2),
        (["reset", "site", "shop"], 4),  # a job holds it
        (["reset", "site", "nope"], 3),
        (["reset", "env", "shop", "nope"], 3),
    ],
)
def test_site_bad_input_changes_nothing(active_node, args, code):
    js("site", "create", "shop", "--node", "web1", "--domain", "shop.example.com")
    before = snapshot(active_node)
    before.pop("audit_log")
    result = run(*args, ok=False)
    assert result.exit_code == code, result.output
    after = snapshot(active_node)
    after.pop("audit_log")
    assert after == before


def test_jobs_list_follow_cancel_and_reset(active_node):
    job = js("site", "create", "shop", "--node", "web1")["job_id"]
    assert [j["id"] for j in js("jobs", "list", "--state", "queued")] == [job]
    assert js("jobs", "list", "--state", "failed") == []
    assert "site_create" in run("jobs", "list").stdout
    assert js("jobs", "cancel", str(job))["state"] == "cancelled"
    again = run("jobs", "cancel", str(job), ok=False)
    assert again.exit_code == errors.TransitionError.exit_code
    followed = run("jobs", "follow", str(job), ok=False)
    assert followed.exit_code == 9, "following a job that did not succeed"
    assert "queued -> cancelled" in followed.stdout
    lines = [
        json.loads(line) for line in run("jobs", "follow", str(job), "--json", ok=False).stdout.splitlines()
    ]
    assert lines[-1] == {"job_id": job, "state": "cancelled"}
    assert [e["data"]["to"] for e in lines[:-1]] == ["queued", "cancelled"]
    assert js("site", "show", "shop")["state"] == "failed"
    assert js("reset", "site", "shop") == {"site": "shop", "state": "active"}
    assert run("reset", "site", "shop", ok=False).exit_code == errors.TransitionError.exit_code
    with db.session_factory(active_node).begin() as s:
        site = s.scalar(select(Site).where(Site.name == "shop"))
        env = site.environments[0]
        transition(s, env, "deleting", actor="test")
        transition(s, env, "failed", actor="test")
    assert js("reset", "env", "shop", "production")["state"] == "active"


def test_reset_waits_for_a_stalled_attempt_or_force(active_node):
    """`reset` of a site whose last job stalled: refused (exit 4, until when) while its worker may still
    run it; --force resets with a warning on stderr (JSON: "warning")."""
    from pressluft_lib import queue

    create = js("site", "create", "shop", "--node", "web1")["job_id"]
    js("jobs", "cancel", str(create))  # the site is failed now: it can be deleted, and that delete stalls
    sf = db.session_factory(active_node)
    job_id = js("site", "delete", "shop", "--yes")["job_id"]
    assert queue.claim(sf, "w1#1").id == job_id
    assert queue.detect_stalled(sf, 0) == [(job_id, "stalled")]
    refused = run("reset", "site", "shop", ok=False)
    assert refused.exit_code == errors.ConflictError.exit_code
    assert "may still be running until" in refused.output and "--force" in refused.output
    assert js("site", "show", "shop")["state"] == "failed"
    forced = run("reset", "site", "shop", "--force")
    assert forced.stdout.strip() == "site shop is active"
    assert forced.stderr.startswith(f"warning: forced: job {job_id} (site_delete)")


def test_follow_a_running_job_until_it_ends(active_node):
    job_id = js("site", "create", "shop", "--node", "web1")["job_id"]
    from pressluft_lib import queue

    sf = db.session_factory(active_node)
    claimed = queue.claim(sf, "w-test")
    assert claimed.id == job_id
    queue.finish(sf, claimed, "succeeded", worker_id="w-test")
    out = run("jobs", "follow", str(job_id), "--timeout", "10")
    assert f"job {job_id} succeeded" in out.stdout
    assert js("site", "show", "shop")["state"] == "active"


def test_follow_timeout(active_node):
    job_id = js("site", "create", "shop", "--node", "web1")["job_id"]
    result = run("jobs", "follow", str(job_id), "--timeout", "0.3", "--interval", "0.1", ok=False)
    assert result.exit_code == 1 and "still queued" in result.stderr


def test_audit_records_mutations(active_node):
    js("site", "create", "shop", "--node", "web1")
    run("site", "create", "shop", "--node", "web1", ok=False)
    entries = js("audit", "list", "--limit", "20")
    actions = [(a["action"], a["target"], a["result"]) for a in entries]
    assert ("site.create", "site:shop", "conflict") in actions
    assert any(a == "site.create" and r.startswith("job:") for a, _t, r in actions)
    assert ("node.add", "node:web1", "ok") in actions
    assert all(a["actor"] for a in entries)
    assert "site.create" in run("audit", "list").stdout


def test_worker_once_on_an_empty_queue(upgraded):
    out = json.loads(run("worker", "--once", "--json").stdout)
    assert out["jobs"] == [] and out["worker_id"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion(shell):
    out = run("completion", shell).stdout
    assert "_PRESSLUFT_COMPLETE" in out
    assert run("completion", "tcsh", ok=False).exit_code == 2


def test_completion_completes_commands(upgraded, monkeypatch):
    monkeypatch.setenv("_PRESSLUFT_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "pressluft no")
    monkeypatch.setenv("COMP_CWORD", "1")
    result = CliRunner().invoke(cli, [], prog_name="pressluft")
    assert "plain,node" in result.stdout


def test_exit_code_table_is_documented():
    doc = (ROOT / "docs" / "cli.md").read_text()
    for cls in (
        errors.ValidationError,
        errors.NotFound,
        errors.ConflictError,
        errors.TransitionError,
        errors.StaleFencingToken,
        errors.ConfigError,
        errors.SecretError,
    ):
        assert f"| {cls.exit_code} | `{cls.code}`" in doc, cls.__name__
