"""backup's main() in process on this host: input checks, and the paths that finish before WP-CLI or
restic would run (existing backups, check mode, verification, absent).

The real runs are in tests/integration/test_backup.py.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible_collections.pressluft.wordpress.plugins.modules import backup

from tests.rig.ansible import run_module


def run(capsys, tmp_path, **args) -> dict:
    defaults = {"site": "shop", "id": "b-1", "root": str(tmp_path / "env"),
                "backup_dir": str(tmp_path / "backups")}
    return run_module(backup, capsys, tmp_path, {**defaults, **args})


def make_backup(tmp_path, backup_id="b-1", site="shop", env="production") -> str:
    dest = tmp_path / "backups" / backup_id
    dest.mkdir(parents=True)
    data = b"-- dump\n"
    (dest / "db.sql.gz").write_bytes(data)
    manifest = {"format": 2, "id": backup_id, "site": site, "env": env, "scope": "db",
                "artifacts": [{"name": "db.sql.gz", "size": len(data),
                               "sha256": hashlib.sha256(data).hexdigest()}]}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return str(dest)


@pytest.mark.parametrize(("args", "message"), [
    ({"id": "../etc"}, "invalid backup id"),
    ({"id": ".hidden"}, "invalid backup id"),
    ({"id": "a" * 65}, "invalid backup id"),
    ({"site": "root"}, "reserved"),
    ({"env": "Prod"}, "invalid environment name"),
    ({"run_as": "root"}, "must not be root"),
    ({"restic_repository": "/srv/restic"}, "restic_password is required"),
    ({"scope": "all"}, "value of scope must be one of"),
])
def test_bad_input_fails_before_anything(capsys, tmp_path, args, message):
    out = run(capsys, tmp_path, **args)
    assert out.get("failed") and message in out["msg"], out
    assert not (tmp_path / "backups").exists()


def test_check_mode_creates_nothing(capsys, tmp_path):
    out = run(capsys, tmp_path, _ansible_check_mode=True)
    assert out["changed"] is True and not out.get("failed")
    assert not (tmp_path / "backups").exists()


def test_an_existing_complete_backup_is_not_redone(capsys, tmp_path):
    dest = make_backup(tmp_path)
    out = run(capsys, tmp_path)
    assert out["changed"] is False and out["location"] == dest and out["manifest"]["id"] == "b-1"


def test_a_backup_of_another_environment_is_refused(capsys, tmp_path):
    make_backup(tmp_path, env="staging")
    out = run(capsys, tmp_path, state="restored")
    assert out.get("failed") and "holds a backup of shop_staging" in out["msg"]


def test_restore_verifies_before_touching_anything(capsys, tmp_path):
    dest = make_backup(tmp_path)
    with open(os.path.join(dest, "db.sql.gz"), "ab") as f:
        f.write(b"x")
    out = run(capsys, tmp_path, state="restored")
    assert out.get("failed") and "does not match its manifest, nothing was restored" in out["msg"]
    assert out["problems"] == ["db.sql.gz: size 9, manifest says 8"]
    assert out["restored"] is False


def test_restore_in_check_mode_verifies_and_stops(capsys, tmp_path):
    make_backup(tmp_path)
    out = run(capsys, tmp_path, state="restored", _ansible_check_mode=True)
    assert out["changed"] is True and out["restored"] is False and not out.get("failed")


def test_absent_removes_the_local_backup_once(capsys, tmp_path):
    dest = make_backup(tmp_path)
    assert run(capsys, tmp_path, state="absent", _ansible_check_mode=True)["changed"] is True
    assert os.path.isdir(dest)
    assert run(capsys, tmp_path, state="absent")["changed"] is True
    assert not os.path.exists(dest)
    assert run(capsys, tmp_path, state="absent")["changed"] is False
