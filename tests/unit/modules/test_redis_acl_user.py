"""pressluft.wordpress.redis_acl_user run in process against a real, private redis-server.

The server listens only on a Unix socket in the test's temporary directory (no TCP port) with its own
ACL file, so ACL SAVE writes there. What the user may do is checked with redis-cli, not our client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fencing
from ansible_collections.pressluft.wordpress.plugins.modules import redis_acl_user

from tests.rig.ansible import run_module

ADMIN_PASSWORD = "admin-password-for-tests-0123"
NAME = "shop_production"
PASSWORD = "user-password-for-tests-0123"

pytestmark = pytest.mark.skipif(not shutil.which("redis-server") or not shutil.which("redis-cli"),
                                reason="needs redis-server and redis-cli (Debian package redis-server)")


class Server:
    def __init__(self, tmp):
        self.dir = tmp
        self.sock = str(tmp / "redis.sock")
        self.acl = tmp / "users.acl"
        self.acl.write_text("user default off\n"
                            f"user pressluft-admin on >{ADMIN_PASSWORD} ~* &* +@all\n")
        self.pass_file = tmp / "admin.pass"
        self.pass_file.write_text(ADMIN_PASSWORD + "\n")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--aclfile", str(self.acl), "--dir", str(tmp), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.cli("pressluft-admin", ADMIN_PASSWORD, "PING").strip() != "PONG":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not answer within 30 s")
            time.sleep(0.05)

    def cli(self, user: str, password: str, *args: str) -> str:
        """What redis-cli says (a failed AUTH goes to stderr); REDISCLI_AUTH keeps the password off argv."""
        done = subprocess.run(["redis-cli", "-s", self.sock, "--user", user, *args], capture_output=True,
                              text=True, env={**os.environ, "REDISCLI_AUTH": password}, check=False)
        return done.stdout + done.stderr

    def users(self) -> list[str]:
        return self.cli("pressluft-admin", ADMIN_PASSWORD, "ACL", "USERS").split()


@pytest.fixture
def redis(tmp_path):
    server = Server(tmp_path)
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=30)


def end_of_process():
    """What the end of a module process does: its fencing locks go with its descriptors."""
    for fd in _fencing._HELD.values():
        os.close(fd)
    _fencing._HELD.clear()


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    end_of_process()


def run(capsys, redis, **args):
    return run_module(redis_acl_user, capsys, redis.dir, {
        "name": NAME, "socket": redis.sock, "admin_password_file": str(redis.pass_file), **args})


def test_user_is_created_limited_to_its_prefix_and_saved(capsys, redis):
    out = run(capsys, redis, password=PASSWORD)
    assert out["changed"] is True and f"~{NAME}:*" in out["acl"] and PASSWORD not in out["acl"]
    assert redis.cli(NAME, PASSWORD, "SET", f"{NAME}:k", "v").strip() == "OK"
    assert "NOPERM" in redis.cli(NAME, PASSWORD, "SET", "other_production:k", "v")
    for command in (["SCAN", "0"], ["KEYS", "*"], ["DBSIZE"], ["RANDOMKEY"], ["FLUSHALL"]):
        assert "NOPERM" in redis.cli(NAME, PASSWORD, *command), command
    assert "WRONGPASS" in redis.cli(NAME, "not-the-password", "PING")
    assert f"user {NAME} " in redis.acl.read_text()  # ACL SAVE: survives a restart
    assert run(capsys, redis, password=PASSWORD)["changed"] is False


def test_password_and_pattern_changes_are_converged(capsys, redis):
    run(capsys, redis, password=PASSWORD)
    out = run(capsys, redis, password="another-password-0123456", key_pattern="shop_staging:*")
    assert out["changed"] is True and "~shop_staging:*" in out["acl"]
    assert "WRONGPASS" in redis.cli(NAME, PASSWORD, "PING")
    assert redis.cli(NAME, "another-password-0123456", "SET", "shop_staging:k", "v").strip() == "OK"
    assert "NOPERM" in redis.cli(NAME, "another-password-0123456", "SET", f"{NAME}:k", "v")


def test_check_mode_and_absent(capsys, redis):
    out = run(capsys, redis, password=PASSWORD, _ansible_check_mode=True)
    assert out["changed"] is True and NAME not in redis.users()
    run(capsys, redis, password=PASSWORD)
    assert run(capsys, redis, state="absent", _ansible_check_mode=True)["changed"] is True
    assert NAME in redis.users()
    assert run(capsys, redis, state="absent")["changed"] is True
    assert NAME not in redis.users() and f"user {NAME} " not in redis.acl.read_text()
    assert run(capsys, redis, state="absent")["changed"] is False


@pytest.mark.parametrize(("args", "message"), [
    ({"name": "shop production"}, "invalid Redis user name"),
    ({"name": "shop>x"}, "invalid Redis user name"),
    ({"admin_password_file": "/nonexistent/admin.pass"}, "cannot read the Redis admin password"),
    ({"fencing_token": 3}, "missing parameter(s) required by 'fencing_token': site"),
])
def test_bad_input_is_refused_and_changes_nothing(capsys, redis, args, message):
    out = run(capsys, redis, **{"password": PASSWORD, **args})
    assert out.get("failed") is True and message in out["msg"], out
    assert NAME not in redis.users() and "shop production" not in redis.users()


def test_wrong_admin_password_says_so(capsys, redis, tmp_path):
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-admin-password\n")
    out = run(capsys, redis, password=PASSWORD, admin_password_file=str(wrong))
    assert out.get("failed") is True and "WRONGPASS" in out["msg"] and redis.sock in out["msg"], out


def test_stale_fencing_token_changes_nothing(capsys, redis, tmp_path):
    fencing = {"site": "shop", "fencing_dir": str(tmp_path / "fencing")}
    assert run(capsys, redis, password=PASSWORD, fencing_token=9, **fencing)["changed"] is True
    end_of_process()
    before = redis.acl.read_text()
    out = run(capsys, redis, state="absent", fencing_token=8, **fencing)
    assert out.get("stale_fencing_token") is True, out
    assert NAME in redis.users() and redis.acl.read_text() == before
