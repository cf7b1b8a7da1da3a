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


def test_user_is_created_limited_to_its_prefix_and_database_and_saved(capsys, redis):
    out = run(capsys, redis, password=PASSWORD)
    assert out["changed"] is True and f"~{NAME}:*" in out["acl"] and PASSWORD not in out["acl"]
    assert out["database"] == 1 and "+select|1" in out["acl"]
    assert redis.cli(NAME, PASSWORD, "-n", "1", "SET", f"{NAME}:k", "v").strip() == "OK"
    assert "NOPERM" in redis.cli(NAME, PASSWORD, "-n", "1", "SET", "other_production:k", "v")
    assert "NOPERM" in redis.cli(NAME, PASSWORD, "SELECT", "2")
    for command in (["KEYS", "*"], ["DBSIZE"], ["RANDOMKEY"], ["FLUSHALL"], ["FLUSHDB"], ["SWAPDB", "1", "2"],
                    ["MOVE", f"{NAME}:k", "2"], ["COPY", f"{NAME}:k", f"{NAME}:c", "DB", "2"]):
        assert "NOPERM" in redis.cli(NAME, PASSWORD, "-n", "1", *command), command
    assert "WRONGPASS" in redis.cli(NAME, "not-the-password", "PING")
    assert f"user {NAME} " in redis.acl.read_text()  # ACL SAVE: survives a restart
    # Redis stores -@dangerous +info as the single commands: the next run must still see no change.
    again = run(capsys, redis, password=PASSWORD)
    assert again["changed"] is False and again["database"] == 1, again
    assert "pressluft-acl-probe" not in redis.users()


def test_two_users_cannot_list_or_touch_each_others_keys(capsys, redis):
    """What the Redis Object Cache plugin's selective flush does (SCAN MATCH prefix*, then DEL in a
    script, as the user) stays inside the user's own database: A lists and deletes its keys only."""
    a = run(capsys, redis, password=PASSWORD)
    b = run(capsys, redis, name="shop_staging", password=PASSWORD + "b")
    assert (a["database"], b["database"]) == (1, 2)
    b_cli = ("shop_staging", PASSWORD + "b", "-n", "2")
    assert redis.cli(*b_cli, "SET", "shop_staging:wp_:users:admin", "v").strip() == "OK"
    redis.cli(NAME, PASSWORD, "-n", "1", "SET", f"{NAME}:wp_:options:alloptions", "v")
    flush = ("local cur = 0 local i = 0 local tmp repeat tmp = redis.call('SCAN', cur, 'MATCH', ARGV[1]) "
             "cur = tonumber(tmp[1]) for _, v in pairs(tmp[2]) do redis.call('del', v) i = i + 1 end "
             "until 0 == cur return i")
    for prefix in (f"{NAME}:*", "*"):  # its own prefix, and everything it could see
        redis.cli(NAME, PASSWORD, "-n", "1", "EVAL", flush, "0", prefix)
    assert redis.cli(NAME, PASSWORD, "-n", "1", "SCAN", "0").split() == ["0"]
    assert redis.cli(NAME, PASSWORD, "SCAN", "0").split() == ["0"]  # database 0 stays empty
    assert "NOPERM" in redis.cli(NAME, PASSWORD, "-n", "1", "GET", "shop_staging:wp_:users:admin")
    select = redis.cli(NAME, PASSWORD, "EVAL", "redis.call('SELECT', '2') return 1", "0")
    assert "can't run this command" in select
    assert redis.cli(*b_cli, "SCAN", "0").split() == ["0", "shop_staging:wp_:users:admin"]


def test_a_user_keeps_its_database_and_a_full_server_is_refused(capsys, redis):
    redis.cli("pressluft-admin", ADMIN_PASSWORD, "ACL", "SETUSER", "old", "on", ">x", "~old:*", "+select|1")
    assert run(capsys, redis, password=PASSWORD)["database"] == 2
    for n in range(3, 16):
        redis.cli("pressluft-admin", ADMIN_PASSWORD, "ACL", "SETUSER", f"u{n}", "on", ">x", f"+select|{n}")
    assert run(capsys, redis, password=PASSWORD)["database"] == 2
    out = run(capsys, redis, name="shop_staging", password=PASSWORD)
    assert out.get("failed") is True and "all 15 Redis databases are taken" in out["msg"], out
    assert "shop_staging" not in redis.users()


def test_password_and_pattern_changes_are_converged(capsys, redis):
    run(capsys, redis, password=PASSWORD)
    out = run(capsys, redis, password="another-password-0123456", key_pattern="shop_staging:*")
    assert out["changed"] is True and "~shop_staging:*" in out["acl"]
    assert "WRONGPASS" in redis.cli(NAME, PASSWORD, "PING")
    new = (NAME, "another-password-0123456", "-n", "1")
    assert redis.cli(*new, "SET", "shop_staging:k", "v").strip() == "OK"
    assert "NOPERM" in redis.cli(*new, "SET", f"{NAME}:k", "v")


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


def test_a_removed_users_keys_go_with_it_and_a_new_owner_starts_empty(capsys, redis):
    """Key names carry user logins: the next environment given the database must not list them."""
    run(capsys, redis, password=PASSWORD)
    redis.cli(NAME, PASSWORD, "-n", "1", "SET", f"{NAME}:wp:userlogins:alice", "1")
    assert run(capsys, redis, state="absent")["changed"] is True
    admin = ("pressluft-admin", ADMIN_PASSWORD, "-n", "1")
    assert redis.cli(*admin, "SCAN", "0").split() == ["0"]
    redis.cli(*admin, "SET", "left:behind", "1")  # e.g. by hand, or a removal that stopped half-way
    new = run(capsys, redis, name="blog_production", password=PASSWORD)
    assert new["database"] == 1 and redis.cli(*admin, "SCAN", "0").split() == ["0"]
    redis.cli("blog_production", PASSWORD, "-n", "1", "SET", "blog_production:k", "v")
    assert run(capsys, redis, name="blog_production", password=PASSWORD)["changed"] is False
    assert redis.cli(*admin, "SCAN", "0").split() == ["0", "blog_production:k"]  # kept while it owns it
