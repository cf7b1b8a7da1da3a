"""R4: property-based fuzzing of every CLI command and the input schemas (hypothesis).

Every command of the Click tree runs in-process (CliRunner) on a fresh copy of a small control plane
(SQLite: a node, two active sites, finished jobs, a completed backup) with generated arguments: Jinja,
shell metacharacters, path traversal, unicode (also lone surrogates, as undecodable argv bytes arrive),
NUL, huge strings, numbers at the edges, and the real names so that calls get past the first check.
Properties: no traceback; an exit code of docs/cli.md; a refused call (exit != 0) leaves every table as it
was, except at most one audit row (the refusal's own).

Profiles: the default (CI) runs EXAMPLES_CI per command; PRESSLUFT_FUZZ=full runs EXAMPLES_FULL per command
(>= 10,000 inputs in all; docs/testing.md).
"""

from __future__ import annotations

import json
import os
import shutil
import string
import traceback
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pressluft_cli.main import cli
from sqlalchemy import select

from pressluft_lib import schemas
from pressluft_lib.errors import ValidationError
from pressluft_lib.operations import scheduler
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Node
from pressluft_lib.storage.transitions import transition
from tests.rig.wordpress import skeleton_archive

from .conftest import FUZZ
from .dbsnap import db_snapshot
from .test_cli_backups import finish_next

FULL = os.environ.get("PRESSLUFT_FUZZ") == "full"
EXAMPLES_CI = 8
EXAMPLES_FULL = 320
EXAMPLES = EXAMPLES_FULL if FULL else EXAMPLES_CI
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FULL,  # CI: the same inputs every run; the full run explores
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
    ],
    database=None,
    # CI prints the failing input as generated; shrinking it can take minutes on a loaded machine.
    phases=list(Phase) if FULL else [Phase.explicit, Phase.reuse, Phase.generate],
)
# docs/cli.md: 0 ok, 2 invalid input, 3 not found, 4 conflict, 5 forbidden transition, 6 stale token,
# 7 config error, 9 followed job not succeeded, 10 database error, 11 a doctor/scheduler check failed,
# 12-14 node queries (environment_not_active, node_unreachable, wp_cli_error);
# 1 only for an aborted confirmation.
EXIT_CODES = {0, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14}

EVIL = [
    "", " ", "-", "--", "--help", "{{ 7*7 }}", "{{ lookup('pipe','touch /tmp/pressluft-fuzz-canary') }}",
    "{% for x in range(9) %}x{% endfor %}", "$(id)", "`id`", "; rm -rf /", "a|b", "a&&b", "'\"", "\\",
    "../../etc/passwd", "/etc/passwd", "/", "/tmp", "~", "~root", "%s%n", "\x00", "a\x00b", "\n", "a\nb",
    "\r",
    "\t", "\u202e", "ünïcödé", "日本", "\U0001f600", "\udcff", "a" * 300, "x" * 100_000, "0", "-1", "1",
    "99999999999999999999", "1e309", "nan", "inf", "0x1F", "true", "null", "[]", "{}", "all", "localhost",
    "ungrouped", "root", "information", "schema", "production", "staging", "shop", "blog", "web1",
    "shop/production", "shop/staging", "blog/", "/production", "shop/production/x", "shop/../blog",
    "20261202T023000Z-1", "1", "2", "3", "full", "db", "files", "8.2", "queued", "failed", "bash",
    "https://example.com/r.git", "https://u:p@example.com/r.git", "rest:https://TOKEN@h/r", "/tmp/repo",
    "sftp:u@h:/r", "s3:https://h/b", "ssh://git@h/r.git", "node_php_default_version=8.2",
    "ansible_python_interpreter=/tmp/x", "site_env_site=blog", "pressluft_site=blog", "k=v", "=v", "K=v",
    "admin@example.com", "sha256:" + "0" * 64, "a" * 128,
]
TEXT = st.one_of(
    st.sampled_from(EVIL),
    st.text(max_size=40),
    st.text(alphabet=string.printable, max_size=80),
    st.from_regex(r"[a-z][a-z0-9]{0,25}(/[a-z0-9]{0,12})?", fullmatch=True),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:  # noqa: E501
    out = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += commands(cmd, (*path, name))
        else:
            out.append(((*path, name), cmd))
    return out


COMMANDS = commands()


def argv_for(cmd: click.Command) -> st.SearchStrategy[list[str]]:
    """Positional arguments in order (sometimes one too few or too many), then a random set of options."""
    positional = [p for p in cmd.params if isinstance(p, click.Argument)]
    options = [p for p in cmd.params if isinstance(p, click.Option)]

    def option_args(opt: click.Option) -> st.SearchStrategy[list[str]]:
        names = [*opt.opts, *opt.secondary_opts]
        if opt.is_flag:
            return st.sampled_from(names).map(lambda n: [n])
        return st.tuples(st.sampled_from(names), TEXT).map(list)

    opts = st.lists(st.one_of(*[option_args(o) for o in options]), max_size=6) if options else st.just([])
    return st.tuples(
        st.lists(TEXT, min_size=max(0, len(positional) - 1), max_size=len(positional) + 1),
        opts,
        st.lists(TEXT, max_size=1),  # sometimes a stray word
    ).map(lambda t: [*t[0], *[a for pair in t[1] for a in pair], *t[2]])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A control plane: node web1 (active), sites shop and blog (active), a completed backup of shop."""
    home = tmp_path_factory.mktemp("fuzz-template")
    url = f"sqlite:///{home / 'pressluft.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("PRESSLUFT_HOME", str(home))
    mp.setenv("PRESSLUFT_DB", url)
    mp.delenv("PRESSLUFT_SECRET_KEY", raising=False)
    mp.setenv("PRESSLUFT_WORDPRESS", str(skeleton_archive(home / "wordpress-6.1.9.tar.gz")))  # offline
    try:
        r = CliRunner()
        for args in (["db", "upgrade"], ["node", "add", "web1", "--host", "192.0.2.10"]):
            assert r.invoke(cli, args).exit_code == 0
        sf = db.session_factory(url)
        with sf.begin() as s:
            node = s.scalar(select(Node).where(Node.name == "web1"))
            transition(s, node, "provisioning")
            transition(s, node, "active")
        for name in ("shop", "blog"):
            assert r.invoke(cli, ["site", "create", name, "--node", "web1"]).exit_code == 0
            finish_next(url)
        made = r.invoke(cli, ["backup", "create", "shop", "--json"])
        assert made.exit_code == 0, made.output
        backup_id = json.loads(made.stdout)["backup_id"]
        finish_next(url, artifacts={"pressluft_backup": {"id": backup_id, "manifest": {}, "location": "/x"}})
        sf.kw["bind"].dispose()
    finally:
        mp.undo()
    return home


_SNAPSHOTS: dict[Path, dict[str, list[str]]] = {}


def _template_snapshot(template: Path) -> dict[str, list[str]]:
    """Every case starts from a copy of the template: its rows are the `before` of every case."""
    if template not in _SNAPSHOTS:
        _SNAPSHOTS[template] = db_snapshot(f"sqlite:///{template / 'pressluft.db'}")
    return {k: list(v) for k, v in _SNAPSHOTS[template].items()}


def run_case(template: Path, work: Path, argv: list[str], stdin: str) -> None:
    FUZZ["inputs"] += 1
    home = work / "home"
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(template, home)
    url = f"sqlite:///{home / 'pressluft.db'}"
    before = _template_snapshot(template)
    env = {"PRESSLUFT_HOME": str(home), "PRESSLUFT_DB": url, "PRESSLUFT_SECRET_KEY": None}
    # stdin as bytes: undecodable input arrives as lone surrogates, which only surrogateescape encodes.
    result = CliRunner(env=env).invoke(cli, argv, input=stdin.encode("utf-8", "surrogateescape"))
    where = f"pressluft {argv!r}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"{where} raised {result.exception!r}\n{tb}")
    assert "Traceback" not in result.output, where
    aborted = result.exit_code == 1 and "Aborted" in result.output  # a confirmation prompt said no
    assert result.exit_code in EXIT_CODES or aborted, f"{where}: exit {result.exit_code}\n{result.output[:2000]}"  # noqa: E501
    if result.exit_code != 0:
        after = db_snapshot(url)
        audit_before, audit_after = before.pop("audit_log"), after.pop("audit_log")
        assert after == before, f"{where} was refused (exit {result.exit_code}) but changed the database"
        assert len(audit_after) - len(audit_before) in (0, 1), f"{where}: more than the refusal's audit row"
    assert not Path("/tmp/pressluft-fuzz-canary").exists(), f"{where} ran a template"


def _force(path: tuple[str, ...], argv: list[str]) -> list[str]:
    """Commands that would otherwise wait: the worker runs once, a follow gives up after a second."""
    if path == ("worker",):
        return [*argv, "--once", "--poll-interval", "0.1"]
    if path == ("jobs", "follow"):
        return [*argv, "--timeout", "1", "--interval", "0.1"]
    # No SSH to the template's unroutable node; never install units on the machine the tests run on.
    if path == ("doctor",):
        return [*argv, "--skip-nodes"]
    if path == ("scheduler", "run") and "drift" in scheduler.BY_NAME:
        return [*argv, "--skip", "drift"]
    if path == ("install-service",):
        return [*argv, "--dry-run"]
    return argv


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_cli_command_never_crashes_and_refusals_change_nothing(template, tmp_path, path, cmd):
    @SETTINGS
    @given(argv=argv_for(cmd), stdin=st.one_of(st.just(""), TEXT.map(lambda t: t + "\n" + t + "\n")))
    def case(argv: list[str], stdin: str) -> None:
        run_case(template, tmp_path, [*path, *_force(path, argv)], stdin)

    case()


SCHEMAS = [schemas.NodeCreate, schemas.SiteCreate, schemas.EnvRef, schemas.JobFilter, schemas.JobCreate,
           schemas.Retention, schemas.SiteOptions, schemas.NodeOptions]
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=8,
)


@pytest.mark.parametrize("model", SCHEMAS, ids=lambda m: m.__name__)
def test_schemas_refuse_with_one_validation_error(model):
    fields = list(model.model_fields)

    @SETTINGS
    @given(data=st.dictionaries(st.one_of(st.sampled_from(fields), TEXT), VALUES, max_size=len(fields) + 2))
    def case(data):
        FUZZ["inputs"] += 1
        try:
            schemas.parse(model, data)
        except ValidationError as exc:
            assert exc.message and exc.exit_code == 2

    case()
