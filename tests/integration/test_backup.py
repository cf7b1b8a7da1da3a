"""Backups on a real node: backup_create / env_restore / backup_cleanup with restic on moto's S3 server."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from tests.rig import s3
from tests.rig.ansible import run_playbook
from tests.rig.nodes import inventory
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE, ENV, USER = "alpha", "production", "alpha_production"
ROOT_DIR = f"/var/www/sites/{SITE}/{ENV}"
BACKUPS = f"/var/backups/pressluft/{USER}"
BUCKET = "pressluft-backups"


class Stack:
    def __init__(self, node, tmp, server):
        self.node, self.tmp, self.s3 = node, tmp, server
        self.restic_password = "restic-" + secrets.token_urlsafe(18)
        self.outputs: list[str] = []  # every playbook's output, searched for secrets

    def repo_vars(self, prefix: str = "repo", port: int | None = None) -> dict:
        repo = self.s3.node_repository(BUCKET, prefix)
        if port is not None:
            repo = f"s3:http://{s3.NODE_HOST}:{port}/{BUCKET}/{prefix}"
        return {"pressluft_restic_repository": repo, "pressluft_restic_password": self.restic_password,
                "pressluft_s3_access_key_id": self.s3.access_key_id,
                "pressluft_s3_secret_access_key": self.s3.secret_access_key}

    def play(self, playbook: str, **extra):
        extravars = {"pressluft_target": "nodes", "pressluft_site": SITE, **extra}
        res = run_playbook(playbook, inventory([self.node]), self.tmp, extravars=extravars,
                           env={"ANSIBLE_SHOW_CUSTOM_STATS": "True"})
        self.outputs.append(res.stdout + res.stderr)
        try:
            res.custom = json.loads(res.stdout).get("global_custom_stats", {})
        except json.JSONDecodeError:
            res.custom = {}
        return res

    def wp(self, *args: str) -> str:
        return self.node.exec("runuser", "-u", USER, "--", "wp", f"--path={ROOT_DIR}/current", *args).stdout

    def state(self) -> tuple[str, str, str]:
        """(DB dump without its date line, uploads tree listing with hashes, wp-config hash)."""
        dump = self.wp("db", "export", "-")
        dump = "\n".join(line for line in dump.splitlines() if not line.startswith("-- Dump completed"))
        tree = self.node.sh(f"cd {ROOT_DIR}/shared && "
                            "find uploads -printf '%p %y %m %U %G %s %T@\\n' | sort && "
                            "find uploads -type f -print0 | sort -z | xargs -0r sha256sum")
        config = self.node.sh(f"sha256sum {ROOT_DIR}/shared/wp-config.php")
        return dump, tree, config

    def settle(self, timeout: float = 90) -> None:
        """Wait until WP-cron that a WP-CLI call spawned (a loopback request to wp-cron.php, which may
        write seconds later) is done: no doing_cron lock and the same dump twice, 2 s apart."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            locked = self.node.exec("mysql", "-N", "-e", f"SELECT COUNT(*) FROM {USER}.wp_options "
                                    "WHERE option_name = '_transient_doing_cron'").stdout.strip()
            dump = self.state()[0]
            if locked == "0" and dump == last:
                return
            assert time.monotonic() < deadline, f"the database kept changing for {timeout:.0f}s"
            last = dump
            time.sleep(2)

    def restic_snapshots(self, prefix: str = "repo") -> list[dict]:
        out = self.node.exec("env", f"RESTIC_REPOSITORY={self.s3.node_repository(BUCKET, prefix)}",
                             f"RESTIC_PASSWORD={self.restic_password}",
                             f"AWS_ACCESS_KEY_ID={self.s3.access_key_id}",
                             f"AWS_SECRET_ACCESS_KEY={self.s3.secret_access_key}",
                             "restic", "snapshots", "--json", "--no-lock", "--tag", "pressluft").stdout
        return json.loads(out or "[]") or []


@pytest.fixture(scope="module")
def stack(provisioned_node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backup")
    server = s3.start(tmp)
    try:
        server.create_bucket(BUCKET)
        created = run_playbook("site_create.yml", inventory([provisioned_node]), tmp, extravars={
            "pressluft_target": "nodes", "pressluft_site": SITE,
            "pressluft_wordpress_src": str(wordpress_archive())})
        assert created.rc == 0, created.explain()
        yield Stack(provisioned_node, tmp, server)
    finally:
        server.stop()


def backup_of(res) -> dict:
    got = res.custom.get("pressluft_backup")
    assert isinstance(got, dict), res.explain()
    return got


def test_round_trip_through_restic_restores_db_and_files_exactly(stack):
    n = stack.node
    stack.wp("option", "update", "pressluft_marker", "at-backup-time")
    n.sh(f"runuser -u {USER} -- sh -c 'mkdir -p {ROOT_DIR}/shared/uploads/2026/12 && "
         f"head -c 300000 /dev/urandom > {ROOT_DIR}/shared/uploads/2026/12/photo.jpg && "
         f"echo keep > {ROOT_DIR}/shared/uploads/2026/12/note.txt'")
    stack.settle()
    before = stack.state()

    res = stack.play("backup_create.yml", pressluft_backup_id="rt-1", **stack.repo_vars())
    assert res.rc == 0, res.explain()
    got = backup_of(res)
    manifest = got["manifest"]
    assert got["id"] == manifest["id"] == "rt-1" and got["location"] == f"{BACKUPS}/rt-1"
    assert got["restic_snapshot"] and got["restic_data_added"] > 0
    # A full backup holds the live release too (core.tar), so a restore can rebuild the code elsewhere.
    artifacts = {a["name"] for a in manifest["artifacts"]}
    assert artifacts == {"db.sql.gz", "uploads.tar", "wp-config.php", "core.tar"}
    assert manifest["tables"]["wp_options"] > 10 and manifest["tables"]["wp_users"] == 1
    assert manifest["release"] and manifest["wordpress_version"] and manifest["scope"] == "full"
    # 0700 root directory, 0600 root files.
    assert n.stat(f"{BACKUPS}/rt-1") == ("root", "root", "700")
    for name in ("db.sql.gz", "uploads.tar", "wp-config.php", "core.tar", "manifest.json"):
        assert n.stat(f"{BACKUPS}/rt-1/{name}") == ("root", "root", "600"), name
    again = stack.play("backup_create.yml", pressluft_backup_id="rt-1", **stack.repo_vars())
    assert again.rc == 0 and again.changed == 0, again.explain()

    # Change and delete content, drop the local copy: the restore must come from S3.
    stack.wp("option", "update", "pressluft_marker", "changed")
    stack.wp("option", "update", "blogname", "Defaced")
    n.sh(f"rm {ROOT_DIR}/shared/uploads/2026/12/photo.jpg && echo new > {ROOT_DIR}/shared/uploads/new.txt")
    assert stack.state() != before
    n.exec("rm", "-rf", f"{BACKUPS}/rt-1")
    stack.settle()  # nothing may write into the database after the restore

    res = stack.play("env_restore.yml", pressluft_backup_id="rt-1", pressluft_pre_restore_backup_id="rt-pre",
                     **stack.repo_vars())
    assert res.rc == 0, res.explain()
    assert res.custom.get("pressluft_restore") == {"id": "rt-1", "restored": True}
    assert backup_of(res)["id"] == "rt-pre" and backup_of(res)["restic_snapshot"]
    after = stack.state()
    assert after[0] == before[0], "the database differs from the state at backup time"
    assert after[1] == before[1], "the uploads differ from the state at backup time"
    assert after[2] == before[2]
    assert stack.wp("option", "get", "pressluft_marker").strip() == "at-backup-time"
    # The pre-restore backup holds the changed state.
    pre = json.loads(n.exec("cat", f"{BACKUPS}/rt-pre/manifest.json").stdout)
    assert pre["id"] == "rt-pre" and pre["scope"] == "full"
    tags = [set(s["tags"]) for s in stack.restic_snapshots()]
    assert {"pressluft", USER, "id:rt-1"} in tags and {"pressluft", USER, "id:rt-pre"} in tags


def test_incremental_backup_of_an_unchanged_site_uploads_almost_nothing(stack):
    # 4 MB of incompressible uploads, so that re-sending them would show.
    inc = f"{ROOT_DIR}/shared/uploads/inc"
    stack.node.sh(f"runuser -u {USER} -- sh -c 'mkdir -p {inc} && "
                  f"for i in 1 2 3 4; do head -c 1048576 /dev/urandom > {inc}/$i.bin; done'")
    first = stack.play("backup_create.yml", pressluft_backup_id="inc-1", **stack.repo_vars("inc"))
    assert first.rc == 0, first.explain()
    second = stack.play("backup_create.yml", pressluft_backup_id="inc-2", **stack.repo_vars("inc"))
    assert second.rc == 0, second.explain()
    full, incremental = backup_of(first)["restic_data_added"], backup_of(second)["restic_data_added"]
    print(f"restic data_added: first backup {full} bytes, unchanged site {incremental} bytes")
    assert full > 4 * 1048576
    assert incremental < 256 * 1024, f"an unchanged site added {incremental} bytes"
    uploads = next(a for a in backup_of(second)["manifest"]["artifacts"] if a["name"] == "uploads.tar")
    assert uploads.get("reused") is True  # hard-linked from inc-1, not written again
    inode = stack.node.sh(f"stat -c %i {BACKUPS}/inc-1/uploads.tar {BACKUPS}/inc-2/uploads.tar").split()
    assert inode[0] == inode[1]


def test_s3_unreachable_fails_clearly_and_keeps_the_local_backup(stack):
    closed = s3.free_port()
    res = stack.play("backup_create.yml", pressluft_backup_id="down-1", **stack.repo_vars(port=closed))
    assert res.rc != 0
    got = backup_of(res)
    assert got["location"] == f"{BACKUPS}/down-1" and got["manifest"]["id"] == "down-1"
    assert "restic" in got["error"] and "connection refused" in got["error"]
    assert f"local backup is kept at {BACKUPS}/down-1" in got["error"]
    assert "local backup is kept" in res.stdout
    files = stack.node.exec("ls", f"{BACKUPS}/down-1").stdout.split()
    assert set(files) == {"db.sql.gz", "uploads.tar", "wp-config.php", "core.tar", "manifest.json"}


def test_tampered_backup_is_refused_and_nothing_changes(stack):
    res = stack.play("backup_create.yml", pressluft_backup_id="tamper-1", pressluft_backup_scope="db")
    assert res.rc == 0, res.explain()
    assert [a["name"] for a in backup_of(res)["manifest"]["artifacts"]] == ["db.sql.gz"]
    stack.wp("option", "update", "pressluft_marker", "current-state")
    stack.settle()
    # Flip one byte in the middle of the dump.
    stack.node.sh(f"f={BACKUPS}/tamper-1/db.sql.gz; s=$(stat -c %s $f); "
                  "printf 'X' | dd of=$f bs=1 seek=$((s / 2)) conv=notrunc status=none")
    before = stack.state()
    res = stack.play("env_restore.yml", pressluft_backup_id="tamper-1",
                     pressluft_pre_restore_backup_id="tamper-pre")
    assert res.rc != 0
    assert "does not match its manifest" in res.stdout and "db.sql.gz" in res.stdout
    assert "pressluft_restore" not in res.custom
    assert stack.state() == before
    assert stack.wp("option", "get", "pressluft_marker").strip() == "current-state"
    # The pre-restore backup was taken and is complete.
    assert stack.node.exec("test", "-f", f"{BACKUPS}/tamper-pre/manifest.json", check=False).returncode == 0


def test_cleanup_removes_exactly_the_given_backups_locally_and_in_restic(stack):
    for backup_id in ("cl-1", "cl-2"):
        res = stack.play("backup_create.yml", pressluft_backup_id=backup_id, **stack.repo_vars("clean"))
        assert res.rc == 0, res.explain()
    res = stack.play("backup_cleanup.yml", pressluft_backup_remove=["cl-1"], **stack.repo_vars("clean"))
    assert res.rc == 0, res.explain()
    assert res.custom.get("pressluft_backup_removed") == ["cl-1"]
    assert stack.node.exec("test", "-e", f"{BACKUPS}/cl-1", check=False).returncode == 1
    assert stack.node.exec("test", "-f", f"{BACKUPS}/cl-2/manifest.json", check=False).returncode == 0
    tags = [set(s["tags"]) for s in stack.restic_snapshots("clean")]
    assert {"pressluft", USER, "id:cl-2"} in tags and not any("id:cl-1" in t for t in tags), tags
    again = stack.play("backup_cleanup.yml", pressluft_backup_remove=["cl-1"], **stack.repo_vars("clean"))
    assert again.rc == 0 and again.changed == 0, again.explain()


@pytest.mark.parametrize(("playbook", "extra"), [
    ("backup_create.yml", {"pressluft_backup_id": "../etc"}),
    ("backup_create.yml", {"pressluft_backup_id": "ok-1", "pressluft_backup_scope": "everything"}),
    ("backup_create.yml", {"pressluft_backup_id": "ok-1", "pressluft_restic_repository": "s3:http://x/b"}),
    ("env_restore.yml", {"pressluft_backup_id": "ok-1"}),
    ("backup_cleanup.yml", {"pressluft_backup_remove": "ok-1"}),
])
def test_bad_input_is_refused_before_the_node(stack, playbook, extra):
    res = stack.play(playbook, **extra)
    assert res.rc != 0
    assert not any(name.startswith(stack.node.name) for name, _changed in res.tasks), res.explain()
    assert stack.node.exec("test", "-e", f"{BACKUPS}/ok-1", check=False).returncode == 1


def test_secrets_appear_in_no_output_or_manifest(stack):
    res = stack.play("backup_create.yml", pressluft_backup_id="sec-1", **stack.repo_vars("sec"))
    assert res.rc == 0, res.explain()
    stored = json.loads(stack.node.exec("cat", f"/etc/pressluft/secrets/{USER}.json").stdout)
    db_password = stored["db_password"]
    assert len(db_password) >= 12
    needles = [db_password, stack.restic_password, stack.s3.secret_access_key]
    manifests = stack.node.sh(f"cat {BACKUPS}/*/manifest.json {BACKUPS}/*/restic.json 2>/dev/null")
    for text in [*stack.outputs, manifests]:
        for secret in needles:
            assert secret not in text


def test_failed_import_puts_the_database_back_and_leaves_the_files(stack):
    """A backup that verifies but whose dump breaks half-way: the env ends as it was before the restore."""
    res = stack.play("backup_create.yml", pressluft_backup_id="broken-1")
    assert res.rc == 0, res.explain()
    # Keep the first half of the dump (it drops and recreates tables), then a statement that fails;
    # the manifest is rewritten to match, so only the import can notice.
    stack.node.sh(f"""cd {BACKUPS}/broken-1 && python3 - <<'PY'
import gzip, hashlib, json, os
sql = gzip.open('db.sql.gz').read()
broken = sql[:len(sql) // 2].rsplit(b'\\n', 1)[0] + b'\\nTHIS IS NOT SQL;\\n'
with open('db.sql.gz', 'wb') as f:
    f.write(gzip.compress(broken))
m = json.load(open('manifest.json'))
for a in m['artifacts']:
    data = open(a['name'], 'rb').read()
    a['size'], a['sha256'] = len(data), hashlib.sha256(data).hexdigest()
json.dump(m, open('manifest.json', 'w'))
PY""")
    stack.wp("option", "update", "pressluft_marker", "before-broken-restore")
    stack.node.sh(f"echo changed > {ROOT_DIR}/shared/uploads/changed.txt")
    stack.settle()
    before = stack.state()
    res = stack.play("env_restore.yml", pressluft_backup_id="broken-1",
                     pressluft_pre_restore_backup_id="broken-pre")
    assert res.rc != 0
    assert "wp db import failed" in res.stdout and "the database was put back" in res.stdout
    assert stack.state() == before
    leftovers = stack.node.sh(f"ls -a {ROOT_DIR}/shared {ROOT_DIR}/tmp")
    assert ".restore-" not in leftovers and ".pressluft-backup-" not in leftovers, leftovers
