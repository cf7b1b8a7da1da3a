"""Backups end to end through the control plane: pressluft CLI -> queue -> worker -> a real node,
restic to moto's S3 server with the repository secrets from the control plane's secret store.

backup create -> a completed row with the node's manifest and a restic snapshot; content changed;
restore -> the content at backup time is back and the pre-restore backup is listed; the scheduler
queues a due backup, then a cleanup that removes exactly the expired backup on the node; the
restic password and S3 secret appear in no event, output or leftover file.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pressluft_lib.storage import db
from pressluft_lib.storage.models import JobEvent
from tests.rig import s3
from tests.rig.control_plane import add_node, js, run, work
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE, USER = "vault", "vault_production"
ROOT_DIR = f"/var/www/sites/{SITE}/production"
BACKUPS = f"/var/backups/pressluft/{USER}"
BUCKET = "pressluft-cp"
PASSWORD = "cp-restic-Pw-6a1f-never-shown"


class Stack:
    def __init__(self, node, home, server):
        self.node, self.home, self.s3 = node, home, server

    def wp(self, *args: str) -> str:
        return self.node.exec(
            "runuser", "-u", USER, "--", "wp", f"--path={ROOT_DIR}/current", *args
        ).stdout.strip()


@pytest.fixture(scope="module")
def stack(control_plane, provisioned_node):
    server = s3.start(control_plane)
    try:
        server.create_bucket(BUCKET)
        add_node(provisioned_node)
        js("site", "create", SITE, "--node", provisioned_node.name, "--wordpress", str(wordpress_archive()))
        work()
        repo = js(
            "backup",
            "repo",
            "set",
            "--url",
            server.node_repository(BUCKET, "cp"),
            "--password-stdin",
            "--s3-access-key-id",
            server.access_key_id,
            "--s3-secret-access-key-stdin",
            input=f"{PASSWORD}\n{server.secret_access_key}\n",
        )
        assert repo["restic_password_set"] and repo["s3_secret_access_key_set"]
        yield Stack(provisioned_node, control_plane, server)
    finally:
        server.stop()


def test_backup_then_restore_through_the_control_plane(stack):
    n = stack.node
    stack.wp("option", "update", "pressluft_marker", "at-backup-time")
    n.sh(
        f"runuser -u {USER} -- sh -c 'mkdir -p {ROOT_DIR}/shared/uploads/2026 && "
        f"echo keep > {ROOT_DIR}/shared/uploads/2026/note.txt'"
    )
    made = js("backup", "create", SITE)
    assert [j["id"] for j in work()] == [made["job_id"]]
    shown = js("backup", "show", made["backup_id"])
    assert (shown["state"], shown["trigger"], shown["scope"]) == ("completed", "manual", "full")
    assert shown["location"] == f"{BACKUPS}/{made['backup_id']}"
    assert shown["restic_snapshot"] and shown["manifest"]["id"] == made["backup_id"]
    assert {a["name"] for a in shown["manifest"]["artifacts"]} == {
        "db.sql.gz",
        "uploads.tar",
        "wp-config.php",
        "core.tar",  # a full backup holds the live release (restore --to rebuilds code from it)
    }
    assert shown["include_core"] is True
    assert shown["size_bytes"] > 0
    assert n.stat(shown["location"]) == ("root", "root", "700")

    stack.wp("option", "update", "pressluft_marker", "changed")
    n.exec("rm", f"{ROOT_DIR}/shared/uploads/2026/note.txt")
    restored = js("restore", SITE, made["backup_id"], "--yes")
    assert [j["id"] for j in work()] == [restored["job_id"]]
    assert stack.wp("option", "get", "pressluft_marker") == "at-backup-time"
    assert n.exec("cat", f"{ROOT_DIR}/shared/uploads/2026/note.txt").stdout == "keep\n"
    pre = js("backup", "show", restored["pre_restore_backup_id"])
    assert (pre["state"], pre["trigger"], pre["restore"]["restored"]) == ("completed", "pre_restore", True)
    listed = [b["id"] for b in js("backup", "list", SITE)]
    assert listed == [restored["pre_restore_backup_id"], made["backup_id"]]
    assert js("site", "show", SITE)["environments"][0]["state"] == "active"


def test_schedule_then_cleanup_removes_exactly_the_expired_backup(stack):
    js("backup", "retention", SITE, "--daily", "1", "--weekly", "0", "--monthly", "0")
    js("backup", "create", SITE)
    work()
    before = {b["id"]: b for b in js("backup", "list", SITE)}
    dry = js("backup", "schedule", "--dry-run")["enqueued"]
    assert all(e["type"] != "backup_create" for e in dry), "a backup younger than a day exists"
    due = js("backup", "schedule", "--interval", "0.0003")["enqueued"]  # ~1 s: everything is due
    assert [(e["site"], e["type"]) for e in due] == [(SITE, "backup_create")]
    work()
    newest = due[0]["backup_id"]
    # Kept: the newest, and pre-restore backups younger than a day. Everything else expires.
    expected = sorted(i for i, b in before.items() if b["trigger"] != "pre_restore")
    planned = js("backup", "schedule")["enqueued"]
    assert [(e["type"], sorted(e["remove"])) for e in planned] == [("backup_cleanup", expected)]
    work()
    states = {b["id"]: b["state"] for b in js("backup", "list", SITE)}
    assert set(states) == set(before) - set(expected) | {newest}
    assert set(states.values()) == {"completed"}
    present = set(stack.node.sh(f"ls {BACKUPS}").split())
    assert present == set(states), "exactly the expired backups are gone from the node"
    out = stack.node.exec(
        "env",
        f"RESTIC_REPOSITORY={stack.s3.node_repository(BUCKET, 'cp')}",
        f"RESTIC_PASSWORD={PASSWORD}",
        f"AWS_ACCESS_KEY_ID={stack.s3.access_key_id}",
        f"AWS_SECRET_ACCESS_KEY={stack.s3.secret_access_key}",
        "restic",
        "snapshots",
        "--json",
        "--no-lock",
        "--tag",
        "pressluft",
    ).stdout
    tags = {t[3:] for snap in json.loads(out or "[]") for t in snap.get("tags", []) if t.startswith("id:")}
    assert tags == set(states), "and from restic (forget + prune)"


def test_repository_secrets_appear_nowhere(stack):
    if not any(j["type"] == "backup_create" and j["state"] == "succeeded" for j in js("jobs", "list")):
        js("backup", "create", SITE)
        work()
    secrets = [PASSWORD, stack.s3.secret_access_key]
    with db.session_factory(f"sqlite:///{stack.home / 'pressluft.db'}")() as s:
        events = json.dumps([e.data for e in s.scalars(select(JobEvent))])
    job_ids = [str(j["id"]) for j in js("jobs", "list")]
    outputs = "".join(
        run(*args).stdout
        for args in (
            ["jobs", "list", "--json"],
            ["backup", "list", "--json"],
            ["backup", "repo", "show", "--json"],
            ["audit", "list", "--json"],
            *(["jobs", "show", i, "--json"] for i in job_ids),
        )
    )
    leftovers = [
        p
        for p in stack.home.rglob("*")
        if p.is_file() and p.name != "pressluft.db" and not p.name.startswith("moto-")
    ]
    for secret in secrets:
        assert secret not in events and secret not in outputs
        for path in leftovers:
            assert secret.encode() not in path.read_bytes(), f"a secret was left in {path}"
    manifests = stack.node.sh(f"cat {BACKUPS}/*/manifest.json")
    assert all(secret not in manifests for secret in secrets)
