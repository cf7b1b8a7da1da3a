"""pressluft.wordpress.release_switch run for real (main() in process) against temporary environment trees."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fencing, _releases
from ansible_collections.pressluft.wordpress.plugins.modules import release_switch

from tests.rig.ansible import run_module, run_playbook

STATE = ".pressluft-releases.json"
ROOT = Path(__file__).resolve().parents[3]


class Env:
    """A tree like site_env/wp_site make: releases/<name>/, current -> absolute release path."""

    def __init__(self, root):
        self.root = root
        (root / "releases").mkdir(parents=True)

    def release(self, name: str) -> str:
        path = self.root / "releases" / name
        path.mkdir()
        (path / "index.php").write_text(f"<?php echo '{name}';\n")
        return name

    def link(self, name: str) -> None:
        os.symlink(str(self.root / "releases" / name), str(self.root / "current"))

    def current(self) -> str | None:
        link = self.root / "current"
        return os.readlink(link) if link.is_symlink() else None

    def state(self) -> dict:
        return json.loads((self.root / STATE).read_text())

    def snapshot(self) -> tuple:
        """Everything the module may change: the state file's bytes, the link, the directories."""
        state = self.root / STATE
        return (state.read_bytes() if state.exists() else None, self.current(),
                sorted(os.listdir(self.root)), sorted(os.listdir(self.root / "releases")))


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path / "shop" / "production")


def run(capsys, tree: Env | SimpleNamespace, state: str, **args) -> dict:
    """One module run, as a process would do it: the locks die with it."""
    try:
        return run_module(release_switch, capsys, tree.root.parent,
                          {"site": "shop", "root": str(tree.root), "state": state, **args})
    finally:
        for held in (_fencing._HELD, _releases._HELD):
            for fd in held.values():
                os.close(fd)
            held.clear()


def ok(result: dict, changed: bool) -> dict:
    assert not result.get("failed"), result
    assert result["changed"] is changed, result
    return result


def refused(result: dict, message: str) -> dict:
    assert result.get("failed") is True and message in result["msg"], result
    return result


def test_first_deploy_creates_current_and_is_idempotent(capsys, env):
    ok(run(capsys, env, "building", release="r1"), True)  # before its directory exists
    assert env.state()["releases"]["r1"]["mark"] == "building"
    env.release("r1")
    refused(run(capsys, env, "live", release="r1"), "it is marked building")
    assert env.current() is None
    ok(run(capsys, env, "healthy", release="r1"), True)
    r = ok(run(capsys, env, "live", release="r1"), True)
    assert (r["current"], r["previous"], r["last_known_good"]) == ("r1", None, None)
    assert env.current() == str(env.root / "releases" / "r1"), "absolute, as wp_site makes it"
    r = ok(run(capsys, env, "good"), True)
    assert r["last_known_good"] == "r1" and r["release"] == "r1"
    before = env.snapshot()
    for state in ("live", "healthy", "good"):
        ok(run(capsys, env, state, release="r1"), False)
    assert env.snapshot() == before
    mode = os.stat(env.root / STATE)
    assert stat.S_IMODE(mode.st_mode) == 0o640 and mode.st_uid == os.geteuid()
    assert [n for n in os.listdir(env.root) if ".tmp" in n] == []


def test_adopts_what_wp_site_made(capsys, env):
    env.release("6.1.9")
    env.link("6.1.9")
    r = ok(run(capsys, env, "building", release="r2"), True)
    assert r["releases"] == {"6.1.9": "healthy", "r2": "building"}
    assert (r["current"], r["previous"], r["last_known_good"]) == ("6.1.9", None, "6.1.9")
    saved = env.state()
    assert saved["current"] == "6.1.9" and saved["last_known_good"] == "6.1.9"
    assert saved["releases"]["6.1.9"]["created"] < saved["releases"]["r2"]["created"]
    # Found later (made without the module): adopted as healthy, the bookkeeping does not move.
    env.release("r3")
    r = ok(run(capsys, env, "live", release="r3"), True)
    assert (r["current"], r["previous"], r["last_known_good"]) == ("r3", "6.1.9", "6.1.9")


def test_switch_records_previous_and_refuses_bad_releases(capsys, env):
    for name in ("a", "b", "c", "d"):
        env.release(name)
    env.link("a")
    ok(run(capsys, env, "failed", release="c", reason="pre-switch check: HTTP 500"), True)
    ok(run(capsys, env, "building", release="d"), True)
    r = ok(run(capsys, env, "live", release="b"), True)
    assert (r["current"], r["previous"]) == ("b", "a")
    before = env.snapshot()
    refused(run(capsys, env, "live", release="c"), "it is marked failed (pre-switch check: HTTP 500)")
    refused(run(capsys, env, "live", release="d"), "it is marked building")
    refused(run(capsys, env, "live", release="zz"), "does not exist")
    refused(run(capsys, env, "building", release="b"), "is current (live)")
    assert env.snapshot() == before
    ok(run(capsys, env, "live", release="b"), False)
    assert env.snapshot() == before


def test_rollback_to_previous_marks_the_bad_release(capsys, env):
    env.release("a")
    env.release("b")
    env.link("a")
    ok(run(capsys, env, "live", release="b"), True)
    r = ok(run(capsys, env, "rollback", reason="GET / answered 500"), True)
    assert (r["current"], r["previous"], r["release"]) == ("a", "b", "a")
    assert env.current() == str(env.root / "releases" / "a")
    assert env.state()["releases"]["b"] == {**env.state()["releases"]["b"], "mark": "rolled_back",
                                            "reason": "GET / answered 500"}
    before = env.snapshot()
    # A second rollback would go back to the bad one: refused. Naming the live one changes nothing.
    refused(run(capsys, env, "rollback"), "switch to the previous release b: it is marked rolled_back")
    ok(run(capsys, env, "rollback", release="a"), False)
    assert env.snapshot() == before


def test_rollback_to_a_named_release_and_default_reason(capsys, env):
    for name in ("a", "b", "c"):
        env.release(name)
    env.link("a")
    ok(run(capsys, env, "live", release="b"), True)
    ok(run(capsys, env, "live", release="c"), True)
    r = ok(run(capsys, env, "rollback", release="a"), True)
    assert (r["current"], r["previous"]) == ("a", "c")
    assert env.state()["releases"]["c"]["reason"] == "rolled back to a"
    assert r["releases"] == {"a": "healthy", "b": "healthy", "c": "rolled_back"}
    before = env.snapshot()
    refused(run(capsys, env, "rollback", release="c"), "refusing to switch to the rollback release c")
    refused(run(capsys, env, "rollback", release="gone"), "does not exist")
    assert env.snapshot() == before


def test_rollback_without_current_or_previous_fails_clearly(capsys, env):
    env.release("a")
    refused(run(capsys, env, "rollback"), "nothing to roll back")
    assert env.snapshot()[:2] == (None, None)
    env.link("a")
    refused(run(capsys, env, "rollback"), "no previous release to roll back to from a")
    assert env.snapshot()[:2] == (None, str(env.root / "releases" / "a"))


def test_good_needs_a_healthy_existing_release(capsys, env):
    refused(run(capsys, env, "good"), "no current release")
    env.release("a")
    env.release("b")
    env.link("a")
    ok(run(capsys, env, "failed", release="b"), True)
    before = env.snapshot()
    refused(run(capsys, env, "good", release="b"), "is marked failed")
    refused(run(capsys, env, "good", release="nope"), "does not exist")
    assert env.snapshot() == before
    ok(run(capsys, env, "good"), False)  # a, adopted as the last known good when the file was made


def test_prune_removes_failed_first_and_never_the_pointers(capsys, env):
    names = [env.release(f"r{i}") for i in range(1, 9)]
    env.link("r1")
    ok(run(capsys, env, "good"), True)  # r1: last known good, the oldest
    for name in names[1:]:
        ok(run(capsys, env, "live", release=name), True)
    ok(run(capsys, env, "failed", release="r3"), True)
    ok(run(capsys, env, "building", release="r5"), True)
    for hidden in (".pruning-r0", ".pruning-r2"):  # prunes that stopped half-way (r2 was made again)
        (env.root / "releases" / hidden / "wp-includes").mkdir(parents=True)
    # current r8, previous r7, lkg r1; good: r1 r2 r4 r6 r7 r8; failed: r3 r5.
    planned = ok(run(capsys, env, "pruned", keep=4, _ansible_check_mode=True, _ansible_diff=True), True)
    assert planned["removed"] == ["r3", "r5", "r2", "r4"]
    assert planned["diff"]["before"]["removed"] == []
    assert planned["diff"]["after"]["removed"] == planned["removed"]
    assert os.path.isdir(env.root / "releases" / "r3")
    r = ok(run(capsys, env, "pruned", keep=4), True)
    assert r["removed"] == ["r3", "r5", "r2", "r4"]
    assert sorted(os.listdir(env.root / "releases")) == ["r1", "r6", "r7", "r8"]
    assert sorted(env.state()["releases"]) == ["r1", "r6", "r7", "r8"]
    assert ok(run(capsys, env, "pruned", keep=4), False)["removed"] == []
    # keep=1 still never removes current, previous or the last known good.
    assert ok(run(capsys, env, "pruned", keep=1), True)["removed"] == ["r6"]
    assert sorted(os.listdir(env.root / "releases")) == ["r1", "r7", "r8"]
    refused(run(capsys, env, "pruned", keep=0), "keep must be at least 1")


def test_many_failed_deploys_never_prune_the_last_good_release(capsys, env):
    env.release("good")
    env.link("good")
    for i in range(8):
        post, pre = f"post{i}", f"pre{i}"
        # Broken after the switch: rolled back.
        ok(run(capsys, env, "building", release=post), True)
        env.release(post)
        ok(run(capsys, env, "healthy", release=post), True)
        ok(run(capsys, env, "live", release=post), True)
        ok(run(capsys, env, "rollback", release="good", reason="health check failed"), True)
        # Broken before the switch: never live.
        ok(run(capsys, env, "building", release=pre), True)
        env.release(pre)
        ok(run(capsys, env, "failed", release=pre), True)
        ok(run(capsys, env, "pruned", keep=1), True)
        left = sorted(os.listdir(env.root / "releases"))
        assert left == sorted({"good", post}), left  # post stays only as previous
    r = ok(run(capsys, env, "good"), False)
    assert (r["current"], r["last_known_good"]) == ("good", "good")


def test_stale_fencing_token_changes_nothing(capsys, env, tmp_path):
    fencing = tmp_path / "fencing"
    env.release("a")
    env.release("b")
    env.link("a")
    ok(run(capsys, env, "healthy", release="b", fencing_token=7, fencing_dir=str(fencing)), True)
    before = env.snapshot()
    for state, extra in (("live", {"release": "b"}), ("rollback", {}), ("pruned", {"keep": 1}),
                         ("failed", {"release": "a"})):
        r = refused(run(capsys, env, state, fencing_token=6, fencing_dir=str(fencing), **extra),
                    "stale fencing token 6")
        assert r["stale_fencing_token"] is True
    assert env.snapshot() == before
    assert _fencing.parse_record((fencing / "shop").read_text())["token"] == 7
    ok(run(capsys, env, "live", release="b", fencing_token=8, fencing_dir=str(fencing)), True)


@pytest.mark.parametrize(("args", "message"), [
    ({"site": "root"}, "reserved"),
    ({"site": "Shop"}, "invalid site name"),
    ({"env": "x"}, "invalid environment name"),
    ({"release": "../etc"}, "invalid release name"),
    ({"release": "a..b"}, "invalid release name"),
    ({"release": ".hidden"}, "invalid release name"),
    ({"release": "a/b"}, "invalid release name"),
    ({"release": "x" * 65}, "invalid release name"),
    ({"release": "ok\n"}, "invalid release name"),
    ({"state": "healthy"}, "missing: release"),
    ({"state": "pruned", "keep": 0}, "keep must be at least 1"),
    ({"state": "current", "release": "a"}, "value of state must be one of"),  # the name before 1.0
])
def test_bad_input_fails_before_any_change(capsys, env, tmp_path, args, message):
    fencing = tmp_path / "fencing"
    env.release("a")
    before = env.snapshot()
    refused(run(capsys, env, args.pop("state", "good"), fencing_token=3, fencing_dir=str(fencing), **args),
            message)
    assert not fencing.exists(), "input is checked before the fencing token is recorded"
    assert env.snapshot() == before


def test_check_mode_changes_nothing(capsys, env):
    for name in ("a", "b", "c"):
        env.release(name)
    env.link("a")
    ok(run(capsys, env, "live", release="b"), True)
    ok(run(capsys, env, "failed", release="c"), True)
    before = env.snapshot()
    check = {"_ansible_check_mode": True, "_ansible_diff": True}
    r = ok(run(capsys, env, "rollback", **check), True)
    assert r["diff"]["before"]["current"] == "b" and r["diff"]["after"]["current"] == "a"
    assert r["diff"]["after"]["releases"]["b"] == "rolled_back"
    ok(run(capsys, env, "live", release="a", **check), True)
    ok(run(capsys, env, "healthy", release="c", **check), True)
    ok(run(capsys, env, "building", release="new", **check), True)
    ok(run(capsys, env, "good", release="b", **check), True)
    assert ok(run(capsys, env, "pruned", keep=1, **check), True)["removed"] == ["c"]
    ok(run(capsys, env, "live", release="b", **check), False)
    assert env.snapshot() == before


def test_check_mode_on_a_tree_without_state_file(capsys, env):
    env.release("a")
    env.link("a")
    before = env.snapshot()
    r = ok(run(capsys, env, "good", _ansible_check_mode=True), True)  # the file would be written
    assert r["last_known_good"] == "a"
    assert env.snapshot() == before


def test_current_moved_outside_the_module_is_adopted(capsys, env):
    """A run that stopped between the switch and the write: the link wins, what it replaced is previous."""
    for name in ("a", "b"):
        env.release(name)
    env.link("a")
    ok(run(capsys, env, "good"), True)
    os.unlink(env.root / "current")
    env.link("b")
    r = ok(run(capsys, env, "live", release="b"), True)
    assert (r["current"], r["previous"], r["last_known_good"]) == ("b", "a", "a")


@pytest.mark.parametrize(("setup", "message"), [
    ("dir", "is not a symlink"),
    ("outside", "is not a release directory"),
    ("json", "is not valid JSON"),
    ("shape", "is not a release state file"),
    ("symlink", "is not a regular file"),
    pytest.param("owner", "is not owned and writable by root only", marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="only a root run refuses a state file owned by another user")),
    pytest.param("mode", "is not owned and writable by root only", marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="only a root run checks the state file's owner and mode")),
])
def test_broken_trees_are_refused_unchanged(capsys, env, tmp_path, setup, message):
    env.release("a")
    if setup == "dir":
        (env.root / "current").mkdir()
    elif setup == "outside":
        os.symlink(str(tmp_path), str(env.root / "current"))
    elif setup == "json":
        (env.root / STATE).write_text("{")
    elif setup == "shape":
        (env.root / STATE).write_text(json.dumps({"releases": {"a": {"mark": "great"}}}))
    elif setup == "symlink":
        (env.root / STATE).symlink_to("/etc/passwd")
    else:
        ok(run(capsys, env, "healthy", release="a"), True)
        if setup == "owner":
            os.chown(env.root / STATE, 65534, 0)
        else:
            os.chmod(env.root / STATE, 0o660)
    before = env.snapshot()
    refused(run(capsys, env, "live", release="a"), message)
    assert env.snapshot() == before


def test_missing_root_is_refused(capsys, tmp_path):
    r = run(capsys, SimpleNamespace(root=tmp_path / "nope"), "live", release="a")
    refused(r, "does not exist: create the environment first")
    assert not (tmp_path / "nope").exists()


def test_state_file_is_outside_what_nginx_serves():
    """nginx's root is current (a release); the state file sits beside it in the environment root."""
    template = (ROOT / "roles/site_env/templates/nginx-site.conf.j2").read_text()
    roots = [line.split(None, 1)[1] for line in template.splitlines() if line.strip().startswith("root ")]
    assert roots == ["{{ site_env_names.current }};"]
    rel = _releases.Releases("/var/www/sites/shop/production")
    assert os.path.dirname(rel.path) == rel.root and rel.current_link == rel.root + "/current"


def test_relative_link_and_leftovers_of_dead_runs(capsys, env):
    env.release("a")
    env.release("b")
    os.symlink("releases/a", str(env.root / "current"))  # relative: still understood
    (env.root / ".current.tmp-99999").symlink_to("releases/b")
    (env.root / f"{STATE}.tmp-dead").write_text("{")
    r = ok(run(capsys, env, "live", release="b"), True)
    assert (r["current"], r["previous"]) == ("b", "a")
    assert env.current() == str(env.root / "releases" / "b")
    assert sorted(os.listdir(env.root)) == [STATE, "current", "releases"]


def test_a_second_run_waits_for_the_first(capsys, env):
    """Runs on one environment never interleave: the module waits for the lock on the root."""
    env.release("a")
    env.link("a")
    fd = os.open(env.root, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = threading.Event()

    def release_lock():
        released.set()
        os.close(fd)

    timer = threading.Timer(0.6, release_lock)
    timer.start()
    try:
        r = ok(run(capsys, env, "good"), True)
        assert released.is_set(), "the module ran while another holder had the lock"
    finally:
        timer.join()
    assert r["last_known_good"] == "a"


def test_through_ansible_playbook_with_check_and_diff(tmp_path):
    """The module as users run it: ansible-playbook, module_utils shipped by Ansible, --check/--diff."""
    env = Env(tmp_path / "tree")
    env.release("old")
    env.release("new")
    env.link("old")
    base = {"site": "shop", "root": str(env.root)}
    steps = [({"release": "new", "state": "healthy"}, {}),
             ({"release": "new", "state": "live"}, {"check_mode": True, "diff": True}),
             ({"release": "new", "state": "live"}, {"diff": True}),
             ({"release": "new", "state": "live"}, {}),
             ({"state": "rollback", "reason": "smoke test"}, {}),
             ({"state": "rollback"}, {"ignore_errors": True})]
    tasks = [{"name": f"Step {i}", "pressluft.wordpress.release_switch": {**base, **args}, **keywords}
             for i, (args, keywords) in enumerate(steps)]
    book = tmp_path / "release.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    r = run_playbook(book, {"all": {"hosts": {"localhost": local}}}, tmp_path)
    assert r.rc == 0, r.explain()
    healthy, planned, switched, again, rolled, refused_again = (
        t["hosts"]["localhost"] for t in json.loads(r.stdout)["plays"][0]["tasks"])
    assert healthy["changed"] is True  # creates the state file (old adopted as healthy and last known good)
    assert planned["changed"] is True and planned["diff"]["after"]["current"] == "new"
    assert switched["changed"] is True and switched["diff"]["before"]["current"] == "old"
    assert (switched["current"], switched["previous"], switched["last_known_good"]) == ("new", "old", "old")
    assert again["changed"] is False
    assert (rolled["current"], rolled["previous"], rolled["releases"]) == (
        "old", "new", {"old": "healthy", "new": "rolled_back"})
    assert refused_again["failed"] is True and "marked rolled_back (smoke test)" in refused_again["msg"]
    assert env.current() == str(env.root / "releases" / "old")


def test_state_files_of_older_versions_are_read_and_rewritten_with_the_new_marks(capsys, env):
    """Nodes deployed before the marks took the control plane's names (building/failed) keep working."""
    for name in ("a", "b", "c"):
        env.release(name)
    env.link("a")
    old = {"current": "a", "previous": None, "last_known_good": "a", "releases": {
        "a": {"mark": "healthy", "created": "2026-01-01T00:00:00.000001+00:00", "reason": None},
        "b": {"mark": "unhealthy", "created": "2026-01-02T00:00:00.000001+00:00", "reason": "HTTP 500"},
        "c": {"mark": "unfinished", "created": "2026-01-03T00:00:00.000001+00:00", "reason": None}}}
    (env.root / STATE).write_text(json.dumps(old))
    # Reading alone changes nothing: same marks under their new names, the file is left as it is.
    r = ok(run(capsys, env, "live", release="a"), False)
    assert r["releases"] == {"a": "healthy", "b": "failed", "c": "building"}
    refused(run(capsys, env, "live", release="b"), "it is marked failed (HTTP 500)")
    refused(run(capsys, env, "live", release="c"), "it is marked building")
    # The next change writes every mark with its new name.
    ok(run(capsys, env, "healthy", release="c"), True)
    assert {n: i["mark"] for n, i in env.state()["releases"].items()} == {
        "a": "healthy", "b": "failed", "c": "healthy"}
    assert env.state()["releases"]["b"]["reason"] == "HTTP 500"
